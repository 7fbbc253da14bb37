#include "agent/journal/journal_format.h"

namespace sk::journal {
namespace {

Status Malformed(const std::string& why) { return Status(Code::kCorruption, "malformed_entry", why); }

enum Tag : std::uint8_t {
  kTagLabels = 1,
  kTagMaxVersions = 2,
  kTagSnapshot = 3,
  kTagNote = 4,
  kTagStoreId = 5
};

Bytes EncodeDetail(const Detail& d) {
  ByteWriter w;
  auto field = [&](std::uint8_t tag, ByteView v) {
    w.U8(tag);
    w.Var16(v);
  };
  if (!d.labels.empty()) field(kTagLabels, AsBytes(d.labels));
  if (d.max_versions) {
    ByteWriter v;
    v.U32(*d.max_versions);
    field(kTagMaxVersions, v.bytes());
  }
  if (!d.snapshot.empty()) field(kTagSnapshot, AsBytes(d.snapshot));
  if (!d.note.empty()) field(kTagNote, AsBytes(d.note));
  if (!d.store_id.empty()) field(kTagStoreId, d.store_id);
  return std::move(w).Take();
}

Status DecodeDetail(ByteView bytes, Detail& d) {
  ByteReader r(bytes);
  int last_tag = 0;
  while (r.remaining() > 0) {
    std::uint8_t tag = 0;
    ByteView v;
    if (!r.U8(tag) || !r.Var16(v)) return Malformed("truncated detail field");
    if (tag <= last_tag) return Malformed("detail tags out of order or repeated");
    last_tag = tag;
    switch (tag) {
      case kTagLabels:
        d.labels.assign(AsChars(v));
        break;
      case kTagMaxVersions: {
        ByteReader n(v);
        std::uint32_t m = 0;
        if (!n.U32(m) || !n.AtEnd()) return Malformed("bad max_versions");
        d.max_versions = m;
        break;
      }
      case kTagSnapshot:
        d.snapshot.assign(AsChars(v));
        break;
      case kTagNote:
        d.note.assign(AsChars(v));
        break;
      case kTagStoreId:
        d.store_id.assign(v.begin(), v.end());
        break;
      default:
        return Malformed("unknown detail tag " + std::to_string(tag));
    }
  }
  return OkStatus();
}

}  // namespace

std::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kInit:
      return "init";
    case Kind::kPut:
      return "put";
    case Kind::kDelete:
      return "delete";
    case Kind::kUndelete:
      return "undelete";
    case Kind::kDestroy:
      return "destroy";
    case Kind::kRollback:
      return "rollback";
    case Kind::kRestore:
      return "restore";
    case Kind::kFloor:
      return "floor";
    case Kind::kSnapshot:
      return "snapshot";
    case Kind::kRotate:
      return "rotate";
    case Kind::kRecover:
      return "recover";
    case Kind::kReseal:
      return "reseal";
    case Kind::kStage:
      return "stage";
    case Kind::kPromote:
      return "promote";
    case Kind::kAbort:
      return "abort";
    case Kind::kLease:
      return "lease";
    case Kind::kRecoveryKey:
      return "recovery_key";
    case Kind::kRestored:
      return "restored";
  }
  return "unknown";
}

bool IsKnownKind(std::uint8_t kind) { return kind >= 1 && kind <= kMaxKind; }

Result<Bytes> EncodeEntry(const Entry& e) {
  if (e.path.size() > kMaxPathBytes) return InvalidArgument("path longer than 256 bytes", "path_too_long");
  if (e.actor.size() > kMaxActorBytes) return InvalidArgument("actor longer than 512 bytes", "bad_entry");
  Bytes detail = EncodeDetail(e.detail);
  if (detail.size() > kMaxDetailBytes) return InvalidArgument("entry detail larger than 4 KiB", "bad_entry");
  ByteWriter w;
  w.U8(kEntryFormatVersion);
  w.U64(e.seq);
  w.U8(static_cast<std::uint8_t>(e.kind));
  w.U64(e.time_ms);
  w.Raw(e.txn_id);
  w.Var16(e.path);
  w.U64(e.version);
  w.U64(e.from_version);
  w.U32(e.key_generation);
  w.U64(e.expires_ms);
  w.Var16(e.actor);
  w.Raw(e.content_digest);
  w.Raw(e.dek_commit);
  w.Raw(e.prev_path_hash);
  w.Raw(e.prev_hash);
  w.Var16(detail);
  return std::move(w).Take();
}

Result<Entry> DecodeEntry(ByteView bytes) {
  ByteReader r(bytes);
  Entry e;
  std::uint8_t version = 0, kind = 0;
  ByteView detail;
  bool ok = r.U8(version) && r.U64(e.seq) && r.U8(kind) && r.U64(e.time_ms) && r.Fixed(e.txn_id) &&
            r.Var16(e.path, kMaxPathBytes) && r.U64(e.version) && r.U64(e.from_version) &&
            r.U32(e.key_generation) && r.U64(e.expires_ms) && r.Var16(e.actor, kMaxActorBytes) &&
            r.Fixed(e.content_digest) && r.Fixed(e.dek_commit) && r.Fixed(e.prev_path_hash) &&
            r.Fixed(e.prev_hash) && r.Var16(detail, kMaxDetailBytes);
  if (!ok) return Malformed("entry truncated or a field exceeds its cap");
  if (version != kEntryFormatVersion)
    return Malformed("unknown entry format version " + std::to_string(version));
  if (!r.AtEnd()) return Malformed("trailing bytes after the entry");
  if (!IsKnownKind(kind)) return Malformed("unknown entry kind " + std::to_string(kind));
  e.kind = static_cast<Kind>(kind);
  SK_RETURN_IF_ERROR(DecodeDetail(detail, e.detail));
  return e;
}

Bytes EncodeHeadBody(const Head& h) {
  ByteWriter w;
  w.U8(kHeadFormatVersion);
  w.U64(h.head_seq);
  w.Raw(h.head_hash);
  w.U64(h.anchor_seq);
  w.Raw(h.anchor_hash);
  return std::move(w).Take();
}

Result<std::pair<Head, Digest>> DecodeHeadRecord(ByteView record) {
  auto bad = [](const std::string& why) { return Status(Code::kCorruption, "malformed_head", why); };
  if (record.size() != kHeadRecordSize)
    return bad("sealed head has " + std::to_string(record.size()) + " bytes");
  ByteReader r(record);
  std::uint8_t version = 0;
  Head h;
  Digest seal{};
  if (!(r.U8(version) && r.U64(h.head_seq) && r.Fixed(h.head_hash) && r.U64(h.anchor_seq) &&
        r.Fixed(h.anchor_hash) && r.Fixed(seal) && r.AtEnd())) {
    return bad("sealed head truncated");
  }
  if (version != kHeadFormatVersion) return bad("unknown head format version " + std::to_string(version));
  return std::make_pair(h, seal);
}

}  // namespace sk::journal
