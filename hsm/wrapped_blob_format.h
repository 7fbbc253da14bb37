// The wrapped-key blob: a data, journal or audit key wrapped by a backend's master key.
// Both backends write this format; only the way the AES-256-GCM key is held differs
// (inside a PKCS#11 token, or unsealed from a TPM into locked memory).
//
//   offset  size  field
//   0       1     format version, 0x01
//   1       1     backend kind: 0x01 pkcs11, 0x02 tpm
//   2       8     keyset id: random at provisioning, the same for every generation of
//                 one master-key set; tells a blob from another token/TPM apart
//   10      4     master-key generation, big-endian, >= 1
//   14      12    GCM IV (random)
//   26      n     ciphertext of the wrapped key, 1 <= n <= 64
//   26+n    16    GCM tag
//
// GCM's AAD is bytes [0, 14) followed by the caller's AAD, so every byte is AAD, IV,
// ciphertext or tag. Total size 42 + n; a 32-byte key wraps to 74 bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "crypto/bytes.h"
#include "crypto/status.h"

namespace sk::hsm {

inline constexpr std::uint8_t kWrappedBlobVersion = 0x01;
inline constexpr std::uint8_t kKindPkcs11 = 0x01;
inline constexpr std::uint8_t kKindTpm = 0x02;
inline constexpr std::size_t kKeysetIdSize = 8;
inline constexpr std::size_t kWrappedHeaderSize = 14;
inline constexpr std::size_t kWrapIvSize = 12;
inline constexpr std::size_t kWrapTagSize = 16;
inline constexpr std::size_t kMaxWrappedKey = 64;

using KeysetId = std::array<std::uint8_t, kKeysetIdSize>;

struct WrappedHeader {
  std::uint8_t kind = 0;
  KeysetId keyset_id{};
  std::uint32_t generation = 0;
};

struct WrappedParts {
  WrappedHeader header;
  ByteView header_bytes;  // [0, 14): the part that goes into the AAD
  ByteView iv;
  ByteView ciphertext;
  ByteView tag;
};

// Checks sizes and fields; reason malformed_blob on any violation. Views point into blob.
Result<WrappedParts> ParseWrappedBlob(ByteView blob);

// The 14 header bytes.
Bytes EncodeWrappedHeader(const WrappedHeader& header);

// header bytes || caller aad: the AAD given to GCM.
Bytes WrapAad(ByteView header_bytes, ByteView caller_aad);

}  // namespace sk::hsm
