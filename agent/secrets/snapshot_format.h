// A snapshot (release tag): a sealed map path -> version taken atomically over a prefix.
//
// BODY, format version 1 (big-endian; var16 = u16 length then bytes):
//   version     u8     0x01
//   name        var16  [A-Za-z0-9._-]{1,128}
//   prefix      var16  the prefix it was taken over ("" = everything), <= 256
//   created_ms  u64
//   count       u32    <= 100,000
//   count x { path var16 (<= 256), version u64 }, paths strictly ascending
// No trailing bytes. SEAL = HMAC-SHA256(JK, "sealkeep snapshot v1" || 0x00 || body), kept
// beside the body; the journal's snapshot entry also holds SHA-256(body).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "crypto/bytes.h"
#include "crypto/status.h"

namespace sk::secrets {

inline constexpr std::size_t kMaxSnapshotPaths = 100'000;
inline constexpr std::string_view kSnapshotSealDomain = "sealkeep snapshot v1";

struct SnapshotBody {
  std::string name;
  std::string prefix;
  std::uint64_t created_ms = 0;
  std::map<std::string, std::uint64_t> versions;
};

Result<Bytes> EncodeSnapshot(const SnapshotBody& body);
// reason malformed_snapshot (kCorruption) on any violation.
Result<SnapshotBody> DecodeSnapshot(ByteView bytes);

}  // namespace sk::secrets
