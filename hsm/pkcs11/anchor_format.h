// The PKCS#11 anchor value: the CKA_VALUE of the token data object "sealkeep-anchor"
// (CKO_DATA, CKA_TOKEN, CKA_PRIVATE, CKA_APPLICATION "sealkeep"). It holds the
// anchored journal head (docs/design.md) and is tamper-evident: a GMAC (AES-256-GCM with
// no plaintext) under one master-key generation, computed inside the token.
//
//   offset  size  field
//   0       1     format version, 0x01
//   1       8     keyset id of the master keys (as in wrapped_blob_format.h)
//   9       4     generation of the master key that sealed this value, big-endian, >= 1
//   13      8     seq: global sequence number of the anchored journal head, big-endian
//   21      32    head_hash: hash of that journal entry (all zero while seq = 0)
//   53      8     counter, big-endian: +1 on every AdvanceAnchor(); 0 when provisioned
//   61      12    GCM IV (random, fresh for every write)
//   73      16    GCM tag; plaintext empty; AAD = "sealkeep/pkcs11-anchor/v1" || bytes [0, 61)
//
// Exactly 89 bytes; anything else is malformed. Every byte is AAD, IV or tag. The AAD's
// prefix separates this use of the master key from key wrapping, whose AAD starts
// with a wrapped-blob header (first byte 0x01, never 's').
//
// Worked example: docs/pkcs11.md. Pure functions over bytes: no token access here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "crypto/bytes.h"
#include "crypto/status.h"
#include "hsm/key_backend.h"
#include "hsm/wrapped_blob_format.h"

namespace sk::hsm::pkcs11 {

inline constexpr std::uint8_t kAnchorFormatVersion = 0x01;
inline constexpr std::size_t kAnchorSealedPartSize = 61;  // bytes [0, 61): the AAD after the prefix
inline constexpr std::size_t kAnchorIvOffset = 61;
inline constexpr std::size_t kAnchorTagOffset = 73;
inline constexpr std::size_t kAnchorValueSize = 89;
inline constexpr std::string_view kAnchorAadPrefix = "sealkeep/pkcs11-anchor/v1";

struct AnchorRecord {
  KeysetId keyset_id{};
  std::uint32_t generation = 0;  // master key that sealed it
  Anchor anchor;
};

// Bytes [0, 61).
Bytes EncodeAnchorSealedPart(const AnchorRecord& record);

// kAnchorAadPrefix || sealed part: the AAD handed to GCM.
Bytes AnchorAad(ByteView sealed_part);

struct AnchorParts {
  AnchorRecord record;
  ByteView sealed_part;  // [0, 61)
  ByteView iv;           // [61, 73)
  ByteView tag;          // [73, 89)
};

// Checks size, version and generation; reason anchor_invalid (kCorruption) on any
// violation. Views point into value. Does not check the tag.
Result<AnchorParts> ParseAnchorValue(ByteView value);

}  // namespace sk::hsm::pkcs11
