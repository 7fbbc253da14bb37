// ECDSA over P-256 with SHA-256 (FIPS 186-4, RFC 6979 nonces), on mbedTLS 2.28: the fleet
// journal's signatures (docs/fleet.md).
//
// Keys are the P-256 pairs of recovery_wrap.h (GenerateRecoveryKey): a 65-byte uncompressed
// public point and a 32-byte big-endian scalar. A signature is r || s, each 32 bytes
// big-endian: 64 bytes, nothing else accepted. The message is hashed here with SHA-256.
//
// Errors: bad_signing_key (kInvalidArgument) for a key that is not a valid P-256 key;
// bad_signature (kCorruption) for a signature that is malformed or does not verify.
// Thread-safe (no shared state).
#pragma once

#include "crypto/bytes.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk {

inline constexpr std::size_t kEcdsaSignatureSize = 64;

[[nodiscard]] Result<Bytes> EcdsaP256Sign(const SecretBytes& private_key, ByteView message);
[[nodiscard]] Status EcdsaP256Verify(ByteView public_key, ByteView message, ByteView signature);

}  // namespace sk
