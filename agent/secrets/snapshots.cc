// Snapshots: sealed release tags and their all-or-nothing restore.
#include "agent/secrets/path.h"
#include "agent/secrets/service_impl.h"
#include "agent/secrets/snapshot_format.h"
#include "crypto/ct.h"

namespace sk::secrets::internal {

Digest SnapshotSeal(const SecretBytes& jk, ByteView body) {
  Hmac h(jk);
  h.Begin();
  h.Update(AsBytes(kSnapshotSealDomain));
  static constexpr std::uint8_t kZero = 0;
  h.Update(ByteView(&kZero, 1));
  h.Update(body);
  return h.End();
}

namespace {

// Reads and checks a snapshot: not_found, or seal_invalid when it does not verify.
Result<SnapshotBody> LoadSnapshot(store::Reader& reader, const SecretBytes& jk, const std::string& name) {
  SK_ASSIGN_OR_RETURN(auto rec, reader.GetSnapshot(name));
  if (!rec) return NotFound("no snapshot named " + name);
  if (!ConstantTimeEqual(SnapshotSeal(jk, rec->body), rec->seal)) {
    return Conflict("snapshot " + name + " does not verify", "seal_invalid");
  }
  SK_ASSIGN_OR_RETURN(SnapshotBody body, DecodeSnapshot(rec->body));
  if (body.name != name)
    return Conflict("snapshot " + name + " holds another snapshot's body", "seal_invalid");
  return body;
}

}  // namespace

Status ServiceImpl::WriteSnapshot(Batch& b, const std::string& name, const std::string& prefix,
                                  const Actor& actor, TxnResult& result) {
  SK_ASSIGN_OR_RETURN(auto existing, b.writer().GetSnapshot(name));
  if (existing)
    return Status(Code::kAlreadyExists, "snapshot_exists", "a snapshot named " + name + " exists");
  SnapshotBody body;
  body.name = name;
  body.prefix = prefix;
  body.created_ms = b.now_ms();
  for (const std::string& path : b.PathsWithPrefix(prefix)) {
    PathView view = b.View(path);
    std::uint64_t head = view.fields().head;
    std::optional<VersionInfo> info = view.version(head);
    if (head == 0 || !info || info->state != VersionState::kLive) continue;
    body.versions[path] = head;
    result.results.push_back({"snapshot", path, head});
  }
  SK_ASSIGN_OR_RETURN(Bytes encoded, EncodeSnapshot(body));
  SK_RETURN_IF_ERROR(b.writer().PutSnapshot({name, encoded, SnapshotSeal(jk_, encoded)}));
  journal::Entry e;
  e.kind = journal::Kind::kSnapshot;
  e.actor = actor.text.substr(0, journal::kMaxActorBytes);
  e.content_digest = Sha256(encoded);
  e.detail.snapshot = name;
  return b.Append(std::move(e)).status();
}

Result<TxnResult> ServiceImpl::CreateSnapshot(const std::string& name, const std::string& prefix,
                                              const Actor& actor) {
  SK_RETURN_IF_ERROR(ValidateSnapshotName(name));
  SK_RETURN_IF_ERROR(ValidatePrefix(prefix));
  TxnResult result;
  Status st = Submit([&](Batch& b) -> Status {
    result = TxnResult{};
    SK_RETURN_IF_ERROR(WriteSnapshot(b, name, prefix, actor, result));
    result.txn_id = HexEncode(b.txn_id());
    result.seq = b.tip().seq;
    return OkStatus();
  });
  if (!st.ok()) return st;
  return result;
}

Result<SnapshotInfo> ServiceImpl::GetSnapshot(const std::string& name) {
  SK_RETURN_IF_ERROR(Fenced());
  SK_RETURN_IF_ERROR(ValidateSnapshotName(name));
  SK_ASSIGN_OR_RETURN(auto lease, readers_->Acquire());
  SK_ASSIGN_OR_RETURN(SnapshotBody body, LoadSnapshot(lease.reader(), jk_, name));
  SnapshotInfo info;
  info.name = body.name;
  info.prefix = body.prefix;
  info.created_ms = body.created_ms;
  info.versions = std::move(body.versions);
  info.verifies = true;
  return info;
}

Result<std::vector<SnapshotInfo>> ServiceImpl::ListSnapshots(const std::string& name_prefix) {
  SK_RETURN_IF_ERROR(Fenced());
  SK_ASSIGN_OR_RETURN(auto lease, readers_->Acquire());
  std::vector<std::string> names;
  SK_RETURN_IF_ERROR(lease.reader().ScanSnapshots([&](store::SnapshotRecord& r) {
    if (r.name.compare(0, name_prefix.size(), name_prefix) == 0) names.push_back(r.name);
    return names.size() < 10'000;
  }));
  std::vector<SnapshotInfo> out;
  for (const std::string& name : names) {
    SK_ASSIGN_OR_RETURN(SnapshotBody body, LoadSnapshot(lease.reader(), jk_, name));
    out.push_back({body.name, body.prefix, body.created_ms, std::move(body.versions), true});
  }
  return out;
}

Result<RestoreReport> ServiceImpl::RestoreSnapshot(
    const std::string& name, const Actor& actor,
    const std::function<OpGuard(const std::string& path)>& guard_for, const RestoreOptions& options) {
  SK_RETURN_IF_ERROR(ValidateSnapshotName(name));
  if (!options.marker.empty()) SK_RETURN_IF_ERROR(ValidateSnapshotName(options.marker));
  RestoreReport report;
  Status st = Submit([&](Batch& b) -> Status {
    report = RestoreReport{};
    SK_ASSIGN_OR_RETURN(SnapshotBody body, LoadSnapshot(b.writer(), jk_, name));
    // What keeps its current version: asked for, or a rotated credential.
    for (auto it = body.versions.begin(); it != body.versions.end();) {
      const std::string& path = it->first;
      std::string why;
      const PathFields fields = b.View(path).fields();
      if (options.keep.count(path) != 0) {
        why = "kept as asked";
      } else if (fields.pending != 0) {
        why = "a rotation is in progress (pending version " + std::to_string(fields.pending) +
              "): the rotation decides its next version";
      } else if (options.keep_rotated && ParseLabels(fields.labels).count("sealkeep.rotation") != 0) {
        why = "rotated (label sealkeep.rotation): its target no longer accepts the old value";
      }
      if (why.empty()) {
        ++it;
        continue;
      }
      report.kept.emplace(path, why);
      it = body.versions.erase(it);
    }
    // Every target must verify before anything changes.
    std::map<std::string, OpenedVersion> opened;
    for (const auto& [path, version] : body.versions) {
      auto checked = CheckForRollback(b, path, version);
      if (!checked.ok()) {
        const Status& e = checked.status();
        if (e.code() != Code::kConflict && e.code() != Code::kNotFound) return e;  // HSM/store failure
        report.failures.push_back({path, version, std::string(e.reason()), std::string(e.message())});
        continue;
      }
      opened.emplace(path, std::move(checked).value());
    }
    if (!report.failures.empty()) {
      return Conflict("snapshot " + name + " cannot be restored: " + std::to_string(report.failures.size()) +
                          " target(s) do not verify",
                      "restore_refused");
    }
    for (auto& [path, src] : opened) {
      std::uint64_t target = body.versions[path];
      PathView view = b.View(path);
      std::uint64_t head = view.fields().head;
      std::optional<VersionInfo> head_info = view.version(head);
      // Already there: the head is the target, or a live copy of it (an earlier restore or
      // rollback), so restoring twice changes nothing the second time.
      const bool head_is_target =
          head == target ||
          (head_info && head_info->from_version == target &&
           (head_info->kind == journal::Kind::kRestore || head_info->kind == journal::Kind::kRollback));
      if (head_is_target && head_info && head_info->state == VersionState::kLive) continue;
      SK_RETURN_IF_ERROR(CheckFleetManaged(options_.fleet_prefix, path, actor));
      const OpGuard guard = guard_for ? guard_for(path) : OpGuard{};
      SK_RETURN_IF_ERROR(CheckLabels(guard, view.fields(), src.entry.detail.labels));
      SK_ASSIGN_OR_RETURN(std::uint64_t v, WriteVersion(b, path, src.value.Expose(), journal::Kind::kRestore,
                                                        target, src.entry.detail.labels, std::nullopt,
                                                        src.entry.expires_ms, name, actor));
      SK_RETURN_IF_ERROR(Prune(b, path, actor, guard, "restoring " + name + " to " + path));
      report.result.results.push_back({"restore", path, v});
    }
    if (!options.marker.empty()) {
      TxnResult marked;
      SK_RETURN_IF_ERROR(WriteSnapshot(b, options.marker, body.prefix, actor, marked));
    }
    report.result.txn_id = HexEncode(b.txn_id());
    report.result.seq = b.tip().seq;
    report.applied = true;
    return OkStatus();
  });
  if (!st.ok() && st.reason() != "restore_refused") return st;
  return report;
}

}  // namespace sk::secrets::internal
