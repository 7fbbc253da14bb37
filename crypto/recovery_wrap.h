// The recovery key (docs/recovery.md): a P-256 key pair whose private half exists only as
// Shamir shares held by people, and whose public half wraps every data key (and the
// journal and audit keys) a second time, so that a store outlives its hardware.
//
// Wrapping is ECIES: ECDH(ephemeral, recovery public key) gives Z; each blob's AES-256-GCM
// key is HKDF-SHA256(Z, salt = ephemeral public || recovery public,
// info = "sealkeep recovery wrap v1" 0x00 || aad). A RecoverySealer keeps one ephemeral key
// for its life (the agent makes one per start and per recovery key): the ECDH is paid once,
// and every blob still has its own key, bound to its AAD. Blob:
//
//   "SKRW" | 0x01 | key id (8) | ephemeral public (65, uncompressed) | nonce (12)
//   | ciphertext | tag (16)
//
// with GCM's AAD = the blob's first 78 bytes || aad. The key id is the first 8 bytes of
// SHA-256("sealkeep recovery key id v1" 0x00 || recovery public), so a blob names the key
// that opens it. Private scalars are kept in locked memory between operations; mbedTLS
// computes with its own heap numbers, which it wipes when freed.
//
// Errors: malformed_recovery_blob (kCorruption) for a blob that does not parse,
// wrong_recovery_key (kFailedPrecondition) for a blob of another key, does_not_verify
// (kCorruption) for one whose tag or AAD does not match, bad_recovery_key
// (kInvalidArgument) for a public or private key that is not a valid P-256 key.
// Thread-safe: Seal and Open may be called concurrently.
#pragma once

#include <map>
#include <memory>
#include <mutex>

#include "crypto/bytes.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk {

inline constexpr std::size_t kRecoveryPublicKeySize = 65;
inline constexpr std::size_t kRecoveryPrivateKeySize = 32;
inline constexpr std::size_t kRecoveryKeyIdSize = 8;
inline constexpr std::size_t kRecoveryBlobOverhead =
    4 + 1 + kRecoveryKeyIdSize + kRecoveryPublicKeySize + 12 + 16;

struct RecoveryKeyPair {
  Bytes public_key;         // 65 bytes, uncompressed point
  SecretBytes private_key;  // 32 bytes, big-endian scalar
};

Result<RecoveryKeyPair> GenerateRecoveryKey();
// The public key of a private scalar (checks it is a valid one).
Result<Bytes> RecoveryPublicKey(const SecretBytes& private_key);
Bytes RecoveryKeyId(ByteView public_key);
// The key id a blob names, or an error when it is not a recovery blob.
Result<Bytes> RecoveryBlobKeyId(ByteView blob);

class RecoverySealer {
 public:
  static Result<std::unique_ptr<RecoverySealer>> Create(ByteView recovery_public_key);
  Result<Bytes> Seal(const SecretBytes& plaintext, ByteView aad) const;
  const Bytes& key_id() const { return key_id_; }

 private:
  RecoverySealer() = default;
  Bytes key_id_;
  Bytes header_;  // magic, version, key id, ephemeral public
  Bytes salt_;    // ephemeral public || recovery public
  SecretBytes z_;
};

// The private half of a P-256 key pair that computes ECDH and nothing else: in memory
// (SoftwareEcdhKey), or in a PKCS#11 token or a TPM that never lets it out (the fleet's
// host keys, docs/fleet.md). Called by one thread at a time (RecoveryOpener serialises).
class EcdhPrivateKey {
 public:
  virtual ~EcdhPrivateKey() = default;
  // 65 bytes, uncompressed.
  virtual const Bytes& public_key() const = 0;
  // The x-coordinate of (private key) * peer, 32 bytes. `peer_public` is a checked point.
  virtual Result<SecretBytes> SharedSecret(ByteView peer_public) = 0;
};

// A private scalar held in locked memory.
Result<std::unique_ptr<EcdhPrivateKey>> SoftwareEcdhKey(SecretBytes private_key);

class RecoveryOpener {
 public:
  static Result<std::unique_ptr<RecoveryOpener>> Create(SecretBytes private_key);
  static std::unique_ptr<RecoveryOpener> Create(std::unique_ptr<EcdhPrivateKey> key);
  Result<SecretBytes> Open(ByteView blob, ByteView aad);
  const Bytes& public_key() const { return public_key_; }
  const Bytes& key_id() const { return key_id_; }

 private:
  RecoveryOpener() = default;
  std::unique_ptr<EcdhPrivateKey> key_;
  Bytes public_key_;
  Bytes key_id_;
  std::mutex mu_;
  std::map<Bytes, SecretBytes> z_by_ephemeral_;  // guarded by mu_; one entry per sealer seen
};

}  // namespace sk
