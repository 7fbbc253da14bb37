// SecretService: versioned, envelope-encrypted secrets over a Store, every change sealed
// in the journal and anchored in the backend's hardware (docs/design.md-4). This is the
// library the daemon serves and the tests drive; it knows nothing of HTTP or policy
// (callers authorise first, pass who asked as an Actor, and give each op an OpGuard for
// what only its batch can tell: whether it prunes, lowers retention, which labels it meets).
//
// Writes: every change is a transaction (Transact); Put, Delete... are one-op
// transactions. A single committer thread applies queued transactions in batches, each
// batch in one store transaction (one fsync: group commit), each transaction inside a
// savepoint so one failing transaction does not fail its batch-mates. A commit then
// moves the hardware anchor when the anchor mode says so, then acknowledges.
// Reads: any thread; the in-memory index gives the version, the store gives its bytes,
// which are checked against the sealed entry before the value is decrypted.
//
// Incremental verification: each batch's write transaction first reads the store's last
// journal row and checks it is the tip this service committed (seq and seal: the chain's
// links). If it is not, another process changed the store file: the batch fails
// with kSealed replay_detected (what start-up reports for the same file), nothing is
// written, and every later call (reads too) fails with that status until the service
// is closed. VerifyAll still runs, to say what changed.
//
// anchor_unavailable (kUnavailable): a commit is durable but the anchor could not be
// advanced. The next commit retries the advance in either mode (epoch mode also retries
// from its timer), and so does the next start (roll forward).
//
// Thread-safe: every public method may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "agent/secrets/lease_record.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"
#include "hsm/key_backend.h"

