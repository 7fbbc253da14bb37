// The journal anchor in TPM NV storage (docs/design.md): two NV indices in the owner
// hierarchy, defined at provisioning.
//
//   counter index (TpmConfig::nv_counter_index, default 0x01500100)
//     TPM_NT_COUNTER, 8 bytes, attributes AUTHWRITE | AUTHREAD | OWNERREAD | NO_DA | ORDERLY.
//     TPM2_NV_Increment only ever raises it. ORDERLY keeps the value in TPM RAM and writes
//     NV only every TPM2_PT_ORDERLY_COUNT increments or at an orderly shutdown; after an
//     unclean shutdown the TPM moves it ahead past any value it handed out. So it never
//     goes back, but may jump forward: compare head hashes, never counters for equality.
//   anchor index (TpmConfig::nv_anchor_index, default 0x01500101)
//     ordinary, 57 bytes (nv_anchor_format.h), AUTHWRITE | AUTHREAD | OWNERREAD | NO_DA |
//     WRITEALL, not ORDERLY: every write reaches NV before the command returns.
//
// Both indices have the anchor auth value as their auth value: 32 random bytes made at
// provisioning and sealed inside every master-key generation (sealed_file_format.h), so
// only a process that could unseal the master key (same TPM, same boot state, auth value)
// can move the anchor; someone who boots another OS on the machine cannot write an old
// head into it. It is sent only inside a salted, encrypted session (at definition) and
// otherwise proves itself by HMAC in an unsalted session. NO_DA: the value is random, so
// wrong tries cannot guess it and must not lock the TPM out. OWNERREAD lets `sealkeep tpm
// status` read the anchor without unsealing. Owner auth is needed only to define them.
//
// AdvanceAnchor costs one NV write for the anchor index, plus one for the counter every
// TPM2_PT_ORDERLY_COUNT increments; both indices need four TPM commands each time.
// Not thread-safe: the owner serialises use (with the ESYS context).
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <memory>
#include <optional>

#include "crypto/secret_bytes.h"
#include "crypto/status.h"
#include "hsm/key_backend.h"
#include "hsm/tpm/esys_context.h"
#include "hsm/tpm/nv_anchor_format.h"

namespace sk::hsm::tpm {

inline constexpr TPMA_NV kCounterAttributes = (TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT) | TPMA_NV_AUTHWRITE |
                                              TPMA_NV_AUTHREAD | TPMA_NV_OWNERREAD | TPMA_NV_NO_DA |
                                              TPMA_NV_ORDERLY;
inline constexpr TPMA_NV kAnchorAttributes = (TPM2_NT_ORDINARY << TPMA_NV_TPM2_NT_SHIFT) | TPMA_NV_AUTHWRITE |
                                             TPMA_NV_AUTHREAD | TPMA_NV_OWNERREAD | TPMA_NV_NO_DA |
                                             TPMA_NV_WRITEALL;

// "0x01500100"
std::string HandleHex(std::uint32_t handle);

// Whether an NV index is defined at `handle` (TPM2_NV_ReadPublic).
Result<bool> NvIndexDefined(ESYS_CONTEXT* ctx, std::uint32_t handle);

// Define the counter / anchor index with the anchor auth value as their auth value,
// authorised by the owner hierarchy (owner_auth, usually empty). `primary` salts the
// session that carries the auth value. Neither is written here: a counter reads only
// after its first increment and the anchor only after its first write, which the first
// NvAnchor::Advance() does. already_exists when the handle is taken.
Status DefineCounterIndex(ESYS_CONTEXT* ctx, ESYS_TR primary, std::uint32_t handle,
                          const SecretBytes& anchor_auth, const SecretBytes& owner_auth);
Status DefineAnchorIndex(ESYS_CONTEXT* ctx, ESYS_TR primary, std::uint32_t handle,
                         const SecretBytes& anchor_auth, const SecretBytes& owner_auth);

class NvAnchor {
 public:
  // Refers to both indices and checks their type, size and attributes. not_provisioned
  // when one is not defined; wrong_tpm when one is defined other than as above.
  static Result<std::unique_ptr<NvAnchor>> Attach(ESYS_CONTEXT* ctx, std::uint32_t counter_index,
                                                  std::uint32_t anchor_index);

  // The anchor auth value ESYS uses for both indices from now on.
  Status SetAnchorAuth(const SecretBytes& anchor_auth);

  // Reads both indices with the anchor auth value. Returns the stored (seq, head_hash) and
  // the hardware counter's current value. wrong_tpm when the indices reject the auth value
  // or hold another keyset's anchor; malformed_state when the stored counter is above the
  // hardware counter; not_provisioned when the anchor was never written.
  Result<Anchor> Read(const KeysetId& keyset);
  // Increments the counter, reads it, writes {keyset, seq, head_hash, counter}.
  Result<Anchor> Advance(const KeysetId& keyset, std::uint64_t seq, const Digest& head_hash);
  // Reads both indices authorised by the owner hierarchy (empty auth unless given) instead
  // of the anchor auth value, for status without unsealing: the contents as stored (of any
  // keyset) and, in *hardware_counter, the counter's current value.
  Result<NvAnchorContents> ReadAsOwner(const SecretBytes& owner_auth, std::uint64_t* hardware_counter);

  std::uint32_t counter_index() const { return counter_index_; }
  std::uint32_t anchor_index() const { return anchor_index_; }

 private:
  NvAnchor() = default;
  Result<std::uint64_t> ReadCounter(ESYS_TR auth, ESYS_TR session);
  Result<NvAnchorContents> ReadContents(ESYS_TR auth, ESYS_TR session);
  Status MapError(std::string_view what, std::uint32_t handle, TSS2_RC rc, ESYS_TR auth) const;

  ESYS_CONTEXT* ctx_ = nullptr;
  std::uint32_t counter_index_ = 0;
  std::uint32_t anchor_index_ = 0;
  ScopedTr counter_;
  ScopedTr anchor_;
};

}  // namespace sk::hsm::tpm
