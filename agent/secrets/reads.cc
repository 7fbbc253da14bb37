// Reads: any thread. The index (under a shared lock) names the version; the store gives
// its bytes; CheckVersion proves them against the sealed entry before decrypting.
#include "agent/secrets/path.h"
#include "agent/secrets/service_impl.h"

namespace sk::secrets {
namespace {

// What a read needs from the index, copied out under the lock.
struct Located {
  PathFields fields;
  VersionInfo info;
  std::uint64_t version = 0;
  std::uint64_t global_ok_from = 0;
};

}  // namespace

std::string_view StageName(Stage s) {
  switch (s) {
    case Stage::kCurrent:
      return "current";
    case Stage::kPending:
      return "pending";
    case Stage::kPrevious:
      return "previous";
  }
  return "unknown";
}

namespace internal {

std::uint64_t StageVersion(const PathState& s, Stage stage) {
  switch (stage) {
    case Stage::kCurrent:
      return s.fields.head;
    case Stage::kPending:
      return s.fields.pending;
    case Stage::kPrevious:
      for (std::uint64_t v = s.fields.head; v > s.low && v > 1; --v) {
        if (s.versions[v - 2].state == VersionState::kLive) return v - 1;
      }
      return 0;
  }
  return 0;
}

Result<SecretValue> ServiceImpl::Get(const std::string& path, std::optional<std::uint64_t> version) {
  return Read(path, version, std::nullopt);
}

Result<SecretValue> ServiceImpl::GetStage(const std::string& path, Stage stage) {
  return Read(path, std::nullopt, stage);
}

Result<SecretValue> ServiceImpl::Read(const std::string& path, std::optional<std::uint64_t> version,
                                      std::optional<Stage> stage) {
  SK_RETURN_IF_ERROR(Fenced());
  SK_RETURN_IF_ERROR(ValidatePath(path));
  Located at;
  {
    std::shared_lock lock(index_mu_);
    const PathState* s = index_.Find(path);
    if (s == nullptr || s->fields.head == 0) return NotFound(path + " does not exist");
    if (stage) {
      at.version = StageVersion(*s, *stage);
      if (at.version == 0) {
        return NotFound(path + " has no " + std::string(StageName(*stage)) + " version", "no_such_stage");
      }
    } else {
      at.version = version.value_or(s->fields.head);
    }
    if (at.version == 0 || at.version > s->versions.size()) {
      return NotFound(path + " has no version " + std::to_string(at.version));
    }
    at.fields = s->fields;
    at.info = s->versions[at.version - 1];
    at.global_ok_from = index_.global_ok_from;
  }
  const std::string name = path + " version " + std::to_string(at.version);
  if (at.info.state == VersionState::kDeleted) return NotFound(name + " is deleted", "deleted");
  if (at.info.state == VersionState::kDestroyed) return NotFound(name + " was destroyed", "destroyed");
  if (at.info.state == VersionState::kPending && stage != Stage::kPending) {
    return NotFound(name + " is a rotation's pending version (read it with stage pending)", "pending");
  }
  if (at.info.expires_ms != 0 && at.info.expires_ms <= NowMs()) {
    return Status(Code::kExpired, "expired", name + " has expired");
  }
  VersionCheck c;
  c.path = path;
  c.version = at.version;
  c.info = at.info;
  c.fields = at.fields;
  c.global_ok_from = at.global_ok_from;
  SK_ASSIGN_OR_RETURN(auto lease, readers_->Acquire());
  CheckContext ctx{lease.reader(), lease.sealer(), *backend_,
                   store_id_,      &cache_,        /*trust_cached_entry=*/true};
  auto opened = CheckVersion(ctx, c, true);
  if (!opened.ok()) {
    const Status& st = opened.status();
    // A version that does not verify is never served; say why, as corruption.
    if (st.code() == Code::kConflict && st.reason() != "below_floor") {
      return Status(Code::kCorruption, std::string(st.reason()), std::string(st.message()));
    }
    return st;
  }
  SecretValue out;
  out.path = path;
  out.version = at.version;
  out.value = std::move(opened->value);
  out.created_ms = at.info.created_ms;
  out.expires_ms = at.info.expires_ms;
  out.labels = ParseLabels(opened->entry.detail.labels);
  return out;
}

Result<std::vector<PathSummary>> ServiceImpl::List(const std::string& prefix, std::size_t limit,
                                                   const std::string& after) {
  SK_RETURN_IF_ERROR(Fenced());
  SK_RETURN_IF_ERROR(ValidatePrefix(prefix));
  std::vector<PathSummary> out;
  std::shared_lock lock(index_mu_);
  const auto& paths = index_.ordered();
  auto start = paths.lower_bound(prefix);
  if (!after.empty() && std::string_view(after) >= prefix) start = paths.upper_bound(after);
  for (auto it = start; it != paths.end() && out.size() < limit; ++it) {
    if (it->compare(0, prefix.size(), prefix) != 0) break;
    const PathState* found = index_.Find(*it);
    if (!PathMatchesPrefix(*it, prefix) || found == nullptr || found->fields.head == 0) continue;
    const PathState& s = *found;
    PathSummary p;
    p.path = std::string(*it);
    p.head = s.fields.head;
    p.head_state = std::string(StateName(s.versions[s.fields.head - 1].state));
    p.expires_ms = s.versions[s.fields.head - 1].expires_ms;
    p.pending = s.fields.pending;
    p.floor = s.fields.floor;
    p.updated_ms = s.fields.updated_ms;
    p.labels = ParseLabels(s.fields.labels);
    out.push_back(std::move(p));
  }
  return out;
}

Result<Labels> ServiceImpl::PathLabels(const std::string& path) {
  SK_RETURN_IF_ERROR(Fenced());
  SK_RETURN_IF_ERROR(ValidatePath(path));
  std::shared_lock lock(index_mu_);
  const PathState* s = index_.Find(path);
  if (s == nullptr || s->fields.head == 0) return NotFound(path + " does not exist");
  return ParseLabels(s->fields.labels);
}

Result<std::vector<Labels>> ServiceImpl::VersionLabels(const std::string& path) {
  SK_RETURN_IF_ERROR(Fenced());
  SK_RETURN_IF_ERROR(ValidatePath(path));
  std::shared_lock lock(index_mu_);
  const PathState* s = index_.Find(path);
  if (s == nullptr || s->fields.head == 0) return NotFound(path + " does not exist");
  std::vector<Labels> out;
  out.reserve(s->versions.size());
  for (std::size_t i = 0; i < s->versions.size(); ++i) {
    // Consecutive versions mostly share their labels: parse each run once.
    if (i > 0 && s->versions[i].labels == s->versions[i - 1].labels) {
      out.push_back(out.back());
    } else {
      out.push_back(ParseLabels(s->versions[i].labels));
    }
  }
  return out;
}

Result<std::vector<VersionReport>> ServiceImpl::Versions(const std::string& path) {
  SK_RETURN_IF_ERROR(Fenced());
  SK_RETURN_IF_ERROR(ValidatePath(path));
  PathState state;
  std::uint64_t global_ok_from = 0;
  {
    std::shared_lock lock(index_mu_);
    const PathState* s = index_.Find(path);
    if (s == nullptr || s->fields.head == 0) return NotFound(path + " does not exist");
    state = *s;
    global_ok_from = index_.global_ok_from;
  }
  SK_ASSIGN_OR_RETURN(auto lease, readers_->Acquire());
  SK_ASSIGN_OR_RETURN(std::uint64_t disk_ok_from,
                      PathChainOkFrom(lease.reader(), lease.sealer(), path, state.fields));
  CheckContext ctx{lease.reader(), lease.sealer(), *backend_, store_id_, &cache_};
  std::vector<VersionReport> out;
  for (std::uint64_t v = 1; v <= state.versions.size(); ++v) {
    const VersionInfo& info = state.versions[v - 1];
    VersionReport r;
    r.version = v;
    r.state = std::string(StateName(info.state));
    r.kind = std::string(journal::KindName(info.kind));
    r.from_version = info.from_version;
    r.created_ms = info.created_ms;
    r.expires_ms = info.expires_ms;
    r.key_generation = info.key_generation;
    VersionCheck c;
    c.path = path;
    c.version = v;
    c.info = info;
    c.fields = state.fields;
    c.global_ok_from = global_ok_from;
    c.disk_chain_ok_from = disk_ok_from;
    auto checked = CheckVersion(ctx, c, true);
    if (checked.ok()) {
      r.verifies = true;
    } else if (checked.status().code() == Code::kConflict) {
      r.reason = std::string(checked.status().reason());
    } else {
      return checked.status();  // the HSM or store failed: no verdict either way
    }
    out.push_back(std::move(r));
  }
  return out;
}

Result<ChangeFeed> ServiceImpl::ChangesSince(std::uint64_t after, std::size_t max_entries) {
  SK_RETURN_IF_ERROR(Fenced());
  ChangeFeed feed;
  feed.scanned_to = after;
  if (after >= HeadSeq() || max_entries == 0) return feed;
  SK_ASSIGN_OR_RETURN(auto lease, readers_->Acquire());
  std::size_t examined = 0;
  SK_RETURN_IF_ERROR(lease.reader().ScanJournal(after + 1, [&](store::JournalRecord& r) {
    feed.scanned_to = r.seq;
    if (!r.path.empty()) {
      auto e = journal::DecodeEntry(r.entry);
      if (e.ok()) {
        feed.changes.push_back({r.seq, r.path, e->version, std::string(journal::KindName(e->kind))});
      }
    }
    return ++examined < max_entries;
  }));
  return feed;
}

std::uint64_t ServiceImpl::HeadSeq() {
  std::shared_lock lock(index_mu_);
  return index_.tip.seq;
}

}  // namespace internal
}  // namespace sk::secrets
