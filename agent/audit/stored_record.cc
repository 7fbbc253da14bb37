#include "agent/audit/stored_record.h"

#include <chrono>
#include <string>
#include <string_view>

namespace sk::audit {
namespace {

constexpr std::uint32_t kMagic = 0x534B4131;  // "SKA1"

void Field(ByteWriter& w, std::string_view s) { w.Var16(s.substr(0, 0xFFFF)); }

}  // namespace

Bytes EncodeStoredRecord(const AuditRecord& r) {
  using namespace std::chrono;
  ByteWriter w;
  w.U32(kMagic);
  w.U64(static_cast<std::uint64_t>(duration_cast<microseconds>(r.time.time_since_epoch()).count()));
  w.U32(r.peer.uid);
  w.U32(r.peer.gid);
  w.U32(static_cast<std::uint32_t>(r.peer.pid));
  w.U8(static_cast<std::uint8_t>(r.outcome));
  for (const std::string* s : {&r.request_id, &r.peer.unit, &r.peer.exe, &r.route, &r.path, &r.reason}) {
    Field(w, *s);
  }
  return std::move(w).Take();
}

Result<AuditRecord> DecodeStoredRecord(ByteView bytes) {
  ByteReader in(bytes);
  std::uint32_t magic = 0;
  AuditRecord r;
  std::uint64_t time_us = 0;
  std::uint32_t pid = 0;
  std::uint8_t outcome = 0;
  bool ok = in.U32(magic) && magic == kMagic && in.U64(time_us) && in.U32(r.peer.uid) && in.U32(r.peer.gid) &&
            in.U32(pid) && in.U8(outcome);
  for (std::string* s : {&r.request_id, &r.peer.unit, &r.peer.exe, &r.route, &r.path, &r.reason}) {
    ok = ok && in.Var16(*s);
  }
  if (!ok || !in.AtEnd() || outcome > static_cast<std::uint8_t>(AuditOutcome::kEvent) || pid > 0x7FFFFFFF ||
      time_us > static_cast<std::uint64_t>(INT64_MAX)) {
    return Corruption("a change's audit record kept in the store is malformed", "audit_corrupt");
  }
  r.time =
      std::chrono::system_clock::time_point(std::chrono::microseconds(static_cast<std::int64_t>(time_us)));
  r.peer.pid = static_cast<std::int32_t>(pid);
  r.outcome = static_cast<AuditOutcome>(outcome);
  return r;
}

}  // namespace sk::audit
