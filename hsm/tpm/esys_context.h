// A connection to one TPM: a TCTI loaded by Tss2_TctiLdr_Initialize ("device:/dev/tpmrm0",
// "swtpm:host=127.0.0.1,port=P", ...) and an ESYS context over it, plus scope guards for
// the TPM objects and sessions made through it.
//
// Without a resource manager (swtpm, /dev/tpm0) every transient object and session stays
// loaded until flushed, and the TPM holds only a few (swtpm: 3 objects), so every one
// this backend makes lives in a ScopedTr that flushes it on every path.
//
// Not thread-safe: ESYS contexts are not; the owner serialises all use.
#pragma once

#include <tss2/tss2_esys.h>

#include <memory>
#include <string>

#include "crypto/status.h"

namespace sk::hsm::tpm {

class EsysContext {
 public:
  // Loads the TCTI and initialises ESYS. tpm_unavailable when the TCTI cannot be
  // loaded or cannot reach the TPM.
  //
  // Before the first TSS call of the process it sets TSS2_LOG=all+NONE unless TSS2_LOG is
  // already set (QuietTssLogs): tpm2-tss would otherwise print an ERROR line to stderr for
  // every failed TPM command, including the ones sealkeep expects and reports itself (a
  // policy failure after a boot-state change, probing for an NV index).
  static Result<std::unique_ptr<EsysContext>> Open(const std::string& tcti);
  ~EsysContext();
  EsysContext(const EsysContext&) = delete;
  EsysContext& operator=(const EsysContext&) = delete;

  ESYS_CONTEXT* get() const { return esys_; }
  const std::string& tcti() const { return tcti_name_; }

 private:
  EsysContext() = default;
  TSS2_TCTI_CONTEXT* tcti_ = nullptr;
  ESYS_CONTEXT* esys_ = nullptr;
  std::string tcti_name_;
};

// Sets TSS2_LOG=all+NONE in the environment when TSS2_LOG is unset, once per process.
// tpm2-tss reads TSS2_LOG once per library at its first log call, so this must run before
// any TSS call; EsysContext::Open calls it. A value the user set (TSS2_LOG=all+ERROR to
// see tpm2-tss's own messages, say) is kept. It is a log setting, not a secret.
void QuietTssLogs();

// Owns one ESYS_TR. kFlush (transient objects, sessions) flushes it from the TPM at scope
// exit; kClose (persistent objects, NV indices) only drops ESYS's record of it. Either
// way any auth value ESYS keeps for it is overwritten with zeros first.
class ScopedTr {
 public:
  enum class Kind { kFlush, kClose };
  ScopedTr() = default;
  ScopedTr(ESYS_CONTEXT* ctx, ESYS_TR tr, Kind kind) : ctx_(ctx), tr_(tr), kind_(kind) {}
  ~ScopedTr() { Reset(); }
  ScopedTr(ScopedTr&& other) noexcept;
  ScopedTr& operator=(ScopedTr&& other) noexcept;
  ScopedTr(const ScopedTr&) = delete;
  ScopedTr& operator=(const ScopedTr&) = delete;

  ESYS_TR get() const { return tr_; }
  bool valid() const { return tr_ != ESYS_TR_NONE; }
  // Flushes or closes now.
  void Reset();

 private:
  ESYS_CONTEXT* ctx_ = nullptr;
  ESYS_TR tr_ = ESYS_TR_NONE;
  Kind kind_ = Kind::kFlush;
};

// Frees an ESYS-allocated output at scope exit (Esys_Free).
template <typename T>
struct EsysFree {
  void operator()(T* p) const { Esys_Free(p); }
};
template <typename T>
using EsysPtr = std::unique_ptr<T, EsysFree<T>>;

// The size of an auth value as the TPM keeps it: a TPM removes trailing zero bytes from
// every auth value it stores (TPM2_Create, TPM2_NV_DefineSpace, ...) and uses the rest in
// HMACs. tpm2-tss 3.2 strips them too when it computes session HMACs, but sealkeep does not
// rely on that: every auth value it hands to ESYS or the TPM is cut to this size, so a
// random value ending in 0x00 (1 in 256) authorises the same with any TSS.
std::size_t AuthSize(const std::uint8_t* data, std::size_t size);

// Sets (or, with nullptr/empty, clears) the auth value ESYS uses for tr, without trailing
// zeros (AuthSize). Copies the bytes into a TPM2B_AUTH that is wiped afterwards. At most
// 64 bytes (sizeof(TPMU_HA)).
Status SetAuth(ESYS_CONTEXT* ctx, ESYS_TR tr, const std::uint8_t* data, std::size_t size);

// Zeroes n bytes in a way the compiler cannot drop (for ESYS buffers that held secrets).
void Wipe(void* p, std::size_t n);

// "IBM SWTPM (firmware 0x20191023)": manufacturer, vendor strings, firmware version 1.
// It also overwrites ESYS's command/response buffer with a response larger than any
// unseal response: tpm2-tss decrypts response parameters in place there, so this is
// called after every unseal to scrub that copy of the key.
Result<std::string> DescribeTpm(ESYS_CONTEXT* ctx);

}  // namespace sk::hsm::tpm
