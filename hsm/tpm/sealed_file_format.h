// A sealed master-key generation, and the payload sealed inside its TPM object.
//
// File <state_dir>/master-<generation, 8 decimal digits>.sealed ("master-00000001.sealed"),
// one per live generation, replaced only atomically (temp file, fsync, rename, fsync folder).
//
//   offset  size  field
//   0       4     magic "SKTS"
//   4       1     format version, 0x01
//   5       8     keyset id (equals the record's, tpm-record)
//   13      4     generation, big-endian, >= 1; equals the number in the file name
//   17      1     flags: bit 0 = an auth value is required (the credential; else the
//                 object's auth value is empty); bits 1-7 zero
//   18      4     PCR selection, sha256 bank, big-endian: bit i = PCR i; bits 24-31 zero
//   22      32k   the selected PCRs' sha256 values at sealing, ascending PCR order
//                 (k = number of selected PCRs, 0-24)
//   22+32k  32    PCR composite digest: SHA-256 of those values concatenated (zero if k = 0)
//   54+32k  2     p, length of the public area, 1 <= p <= 1024
//           p     TPM2B_PUBLIC of the sealed object, marshalled by tss2-mu (includes its
//                 own 2-byte size, which must equal p - 2)
//           2     q, length of the private area, 1 <= q <= 1024
//           q     TPM2B_PRIVATE, marshalled by tss2-mu (own size = q - 2)
//           end   nothing follows; a whole file is at most 4096 bytes
//
// The TPM authenticates the public and private areas (the private is encrypted and
// integrity-protected under the primary key, bound to the public). The other fields are
// checked against authenticated data at open: the composite against the values, the
// authPolicy inside the public area against policy.h's PolicyDigest(selection, composite),
// and keyset id and generation against the unsealed payload. PCR values serve to name
// the PCRs that changed when the policy fails.
//
// The sealed payload (the keyed-hash object's sensitive data), exactly 77 bytes:
//   0   1   payload version, 0x01
//   1   8   keyset id
//   9   4   generation, big-endian
//   13  32  master key of this generation (AES-256)
//   45  32  anchor auth value: authorises the NV anchor indices; the same in every
//           generation of a keyset (nv_anchor.h)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "crypto/bytes.h"
#include "crypto/mac.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"
#include "hsm/wrapped_blob_format.h"

namespace sk::hsm::tpm {

inline constexpr std::uint8_t kSealedFileVersion = 0x01;
inline constexpr std::uint8_t kFlagAuthValue = 0x01;
inline constexpr std::size_t kMaxTpmArea = 1024;
inline constexpr std::size_t kMaxSealedFile = 4096;

inline constexpr std::uint8_t kPayloadVersion = 0x01;
inline constexpr std::size_t kMasterKeySize = 32;
inline constexpr std::size_t kAnchorAuthSize = 32;
inline constexpr std::size_t kPayloadSize = 1 + kKeysetIdSize + 4 + kMasterKeySize + kAnchorAuthSize;

struct SealedFile {
  KeysetId keyset_id{};
  std::uint32_t generation = 0;
  std::uint8_t flags = 0;
  std::uint32_t pcr_mask = 0;
  std::vector<Digest> pcr_values;  // one per selected PCR, ascending
  Digest pcr_composite{};
  Bytes public_area;   // marshalled TPM2B_PUBLIC
  Bytes private_area;  // marshalled TPM2B_PRIVATE

  bool auth_required() const { return (flags & kFlagAuthValue) != 0; }
};

// "master-00000001.sealed"; ParseSealedFileName is its inverse (nullopt for other names).
std::string SealedFileName(std::uint32_t generation);
std::optional<std::uint32_t> ParseSealedFileName(const std::string& name);

Bytes EncodeSealedFile(const SealedFile& file);
// malformed_state on any deviation from the layout above.
Result<SealedFile> ParseSealedFile(ByteView bytes);

struct SealedPayload {
  KeysetId keyset_id{};
  std::uint32_t generation = 0;
  SecretBytes master_key;   // 32 bytes
  SecretBytes anchor_auth;  // 32 bytes
};

// Builds the 77 payload bytes in locked memory.
Result<SecretBytes> EncodePayload(const SealedPayload& payload);
// malformed_state when the bytes are not a payload.
Result<SealedPayload> ParsePayload(std::span<const std::uint8_t> bytes);

}  // namespace sk::hsm::tpm
