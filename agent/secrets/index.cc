#include "agent/secrets/index.h"

#include <algorithm>

namespace sk::secrets {

using journal::Kind;

std::string_view StateName(VersionState s) {
  switch (s) {
    case VersionState::kLive:
      return "live";
    case VersionState::kDeleted:
      return "deleted";
    case VersionState::kDestroyed:
      return "destroyed";
    case VersionState::kPending:
      return "pending";
  }
  return "unknown";
}

namespace {

VersionInfo Created(const journal::Entry& e, bool seal_ok) {
  VersionInfo v;
  v.created_seq = e.seq;
  v.created_ms = e.time_ms;
  v.expires_ms = e.expires_ms;
  v.from_version = e.from_version;
  v.key_generation = e.key_generation;
  v.kind = e.kind;
  v.seal_invalid = !seal_ok;
  v.labels = e.detail.labels;
  if (e.kind == Kind::kStage) v.state = VersionState::kPending;
  return v;
}

// The effect of e on one version that already exists.
void ApplyToVersion(VersionInfo& v, const journal::Entry& e, bool seal_ok) {
  switch (e.kind) {
    case Kind::kDelete:
      v.state = VersionState::kDeleted;
      break;
    case Kind::kUndelete:
      v.state = VersionState::kLive;
      break;
    case Kind::kDestroy:
    case Kind::kAbort:
      v.state = VersionState::kDestroyed;
      break;
    case Kind::kPromote:
      v.state = VersionState::kLive;
      break;
    default:
      return;
  }
  if (!seal_ok) v.seal_invalid = true;
}

}  // namespace

void ApplyEntry(PathFields& f, const journal::Entry& e, const Digest& seal, bool) {
  if (journal::WritesVersion(e.kind)) {
    f.head = std::max(f.head, e.version);
    f.labels = e.detail.labels;
    if (e.detail.max_versions) f.max_versions = *e.detail.max_versions;
  }
  if (journal::CreatesVersion(e.kind)) f.top = std::max(f.top, e.version);
  if (e.kind == Kind::kStage) f.pending = e.version;
  if (e.kind == Kind::kPromote && e.version == f.pending) {
    f.head = std::max(f.head, e.version);
    f.labels = e.detail.labels;
  }
  if ((e.kind == Kind::kPromote || e.kind == Kind::kAbort) && e.version == f.pending) f.pending = 0;
  if (e.kind == Kind::kFloor) f.floor = std::max(f.floor, e.from_version);
  f.last_seq = e.seq;
  f.last_hash = seal;
  f.updated_ms = e.time_ms;
}

void ApplyEntry(PathState& s, const journal::Entry& e, const Digest& seal, bool seal_ok) {
  if (journal::CreatesVersion(e.kind)) {
    if (e.version == s.versions.size() + 1) {
      s.versions.push_back(Created(e, seal_ok));
    } else if (e.version >= 1 && e.version <= s.versions.size()) {
      s.versions[e.version - 1] = Created(e, false);  // a version written twice: only by tampering
      s.low = std::min(s.low, e.version);
    } else if (e.version > s.versions.size() + 1) {
      // A gap in version numbers: entries were removed. The missing versions and every
      // older one are cut off from the path's chain.
      s.versions.resize(e.version - 1);
      s.versions.push_back(Created(e, seal_ok));
      s.fields.chain_ok_from = std::max(s.fields.chain_ok_from, e.seq);
    } else {
      s.fields.tainted = true;  // version 0: only by tampering
    }
  } else if (e.version >= 1 && e.version <= s.versions.size()) {
    ApplyToVersion(s.versions[e.version - 1], e, seal_ok);
    if (s.versions[e.version - 1].state != VersionState::kDestroyed) s.low = std::min(s.low, e.version);
  }
  ApplyEntry(s.fields, e, seal, seal_ok);
  // Amortised O(1): low only moves up, except after a version written twice (above).
  while (s.low <= s.versions.size() && s.versions[s.low - 1].state == VersionState::kDestroyed) ++s.low;
}

PathState& Index::Slot(const std::string& path) {
  auto [it, inserted] = paths_.try_emplace(path);
  if (inserted) {
    if (replaying_) {
      unsorted_.push_back(it->first);
    } else {
      ordered_.insert(it->first);
    }
  }
  return it->second;
}

void Index::FinishReplay() {
  std::sort(unsorted_.begin(), unsorted_.end());
  for (std::string_view p : unsorted_) ordered_.insert(ordered_.end(), p);  // sorted: O(1) each
  unsorted_.clear();
  unsorted_.shrink_to_fit();
  replaying_ = false;
}

void Index::Replay(const journal::Entry& e, const Digest& stored_seal, bool seal_ok) {
  replaying_ = true;
  if (!seal_ok) {
    ++bad_seals;
    if (bad_seqs.size() < 100) bad_seqs.push_back(e.seq);
  }
  if (e.kind == Kind::kRotate) ++rotations;
  if (e.kind == Kind::kLease && seal_ok) ApplyLeaseEntry(leases, e);
  if (e.kind == Kind::kRecoveryKey && seal_ok) {
    recovery_note = e.detail.note;
    recovery_seq = e.seq;
  }
  if (e.kind == Kind::kRestored && seal_ok) restored_seq = e.seq;
  if (e.path.empty()) return;
  PathState& s = Slot(e.path);
  if (e.prev_path_hash != s.fields.last_hash) s.fields.chain_ok_from = e.seq;
  ApplyEntry(s, e, stored_seal, seal_ok);
  // An entry that does not verify is no link: what came before it on this path does not
  // reach the head through it (as PathChainOkFrom finds on disk). So a forged floor
  // entry, say, cannot make older versions readable or rollback targets again.
  if (!seal_ok) s.fields.chain_ok_from = e.seq + 1;
}

void Index::ReplayUnparsed(const std::string& row_path, std::uint64_t seq) {
  replaying_ = true;
  ++bad_seals;
  if (bad_seqs.size() < 100) bad_seqs.push_back(seq);
  if (row_path.empty()) return;
  PathState& s = Slot(row_path);
  s.fields.tainted = true;
  s.fields.chain_ok_from = seq + 1;
}

void Index::Apply(const journal::Entry& e, const Digest& seal) {
  tip = {e.seq, seal};
  if (e.kind == Kind::kRotate) ++rotations;
  if (e.kind == Kind::kLease) ApplyLeaseEntry(leases, e);
  if (e.kind == Kind::kRecoveryKey) {
    recovery_note = e.detail.note;
    recovery_seq = e.seq;
  }
  if (e.kind == Kind::kRestored) restored_seq = e.seq;
  if (e.path.empty()) return;
  ApplyEntry(Slot(e.path), e, seal, true);
}

const PathState* Index::Find(std::string_view path) const {
  auto it = paths_.find(path);
  return it == paths_.end() ? nullptr : &it->second;
}

PathFields PathView::fields() const {
  PathFields f = base_ != nullptr ? base_->fields : PathFields{};
  if (pending_ != nullptr) {
    for (const PendingEntry* p : *pending_) ApplyEntry(f, p->entry, p->seal, true);
  }
  return f;
}

std::optional<VersionInfo> PathView::version(std::uint64_t v) const {
  std::optional<VersionInfo> out;
  if (base_ != nullptr && v >= 1 && v <= base_->versions.size()) out = base_->versions[v - 1];
  if (pending_ != nullptr) {
    for (const PendingEntry* p : *pending_) {
      const journal::Entry& e = p->entry;
      if (e.version != v) continue;
      if (journal::CreatesVersion(e.kind)) {
        out = Created(e, true);
      } else if (out) {
        ApplyToVersion(*out, e, true);
      }
    }
  }
  return out;
}

}  // namespace sk::secrets
