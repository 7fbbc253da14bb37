// AES-256-GCM with associated data, on mbedTLS 2.28.
//
// Only what sealkeep needs is offered: 256-bit keys, 96-bit nonces, 128-bit tags.
//
// Two layers:
//   AesGcmSeal/AesGcmOpen: raw GCM with a caller-chosen nonce (the Wycheproof vectors
//   and the HSM wrap format use it). Never reuse a (key, nonce) pair.
//   AeadSeal/AeadOpen: sealkeep's self-describing blob with a fresh random nonce:
//
//     blob = version (1 byte, 0x01) || nonce (12) || ciphertext (len(plaintext)) || tag (16)
//
//   The version byte is authenticated: GCM's AAD is version || caller_aad. Every byte of
//   a blob is thus AAD, nonce (an input to the tag), ciphertext or tag. A blob is
//   exactly 29 bytes longer than its plaintext. With random 96-bit nonces a key must
//   seal fewer than 2^32 blobs; sealkeep makes a fresh key per secret version.
//
// On a failed tag check, nothing of the plaintext is returned and the output is wiped.
// Thread-safe (no shared state).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "crypto/bytes.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk {

inline constexpr std::size_t kAeadKeySize = 32;
inline constexpr std::size_t kAeadNonceSize = 12;
inline constexpr std::size_t kAeadTagSize = 16;
inline constexpr std::uint8_t kAeadBlobVersion = 0x01;
inline constexpr std::size_t kAeadBlobOverhead = 1 + kAeadNonceSize + kAeadTagSize;

// out must hold plaintext.size() + 16 bytes: ciphertext then tag.
Status AesGcmSeal(const SecretBytes& key, ByteView nonce, ByteView aad, ByteView plaintext,
                  std::span<std::uint8_t> out);
// in is ciphertext || tag; out must hold in.size() - 16 bytes. reason "does_not_verify"
// (kCorruption) when the tag does not match; out is then wiped.
Status AesGcmOpen(const SecretBytes& key, ByteView nonce, ByteView aad, ByteView in,
                  std::span<std::uint8_t> out);

Result<Bytes> AeadSeal(const SecretBytes& key, ByteView aad, ByteView plaintext);
Result<Bytes> AeadSeal(const SecretBytes& key, ByteView aad, const SecretBytes& plaintext);
Result<SecretBytes> AeadOpen(const SecretBytes& key, ByteView aad, ByteView blob);

}  // namespace sk
