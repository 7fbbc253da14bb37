// The in-memory index: what the journal says about every path, rebuilt from the journal
// at start-up and extended with each commit. The journal is the source of truth; the
// store's version rows only hold bytes, which are checked against their entries on read.
//
// Effects are defined once (ApplyEntry) and used both when replaying the journal and when
// the committer previews a batch (PathView over pending entries), so the live state and a
// restarted agent's state cannot disagree.
//
// Thread safety: Index is guarded by its owner (SecretService): readers under a shared
// lock, the committer under an exclusive lock when it applies a committed batch.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/journal/journal_format.h"
#include "agent/secrets/lease_record.h"

namespace sk::secrets {

// kPending: a rotation's new version (journal kStage), above the head until it is promoted
// (kLive, the head) or aborted (kDestroyed).
enum class VersionState : std::uint8_t { kLive, kDeleted, kDestroyed, kPending };
std::string_view StateName(VersionState s);

struct VersionInfo {
  std::uint64_t created_seq = 0;  // the entry that wrote this version
  std::uint64_t created_ms = 0;
  std::uint64_t expires_ms = 0;    // 0: never
  std::uint64_t from_version = 0;  // rollback/restore source
  std::uint32_t key_generation = 0;
  journal::Kind kind = journal::Kind::kPut;
  VersionState state = VersionState::kLive;
  bool seal_invalid = false;  // an entry about this version failed its seal check
  std::string labels;         // canonical, as its entry wrote them (policy conditions per version)
};

// Path-wide facts other than the version list.
struct PathFields {
  std::uint64_t head = 0;     // the current version: the highest one written as a head
  std::uint64_t top = 0;      // the highest version number used: head, or a pending or aborted one above it
  std::uint64_t pending = 0;  // a rotation's pending version (top), 0 when none
  std::uint64_t floor = 0;
  std::uint32_t max_versions = 0;  // 0: the service default
  std::string labels;              // of the head
  std::uint64_t last_seq = 0;      // last entry about this path
  Digest last_hash{};
  std::uint64_t updated_ms = 0;
  std::uint64_t chain_ok_from = 0;  // entries below this seq are cut off from the path's chain
  bool tainted = false;             // an entry naming this path could not be parsed
};

struct PathState {
  PathFields fields;
  std::vector<VersionInfo> versions;  // versions[i] is version i + 1
  std::uint64_t low = 1;              // every version below this one is destroyed
};

// Applies one entry's effect. `seal_ok` false marks the versions it touches.
void ApplyEntry(PathFields& fields, const journal::Entry& e, const Digest& seal, bool seal_ok);
void ApplyEntry(PathState& state, const journal::Entry& e, const Digest& seal, bool seal_ok);
// A kLease entry's effect on the leases (leases.cc): a new lease when it is created, a new
// state when the transition is allowed; anything else is ignored.
void ApplyLeaseEntry(std::map<std::string, LeaseRecord>& leases, const journal::Entry& e);

struct JournalTip {
  std::uint64_t seq = 0;
  Digest hash{};
};

class Index {
 public:
  // Replay: applies an entry read from the journal (start-up). Tracks per-path chain
  // links (a link that does not match, or an entry whose seal does not verify, cuts
  // the path's older entries off); the caller tracks the global chain.
  void Replay(const journal::Entry& e, const Digest& stored_seal, bool seal_ok);
  // Replay of an entry that did not parse: taints the row's path.
  void ReplayUnparsed(const std::string& row_path, std::uint64_t seq);
  // Ends a replay: sorts the paths it found into the ordered view in one go.
  void FinishReplay();
  // Applies an entry the committer wrote (seal known good, links known good).
  void Apply(const journal::Entry& e, const Digest& seal);

  const PathState* Find(std::string_view path) const;
  std::size_t size() const { return paths_.size(); }
  // Every path, sorted (views of the index's own keys), for listings by prefix.
  const std::set<std::string_view>& ordered() const { return ordered_; }

  JournalTip tip;                    // global head
  std::uint64_t global_ok_from = 0;  // entries below this seq are cut off from the head
  std::uint64_t bad_seals = 0;
  std::vector<std::uint64_t> bad_seqs;  // first few, for reports
  std::uint32_t rotations = 0;
  // Every lease the journal names, by id (lease entries carry no path).
  std::map<std::string, LeaseRecord> leases;
  // The note of the last kRecoveryKey entry whose seal verifies (it names the recovery
  // public key; the stored key must match it). Empty: no recovery key.
  std::string recovery_note;
  std::uint64_t recovery_seq = 0;
  // The seq of the last `restored` entry (0: none).
  std::uint64_t restored_seq = 0;

 private:
  PathState& Slot(const std::string& path);
  bool replaying_ = false;  // new paths go to unsorted_ until FinishReplay
  std::vector<std::string_view> unsorted_;

  // Hashed for the lookups every entry and read makes; node-based, so the key strings
  // stay put and `ordered_` can point at them.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, PathState, Hash, std::equal_to<>> paths_;
  std::set<std::string_view> ordered_;
};

// A pending (not yet committed) entry of the current batch.
struct PendingEntry {
  journal::Entry entry;
  Digest seal{};
};

// A path as the committer sees it mid-batch: the committed state plus this batch's
// pending entries, in order. Cheap: pending lists are short.
class PathView {
 public:
  PathView(const PathState* base, const std::vector<const PendingEntry*>* pending)
      : base_(base), pending_(pending) {}
  bool exists() const { return fields().head > 0 || fields().last_seq > 0; }
  PathFields fields() const;
  std::optional<VersionInfo> version(std::uint64_t v) const;
  // Every version below this one is destroyed (pending entries only destroy more).
  std::uint64_t low() const { return base_ != nullptr ? base_->low : 1; }

 private:
  const PathState* base_;
  const std::vector<const PendingEntry*>* pending_;
};

}  // namespace sk::secrets
