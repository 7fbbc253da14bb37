// KeyBackend: everything sealkeep asks of the hardware that holds its master key.
//
// Two implementations: pkcs11/ (a token AES-256 key; wrap = C_Encrypt with CKM_AES_GCM)
// and tpm/ (a 256-bit key sealed in the TPM, unsealed once into locked memory; wrap =
// software AES-256-GCM). Both produce the blob format of wrapped_blob_format.h.
//
// The master key has generations. Wrap() always uses the current one; Unwrap() uses the
// generation recorded in the blob, which must still be live (not retired). Rotate()
// makes generation g+1 current; Retire(g) destroys a non-current generation's key.
//
// The anchor (docs/design.md) is the journal head as last recorded in hardware that an
// attacker holding the disk cannot turn back. It holds the head's sequence number and
// hash, and a counter that increases with every AdvanceAnchor(). Where the hardware has
// a monotonic counter (TPM NV counter) the counter is that; elsewhere (PKCS#11 token
// data object) it is a number kept in the same object. Callers compare anchors by
// (seq, head_hash), never by counter: a TPM orderly counter may jump ahead after an
// unclean shutdown.
//
// Thread safety: Wrap, Unwrap and Info may be called from many threads at once.
// ReadAnchor, AdvanceAnchor, Rotate and Retire are called by one thread at a time
// (the journal's committer or an admin operation); implementations serialise them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "crypto/bytes.h"
#include "crypto/mac.h"
#include "crypto/recovery_wrap.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk::hsm {

struct Anchor {
  std::uint64_t seq = 0;      // global sequence number of the anchored journal head (0: empty)
  Digest head_hash{};         // hash of that entry (all zero for an empty journal)
  std::uint64_t counter = 0;  // increases with every AdvanceAnchor()
};

struct BackendInfo {
  std::string kind;                        // "pkcs11" or "tpm"
  std::string identity;                    // human-readable: token label + serial, or TPM vendor + object
  std::string keyset_id;                   // hex; recorded in every blob (see wrapped_blob_format.h)
  std::uint32_t current_generation = 0;    // generation Wrap() uses
  std::vector<std::uint32_t> generations;  // live generations, ascending
  bool hardware_counter = false;           // the anchor counter is a hardware monotonic counter
  std::string anchor_location;             // where the anchor lives, for status output
};

// A re-seal staged and not yet in effect (Resealable::BeginReseal). Commit() puts it in
// effect, once; destroying it uncommitted drops it and nothing changes. It must not
// outlive the backend that made it.
class PendingReseal {
 public:
  virtual ~PendingReseal() = default;
  virtual const std::vector<int>& pcrs() const = 0;  // what it seals to
  virtual Status Commit() = 0;
};

// What only a backend whose master key is sealed to a boot state can do (the TPM): seal
// the same key anew to the current values of other PCRs, staged so that the caller can
// journal the change between BeginReseal and Commit (daemon::Agent::Reseal does).
class Resealable {
 public:
  virtual ~Resealable() = default;
  // Errors: bad_pcrs, reseal_in_progress, the TPM's errors, state_io_error.
  virtual Result<std::unique_ptr<PendingReseal>> BeginReseal(const std::vector<int>& pcrs) = 0;
};

class KeyBackend {
 public:
  virtual ~KeyBackend() = default;

  // The re-seal capability, or nullptr when the backend has none (PKCS#11).
  virtual Resealable* resealable() { return nullptr; }

  // Wraps key (at most 64 bytes) under the current generation, binding aad.
  virtual Result<Bytes> Wrap(const SecretBytes& key, ByteView aad) = 0;
  // Errors (reason): malformed_blob, wrong_token / wrong_tpm (another keyset), key_retired
  // (generation absent), does_not_verify (tampered blob or wrong aad).
  virtual Result<SecretBytes> Unwrap(ByteView blob, ByteView aad) = 0;

  virtual Result<Anchor> ReadAnchor() = 0;
  // Records (seq, head_hash) and increments the counter; returns what is now stored.
  // Returns only once the hardware holds it.
  virtual Result<Anchor> AdvanceAnchor(std::uint64_t seq, const Digest& head_hash) = 0;

  virtual BackendInfo Info() const = 0;

  // Makes a new generation current; returns its number.
  virtual Result<std::uint32_t> Rotate() = 0;
  // Destroys the key of a generation that is not current (reason: is_current, not_found).
  virtual Status Retire(std::uint32_t generation) = 0;

  // The fleet host key (docs/fleet.md): a P-256 ECDH key pair made in this backend's
  // hardware on the first call and found again on later ones; its private half never
  // leaves the hardware. The key may use this backend's connection to it, so the backend
  // must outlive the key. Errors: fleet_key_unsupported (kFailedPrecondition) where the
  // backend has none, and the hardware's.
  virtual Result<std::unique_ptr<EcdhPrivateKey>> OpenHostKey() {
    return Status(Code::kFailedPrecondition, "fleet_key_unsupported",
                  "this backend cannot hold a fleet host key");
  }
};

}  // namespace sk::hsm