namespace sk::secrets {

enum class AnchorMode { kStrict, kEpoch };
std::string_view AnchorModeName(AnchorMode m);

// Crash points for the crash and fault tests; never set in production.
struct FaultHooks {
  std::function<void()> after_store_commit;   // a batch's entries synced, anchor not yet moved
  std::function<void()> after_anchor_update;  // anchor moved, not yet acknowledged
};

struct ServiceOptions {
  std::string store_path;  // the SQLite file, e.g. <state>/store.db
  std::string vfs;         // "" (default) or "sk-fault" (fault tests)
  AnchorMode anchor_mode = AnchorMode::kEpoch;
  std::chrono::milliseconds epoch_interval{60'000};
  std::uint32_t default_max_versions = 0;  // 0: keep every version
  std::size_t max_value_bytes = 64 * 1024;
  std::size_t dek_cache_entries = 4096;  // 0 disables the cache
  std::chrono::milliseconds dek_cache_ttl{300'000};
  int verify_threads = 2;
  bool read_only = false;       // offline verification: no writes, no anchor moves
  std::size_t max_batch = 512;  // transactions per group commit
  std::chrono::hours idempotency_ttl{24};
  const FaultHooks* hooks = nullptr;
  // Restoring a backup onto new hardware (docs/recovery.md): the backup's head as its
  // sealed manifest names it, and the note of the `restored` entry. When set, Open accepts
  // a store whose head is exactly this on hardware whose anchor is fresh (seq 0): it
  // journals a `restored` entry and anchors it, where it would otherwise refuse the store
  // as a replay. Anchored hardware is refused (restore_target_not_fresh).
  // With same_hardware (a restore on the hardware that anchors a later head, accepted
  // with --accept-loss): the anchor need not be fresh; the entry records the loss.
  struct AdoptBackup {
    std::uint64_t head_seq = 0;
    Digest head_hash{};
    std::string note;
    bool same_hardware = false;
    std::string actor;  // who restores, for the entry
  };
  std::optional<AdoptBackup> adopt_backup;
  // Called by the committer after each batch that wrote journal entries is stored (and
  // the anchor moved, when it had to), with the new head's seq, before the batch's callers
  // are answered: the watch hub's wake-up. Must not block.
  std::function<void(std::uint64_t head_seq)> on_commit;
  // The paths the fleet manages (docs/fleet.md): `fleet_prefix` and everything under it are
  // changed only by the agent's fleet sync (an Actor with `fleet` set); any other change
  // there, a restore included, is refused with fleet_managed (kForbidden). "" = no fleet.
  std::string fleet_prefix;
};

// Who asked: peer identity text recorded in the journal ("uid=0 pid=12 unit=x.service"),
// and the scope of its idempotency keys: the same key under two scopes names two
// requests, so one caller can neither block nor probe another's keys. The daemon scopes by
// the caller's uid and systemd unit; "" (library callers, tests) is one shared scope.
// A change's audit record as the store keeps it: its seq in the audit log and its bytes.
struct ChangeRecord {
  std::uint64_t log_seq = 0;
  Bytes record;
};

struct Actor {
  Actor() = default;
  explicit Actor(std::string text_in, std::string scope = "")
      : text(std::move(text_in)), idempotency_scope(std::move(scope)) {}
  std::string text;
  std::string idempotency_scope;
  // Set by the daemon for a change made through the API (Transact only): called by the
  // committer in the change's job, before its ops. It writes the change's "allowed" record
  // to the audit log, unsynced, and returns it; the store keeps it in the change's own
  // transaction until the log is synced past it (NoteAuditSynced). So one sync makes the
  // change and its record durable, and a crash before the log's sync loses no record
  // (SettleAuditOutbox). An error fails the change: nothing is written.
  std::function<Result<ChangeRecord>()> change_record;
  // The fleet sync applying an entry of the fleet journal: the only actor that may change
  // ServiceOptions::fleet_prefix's paths.
  bool fleet = false;
};

using Labels = std::map<std::string, std::string>;

// What an op may do beyond its own capability, decided from the caller's policy before the
// op is queued and applied by the committer inside the op's batch, where the op's real
// effect is known (so no concurrent change slips between the check and the commit). The
// defaults allow everything (library callers; the daemon's built-in policy).
struct OpGuard {
  // A put, rollback or restore that would destroy versions past the path's retention
  // (max_versions) needs `destroy` on the path; refused (kForbidden) without it.
  bool may_prune = true;
  // A put that sets max_versions below the path's current setting needs `admin`.
  bool may_lower_retention = true;
  // A put, rollback or restore replaces the head of its path, whose version carries `head`
  // (nullptr: the path has no version yet), with a version that carries `written` (the
  // labels it asks for, or else the ones it inherits). OK when the op's capability holds
  // for both; otherwise the status is the op's answer. Empty: no label conditions.
  std::function<Status(const Labels* head, const Labels& written)> labels;
};

struct Op {
  // kStage, kPromote, kAbort: a staged rotation (docs/rotation.md). Stage writes a pending
  // version (value, labels, expires_in_s; `note` says who rotates and how) above the head of
  // a path that has a live head and no pending version; promote makes the pending
  // `version` the head; abort erases it (`note`: why). While a version is pending, puts,
  // rollbacks, restores and state changes of the head or the pending version are refused
  // with rotation_in_progress (kConflict).
  enum class Type {
    kPut,
    kDelete,
    kUndelete,
    kDestroy,
    kRollback,
    kCheckVersion,
    kFloor,
    kStage,
    kPromote,
    kAbort
  };
  Type type = Type::kPut;
  std::string path;
  SecretBytes value;                          // put
  std::optional<std::uint64_t> cas;           // the head version the caller saw (0: path must not exist)
  std::optional<std::uint64_t> version;       // delete/undelete/destroy: which (default: head);
                                              // check-version: the head it must be; rollback: target
  std::uint64_t expires_in_s = 0;             // put: 0 never
  Labels labels;                              // put
  std::optional<std::uint32_t> max_versions;  // put
  std::uint64_t floor = 0;                    // floor
  std::string note;                           // stage, abort (at most 1024 printable characters)
  // stage: the label sealkeep.rotation of the pending version, set inside the batch on the
  // labels it carries (those given, else the head's as the batch sees them); "" keeps the
  // value those labels have, else "manual".
  std::string rotation_label;
  // When not empty, the idempotency digest covers this instead of the value: a value the
  // agent generated differs on every retry, its generator spec does not.
  std::string digest_as;
  OpGuard guard;  // put, rollback, stage, promote
};
std::string_view OpTypeName(Op::Type t);

struct OpResult {
  std::string op;
  std::string path;
  std::uint64_t version = 0;  // written (put/rollback) or affected
};

struct TxnResult {
  std::string txn_id;     // hex
  std::uint64_t seq = 0;  // journal head after the commit
  std::vector<OpResult> results;
  bool replayed = false;  // an idempotent retry: nothing was applied this time
};

// Which op of a failed transaction failed, so a caller can tell a refused rollback from
// another op's failure that shares its reason (a put's cas_mismatch) without reading the
// message. Unset (op = 0, kPut) when the transaction failed as a whole.
struct TxnFailure {
  std::size_t op = 0;  // 1-based; 0: not one op's failure
  Op::Type type = Op::Type::kPut;
};

struct SecretValue {
  std::string path;
  std::uint64_t version = 0;
  SecretBytes value;
  std::uint64_t created_ms = 0;
  std::uint64_t expires_ms = 0;
  Labels labels;
};

struct PathSummary {
  std::string path;
  std::uint64_t head = 0;
  std::string head_state;
  std::uint64_t expires_ms = 0;  // of the head (0: never)
  std::uint64_t pending = 0;     // a rotation's pending version (0: none)
  std::uint64_t floor = 0;
  std::uint64_t updated_ms = 0;
  Labels labels;
};

struct VersionReport {
  std::uint64_t version = 0;
  std::string state;  // live, deleted, destroyed
  std::string kind;   // put, rollback, restore
  std::uint64_t from_version = 0;
  std::uint64_t created_ms = 0;
  std::uint64_t expires_ms = 0;
  std::uint32_t key_generation = 0;
  bool verifies = false;
  std::string reason;  // why not, when !verifies
};

// Which version a staged read names (GET ?stage=): the head; a rotation's pending version;
// or the previous one, the newest live version below the head (what was current before
// the last rotation finished, so a client mid-switch keeps working).
enum class Stage { kCurrent, kPending, kPrevious };
std::string_view StageName(Stage s);  // current, pending, previous

// Where a path's rotation stands (GET /v1/secrets/{path}/rotation).
struct RotationState {
  std::uint64_t current = 0;  // the head
  std::uint64_t current_created_ms = 0;
  std::uint64_t current_expires_ms = 0;
  std::uint64_t pending = 0;  // 0: no rotation in progress
  std::uint64_t pending_created_ms = 0;
  std::uint64_t previous = 0;  // 0: none
  std::uint64_t every_s = 0;   // from the head's label sealkeep.rotation ("30d"); 0: no schedule
  std::uint64_t due_ms = 0;    // current_created_ms + every (0: no schedule)
  Labels labels;               // the head's
};

// The label that marks a rotated path. Its value is the schedule ("30d", "12h"; see
// ParseRotationEvery) or any other text (rotated by hand, no schedule).
inline constexpr std::string_view kRotationLabel = "sealkeep.rotation";
// "90s", "15m", "12h", "30d" (a whole number and one unit) in seconds; nullopt otherwise.
std::optional<std::uint64_t> ParseRotationEvery(std::string_view text);

// Lifetimes of every path's head, for /metrics, alerts and `sealkeep ls --expiring`.
struct LifetimeItem {
  std::string path;
  std::uint64_t version = 0;
  std::uint64_t at_ms = 0;  // when it expires, or when its rotation is due
};
struct LifetimeReport {
  std::uint64_t expired = 0;  // heads past their expiry
  // Heads not yet expired that expire within 1, 7, 30 days (each count includes the shorter).
  std::uint64_t within_1d = 0, within_7d = 0, within_30d = 0;
  std::uint64_t rotations_due = 0;      // scheduled (label) and due, no rotation in progress
  std::uint64_t rotations_pending = 0;  // a rotation in progress
  std::vector<LifetimeItem> expiring;   // not expired, within 30 days, soonest first (the first max_items)
  std::vector<LifetimeItem> due;        // rotations due, most overdue first (the first max_items)
};

struct SnapshotInfo {
  std::string name;
  std::string prefix;
  std::uint64_t created_ms = 0;
  std::map<std::string, std::uint64_t> versions;
  bool verifies = false;
};

// One journal entry that touched a path: what GET /v1/watch reports.
struct Change {
  std::uint64_t seq = 0;
  std::string path;
  std::uint64_t version = 0;
  std::string kind;  // journal::KindName: put, delete, undelete, destroy, rollback, restore, floor
};

struct ChangeFeed {
  std::uint64_t scanned_to = 0;  // the last seq examined (the `after` asked for when none)
  std::vector<Change> changes;   // in seq order
};

// What RestoreSnapshot leaves as it is, and what it records in the same transaction.
struct RestoreOptions {
  std::set<std::string> keep;  // paths whose current version stays
  // Paths whose head carries the label `sealkeep.rotation` keep their current version too:
  // a rotated credential must not go back to a value its target no longer accepts.
  bool keep_rotated = false;
  std::string marker;  // a snapshot (of the prefix after the restore) made in the same transaction
};

struct RestoreFailure {
  std::string path;
  std::uint64_t version = 0;
  std::string reason;
  std::string message;
};

struct RestoreReport {
  bool applied = false;
  std::vector<RestoreFailure> failures;     // why nothing was applied
  TxnResult result;                         // when applied
  std::map<std::string, std::string> kept;  // path -> why it kept its version (RestoreOptions)
};

struct JournalProblem {
  std::uint64_t seq = 0;
  std::string path;
  std::uint64_t version = 0;
  std::string reason;  // seal_invalid, chain_broken, content_mismatch, ...
  std::string detail;
};

struct VerifyReport {
  bool ok = false;
  std::uint64_t entries = 0;
  std::uint64_t versions_checked = 0;
  std::uint64_t head_seq = 0;
  std::string head_hash;  // hex
  hsm::Anchor anchor;
  std::string anchor_state;              // in_sync, ahead_of_anchor, replay
  std::vector<JournalProblem> problems;  // the first 1000
  double seconds = 0;
};

// The recovery key (docs/recovery.md).
struct RecoveryInfo {
  bool configured = false;
  std::string key_id;  // hex, 16 digits
  int threshold = 0, shares = 0;
  std::uint64_t seq = 0;       // the journal entry that set it
  std::uint64_t versions = 0;  // live versions
  std::uint64_t wrapped = 0;   // of them, with a data key wrapped to the recovery key
};
struct RecoveryInitResult {
  RecoveryInfo info;
  std::vector<SecretBytes> shares;  // the share lines (recovery_share.h), shown once
  std::string txn_id;
};

// What a backup file's sealed manifest says (docs/recovery.md).
struct BackupManifest {
  std::string store_id;  // hex
  std::uint64_t head_seq = 0;
  Digest head_hash{};
  std::uint64_t versions = 0;
  std::string recovery_key_id;  // hex; empty: the store had no recovery key
  std::uint64_t recovery_wrapped = 0;
  std::uint64_t created_ms = 0;
};

struct ServiceStatus {
  hsm::BackendInfo backend;
  std::uint64_t head_seq = 0;
  std::string head_hash;
  hsm::Anchor anchor;
  std::string anchor_mode;
  std::uint64_t paths = 0;
  std::uint64_t journal_problems = 0;  // entries that failed verification at start-up
  std::uint64_t commits = 0, batches = 0, anchor_advances = 0;
  std::uint64_t dek_cache_hits = 0, dek_cache_misses = 0, dek_cache_size = 0;
  double start_verify_seconds = 0;
};

class SecretService {
 public:
  // Opens the store (creating it on first start), unwraps the journal key, verifies the
  // whole journal and checks it against the hardware anchor (rolling it forward after a
  // crash). Errors: replay_detected (kSealed) when the store is older than the anchor or
  // not the anchored history; store_* from the store; backend errors.
  static Result<std::unique_ptr<SecretService>> Open(std::shared_ptr<hsm::KeyBackend> backend,
                                                     const ServiceOptions& options);
  // `sealkeep recover --accept-rollback`: accepts a store that Open refuses with
  // replay_detected as the new truth. Journaled (kind recover) and anchored.
  static Result<std::string> AcceptRollback(std::shared_ptr<hsm::KeyBackend> backend,
                                            const ServiceOptions& options, const Actor& actor);
  virtual ~SecretService() = default;

  // The audit log is synced through `seq` (the daemon says so after each sync): the change
  // records the store keeps at or below it are dropped with the next commit.
  virtual void NoteAuditSynced(std::uint64_t seq) = 0;
  // Right after the audit log is opened (its last record was `log_last_seq`; `log_created`:
  // the log was empty): hands `rewrite` the kept change records the log does not hold (the
  // power failed before its sync), in order, then drops every kept record. Returns how
  // many were handed over. Call it before any change is made through this service.
  virtual Result<std::size_t> SettleAuditOutbox(std::uint64_t log_last_seq, bool log_created,
                                                const std::function<Status(std::vector<Bytes>)>& rewrite) = 0;

  // `failure` (optional) says which op failed when the transaction did.
  virtual Result<TxnResult> Transact(std::vector<Op> ops, const std::string& idempotency_key,
                                     const Actor& actor, TxnFailure* failure = nullptr) = 0;
  // A pending version is not served by number: GetStage(kPending) reads it.
  virtual Result<SecretValue> Get(const std::string& path, std::optional<std::uint64_t> version) = 0;
  // The version `stage` names; NotFound (reason no_such_stage) when there is none.
  virtual Result<SecretValue> GetStage(const std::string& path, Stage stage) = 0;
  virtual Result<RotationState> RotationStatus(const std::string& path) = 0;
  // One pass over the index (no I/O).
  virtual LifetimeReport Lifetimes(std::uint64_t now_ms, std::size_t max_items) = 0;
  // Paths under `prefix` (segment-aware) that sort after `after` ("" = from the first), in
  // order, at most `limit` of them: bounded work under the index lock whatever the prefix.
  virtual Result<std::vector<PathSummary>> List(const std::string& prefix, std::size_t limit,
                                                const std::string& after = "") = 0;
  virtual Result<std::vector<VersionReport>> Versions(const std::string& path) = 0;
  // Labels of a path's latest version, for policy conditions (NotFound if no such path).
  virtual Result<Labels> PathLabels(const std::string& path) = 0;
  // Labels of each version of a path, [0] for version 1 (destroyed ones too: labels are
  // in the journal, not in the erased bytes). NotFound if no such path. From the index: no I/O.
  virtual Result<std::vector<Labels>> VersionLabels(const std::string& path) = 0;

  virtual Result<TxnResult> CreateSnapshot(const std::string& name, const std::string& prefix,
                                           const Actor& actor) = 0;
  virtual Result<SnapshotInfo> GetSnapshot(const std::string& name) = 0;
  // The snapshots whose names start with `name_prefix`, in name order (bodies checked).
  virtual Result<std::vector<SnapshotInfo>> ListSnapshots(const std::string& name_prefix) = 0;
  // `guard_for` (empty: allow everything) gives each restored path its OpGuard.
  virtual Result<RestoreReport> RestoreSnapshot(
      const std::string& name, const Actor& actor,
      const std::function<OpGuard(const std::string& path)>& guard_for = {},
      const RestoreOptions& options = {}) = 0;

  // Journal entries that touched a path, after `after`: at most `max_entries` entries are
  // examined (bounded work whatever the gap), from the store as committed.
  virtual Result<ChangeFeed> ChangesSince(std::uint64_t after, std::size_t max_entries) = 0;
  // The committed head's seq (no I/O).
  virtual std::uint64_t HeadSeq() = 0;

  // Makes a new master-key generation and re-wraps JK, AK and every data key under it.
  virtual Result<TxnResult> Rotate(const Actor& actor) = 0;
  // Journals that an admin re-sealed the master key to a new boot state (`note` says how).
  virtual Result<TxnResult> RecordReseal(const std::string& note, const Actor& actor) = 0;
  // Journals a lease's new state (lease_record.h): a new id must be `creating`; a known one
  // takes only its new state and reason from `record` and must follow the diagram.
  // Errors: bad_lease (kInvalidArgument), no_such_lease (kNotFound), lease_state
  // (kFailedPrecondition), and a commit's.
  virtual Result<TxnResult> RecordLease(const LeaseRecord& record, const Actor& actor) = 0;
  // Every lease the journal names, oldest first (revoked ones too).
  virtual std::vector<LeaseRecord> Leases() = 0;

  // Makes a recovery key (docs/recovery.md): a P-256 key pair whose private half is
  // returned as `shares` Shamir shares (any `threshold` rebuild it) and kept nowhere; its
  // public half is stored, the journal and audit keys are wrapped to it, and from now on
  // every new version's data key too, in the version's transaction. Journaled (kind
  // recovery_key). Existing versions are wrapped by RecoveryWrapBatch. `replace`: a new
  // key replaces the current one (recovery rotate); otherwise an existing key is
  // recovery_exists (kFailedPrecondition), and replace without one no_recovery_key.
  // bad_recovery_params (kInvalidArgument) unless 2 <= threshold <= shares <= 16.
  virtual Result<RecoveryInitResult> InitRecovery(int threshold, int shares, bool replace,
                                                  const Actor& actor) = 0;
  virtual Result<RecoveryInfo> RecoveryStatus() = 0;
  // Wraps the data keys of up to `limit` live versions that lack a wrap to the current
  // recovery key, in one transaction (not journaled: a recovery wrap is checked against
  // the version's key commitment when used). Returns how many it wrapped (0: done, or
  // no recovery key). Versions whose key does not unwrap are left (verification reports them).
  virtual Result<std::uint64_t> RecoveryWrapBatch(std::size_t limit) = 0;
  // Writes a consistent copy of the store to the new file `dest` (SQLite's online backup,
  // from one read transaction; writers go on) with a manifest sealed by the journal key.
  virtual Result<BackupManifest> CreateBackup(const std::string& dest) = 0;

  // Full verification of the store as it is on disk, in one read transaction (commits
  // may land meanwhile) against the anchor as it stood at that snapshot: every seal,
  // both chains, the sealed head and the anchor, every version row against its entry
  // (erased exactly when destroyed; ciphertext digest, one data-key unwrap per version
  // holding bytes, key commitment, value), and every snapshot's seal and journaled
  // digest. More than start-up does (no unwraps there): see docs/journal.md.
  virtual Result<VerifyReport> VerifyAll() = 0;
  virtual ServiceStatus Report() = 0;
  // The audit key AK (unwrapped at open), for the audit log.
  virtual const SecretBytes& audit_key() const = 0;
  // Drops cached data keys (sys/seal does this before closing the service).
  virtual void DropCaches() = 0;
  // Drops cached data keys whose TTL has passed (the daemon calls it every tick, so a key
  // of a rarely read secret does not stay in memory until LRU eviction).
  virtual void SweepCaches() = 0;
  // OK, or why this service now refuses every request: the store was changed behind its
  // back (replay_detected, found by the per-commit check). The agent then seals itself,
  // so health, metrics and sys/recover see it as start-up would (daemon/agent.h).
  virtual Status Fenced() const = 0;
};

// Convenience one-op transactions.
Result<TxnResult> Put(SecretService& s, const std::string& path, ByteView value, const Actor& actor,
                      std::optional<std::uint64_t> cas = std::nullopt);
Result<TxnResult> Rollback(SecretService& s, const std::string& path, std::uint64_t to, const Actor& actor,
                           std::optional<std::uint64_t> cas = std::nullopt);

}  // namespace sk::secrets
