#include "agent/secrets/snapshot_format.h"

namespace sk::secrets {

Result<Bytes> EncodeSnapshot(const SnapshotBody& body) {
  if (body.versions.size() > kMaxSnapshotPaths) {
    return Status(Code::kTooLarge, "snapshot_too_large", "a snapshot holds at most 100,000 paths");
  }
  ByteWriter w;
  w.U8(0x01);
  w.Var16(body.name);
  w.Var16(body.prefix);
  w.U64(body.created_ms);
  w.U32(static_cast<std::uint32_t>(body.versions.size()));
  for (const auto& [path, version] : body.versions) {
    w.Var16(path);
    w.U64(version);
  }
  return std::move(w).Take();
}

Result<SnapshotBody> DecodeSnapshot(ByteView bytes) {
  auto bad = [](const std::string& why) { return Status(Code::kCorruption, "malformed_snapshot", why); };
  ByteReader r(bytes);
  std::uint8_t version = 0;
  std::uint32_t count = 0;
  SnapshotBody b;
  if (!(r.U8(version) && r.Var16(b.name, 128) && r.Var16(b.prefix, 256) && r.U64(b.created_ms) &&
        r.U32(count))) {
    return bad("snapshot truncated");
  }
  if (version != 0x01) return bad("unknown snapshot format version " + std::to_string(version));
  if (count > kMaxSnapshotPaths) return bad("snapshot claims too many paths");
  std::string last;
  for (std::uint32_t i = 0; i < count; ++i) {
    std::string path;
    std::uint64_t v = 0;
    if (!(r.Var16(path, 256) && r.U64(v))) return bad("snapshot truncated");
    if (i > 0 && path <= last) return bad("snapshot paths out of order");
    last = path;
    b.versions.emplace(std::move(path), v);
  }
  if (!r.AtEnd()) return bad("trailing bytes after the snapshot");
  return b;
}

}  // namespace sk::secrets
