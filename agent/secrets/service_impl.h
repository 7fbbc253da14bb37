// Internals of SecretService, shared by its implementation files. Not a public header.
//
// Locking: index_mu_ guards index_ (readers shared; the batch runner takes it exclusively
// only to apply a committed batch, and reads it unlocked otherwise, being its only
// writer). anchor_mu_ guards anchor_. The batch runner owns the store's write
// transaction, its Sealer, and every Batch: one thread at a time, the committer thread or
// a writer committing its own job (Submit), whichever set committing_ under queue_mu_.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "agent/journal/journal_format.h"
#include "agent/journal/sealer.h"
#include "agent/secrets/dek_cache.h"
#include "agent/secrets/index.h"
#include "agent/secrets/path.h"
#include "agent/secrets/service.h"
#include "agent/secrets/version_check.h"
#include "agent/store/store.h"
#include "crypto/recovery_wrap.h"

namespace sk::secrets::internal {

std::uint64_t NowMs();
// HMAC-SHA256(JK, "sealkeep snapshot v1" || 0x00 || body): snapshot_format.h.
Digest SnapshotSeal(const SecretBytes& jk, ByteView body);
std::string CanonicalLabels(const Labels& labels);
// The version `stage` names in s (reads.cc), 0 when none.
std::uint64_t StageVersion(const PathState& s, Stage stage);
// fleet_managed (kForbidden) when `path` lies under `fleet_prefix` and `actor` is not the
// fleet sync (ServiceOptions::fleet_prefix).
Status CheckFleetManaged(const std::string& fleet_prefix, const std::string& path, const Actor& actor);
Labels ParseLabels(const std::string& canonical);

// Readers with their own Sealer, lent to one thread at a time.
class ReaderPool {
 public:
  ReaderPool(store::Store& store, const SecretBytes& journal_key) : store_(store), jk_(journal_key) {}
  struct Slot {
    std::unique_ptr<store::Reader> reader;
    std::unique_ptr<journal::Sealer> sealer;
  };
  class Lease {
   public:
    Lease(ReaderPool* pool, std::unique_ptr<Slot> slot) : pool_(pool), slot_(std::move(slot)) {}
    Lease(Lease&&) noexcept = default;
    Lease& operator=(Lease&&) noexcept = default;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() {
      if (slot_) pool_->Return(std::move(slot_));
    }
    store::Reader& reader() { return *slot_->reader; }
    journal::Sealer& sealer() { return *slot_->sealer; }

   private:
    ReaderPool* pool_;
    std::unique_ptr<Slot> slot_;
  };
  Result<Lease> Acquire();

 private:
  void Return(std::unique_ptr<Slot> slot);
  store::Store& store_;
  const SecretBytes& jk_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Slot>> free_;
};

// One batch of the committer: this batch's entries so far, in order, on top of the index.
class Batch {
 public:
  Batch(store::Writer& writer, const Index& index, journal::Sealer& sealer, std::uint64_t now_ms)
      : writer_(writer), index_(index), sealer_(sealer), tip_(index.tip), now_ms_(now_ms) {}

  PathView View(const std::string& path) const;
  // Paths under `prefix` (segment-aware, see PathMatchesPrefix) in the index or this batch.
  std::vector<std::string> PathsWithPrefix(const std::string& prefix) const;
  // Completes e (seq, time, txn id, chain links), encodes, seals and stores it.
  Result<const PendingEntry*> Append(journal::Entry e);

  store::Writer& writer() { return writer_; }
  journal::Sealer& sealer() { return sealer_; }
  const Index& index() const { return index_; }
  std::uint64_t now_ms() const { return now_ms_; }
  const JournalTip& tip() const { return tip_; }
  const std::deque<PendingEntry>& pending() const { return pending_; }
  void BeginTxn(const journal::TxnId& id) { txn_id_ = id; }
  const journal::TxnId& txn_id() const { return txn_id_; }

  std::uint64_t outbox_high = 0;                   // highest change record kept (maybe rolled back)
  bool anchor_needed = false;                      // an entry kind that must be anchored at once
  bool checkpoint_needed = false;                  // something was erased
  std::map<std::string, std::string> idempotency;  // keys recorded in this batch -> digest hex

  struct Mark {
    std::size_t pending = 0;
    JournalTip tip;
    bool anchor_needed = false, checkpoint_needed = false;
    std::map<std::string, std::string> idempotency;
  };
  Mark Save() const { return {pending_.size(), tip_, anchor_needed, checkpoint_needed, idempotency}; }
  void Restore(const Mark& m);

 private:
  store::Writer& writer_;
  const Index& index_;
  journal::Sealer& sealer_;
  JournalTip tip_;
  std::uint64_t now_ms_;
  journal::TxnId txn_id_{};
  std::deque<PendingEntry> pending_;
  std::map<std::string, std::vector<const PendingEntry*>> by_path_;
};

struct Job {
  std::function<Status(Batch&)> run;
  std::promise<Status> done;
};

// Meta keys of the recovery key (docs/recovery.md): its public half, and the journal and
// audit keys wrapped to it.
inline constexpr const char* kMetaRecoveryPublic = "recovery_public";
inline constexpr const char* kMetaRecoveryJournalKey = "recovery_journal_key";
inline constexpr const char* kMetaRecoveryAuditKey = "recovery_audit_key";

class ServiceImpl final : public SecretService {
 public:
  ServiceImpl(std::shared_ptr<hsm::KeyBackend> backend, ServiceOptions options)
      : backend_(std::move(backend)),
        options_(std::move(options)),
        cache_(options_.dek_cache_entries, options_.dek_cache_ttl) {}
  ~ServiceImpl() override;
  ServiceImpl(const ServiceImpl&) = delete;
  ServiceImpl& operator=(const ServiceImpl&) = delete;

  // service_open.cc
  Status Init(bool read_only, bool accept_rollback, const Actor& actor, std::string* recovered);

  // ops.cc
  Result<TxnResult> Transact(std::vector<Op> ops, const std::string& idempotency_key, const Actor& actor,
                             TxnFailure* failure = nullptr) override;
  // reads.cc
  Result<SecretValue> Get(const std::string& path, std::optional<std::uint64_t> version) override;
  Result<SecretValue> GetStage(const std::string& path, Stage stage) override;
  // Get and GetStage: the version named by number (head without one) or by stage.
  Result<SecretValue> Read(const std::string& path, std::optional<std::uint64_t> version,
                           std::optional<Stage> stage);
  // rotation.cc
  Result<RotationState> RotationStatus(const std::string& path) override;
  LifetimeReport Lifetimes(std::uint64_t now_ms, std::size_t max_items) override;
  Result<std::vector<PathSummary>> List(const std::string& prefix, std::size_t limit,
                                        const std::string& after) override;
  Result<std::vector<VersionReport>> Versions(const std::string& path) override;
  Result<Labels> PathLabels(const std::string& path) override;
  Result<std::vector<Labels>> VersionLabels(const std::string& path) override;
  // snapshots.cc
  Result<TxnResult> CreateSnapshot(const std::string& name, const std::string& prefix,
                                   const Actor& actor) override;
  Result<SnapshotInfo> GetSnapshot(const std::string& name) override;
  Result<std::vector<SnapshotInfo>> ListSnapshots(const std::string& name_prefix) override;
  Result<RestoreReport> RestoreSnapshot(const std::string& name, const Actor& actor,
                                        const std::function<OpGuard(const std::string& path)>& guard_for,
                                        const RestoreOptions& options) override;
  Result<ChangeFeed> ChangesSince(std::uint64_t after, std::size_t max_entries) override;
  std::uint64_t HeadSeq() override;
  // admin.cc
  Result<TxnResult> Rotate(const Actor& actor) override;
  Result<TxnResult> RecordReseal(const std::string& note, const Actor& actor) override;
  // leases.cc
  Result<TxnResult> RecordLease(const LeaseRecord& record, const Actor& actor) override;
  std::vector<LeaseRecord> Leases() override;
  Result<VerifyReport> VerifyAll() override;
  ServiceStatus Report() override;
  const SecretBytes& audit_key() const override { return ak_; }
  Result<RecoveryInitResult> InitRecovery(int threshold, int shares, bool replace,
                                          const Actor& actor) override;
  Result<RecoveryInfo> RecoveryStatus() override;
  Result<std::uint64_t> RecoveryWrapBatch(std::size_t limit) override;
  void NoteAuditSynced(std::uint64_t seq) override;
  Result<std::size_t> SettleAuditOutbox(std::uint64_t log_last_seq, bool log_created,
                                        const std::function<Status(std::vector<Bytes>)>& rewrite) override;
  Result<BackupManifest> CreateBackup(const std::string& dest) override;
  void DropCaches() override { cache_.Clear(); }
  void SweepCaches() override { cache_.SweepExpired(); }

  std::uint32_t default_max_versions() const { return options_.default_max_versions; }

  // committer.cc
  void StartCommitter();
  // Queues run() for the next batch and waits for its commit (and anchor) outcome.
  Status Submit(std::function<Status(Batch&)> run);

  // Shared by ops.cc and snapshots.cc: writes a new version of `path` holding `value`.
  Result<std::uint64_t> WriteVersion(Batch& b, const std::string& path, ByteView value, journal::Kind kind,
                                     std::uint64_t from_version, const std::string& labels,
                                     std::optional<std::uint32_t> max_versions, std::uint64_t expires_ms,
                                     const std::string& snapshot, const Actor& actor,
                                     const std::string& note = "");
  // Fully verifies a version as the committer sees it (rollback/restore) and opens it.
  Result<OpenedVersion> CheckForRollback(Batch& b, const std::string& path, std::uint64_t version);
  // Destroys the oldest versions of `path` past its retention (max_versions), journaled
  // with note "pruned". Without `guard.may_prune` a prune that would destroy anything is
  // refused (kForbidden, naming `destroy`); `what` says which op it was ("putting db/pw").
  // Writes snapshot `name` of `prefix` as the batch sees it (and its journal entry);
  // `result` gets one "snapshot" result per path. snapshot_exists when the name is taken.
  Status WriteSnapshot(Batch& b, const std::string& name, const std::string& prefix, const Actor& actor,
                       TxnResult& result);
  Status Prune(Batch& b, const std::string& path, const Actor& actor, const OpGuard& guard,
               const std::string& what);
  // The guard's label check for replacing the head of `path` with a version carrying
  // `written` (canonical labels).
  static Status CheckLabels(const OpGuard& guard, const PathFields& head, const std::string& written);
  // A destroyed version's data key leaves the cache at once.
  void ForgetVersion(const std::string& path, std::uint64_t version) { cache_.Erase(path, version); }
  VersionCheck MakeCheck(const std::string& path, std::uint64_t version, const VersionInfo& info,
                         const PathFields& fields) const;
  // OK, or why the service refuses everything (see fence_).
  Status Fenced() const override;

 private:
  void CommitterLoop();
  // Under queue_mu_: marks a batch as being committed and takes its jobs off the queue.
  std::vector<std::unique_ptr<Job>> TakeBatchLocked();
  void RunBatch(std::vector<std::unique_ptr<Job>>& jobs);
  Status AdvanceAnchor(const JournalTip& tip);
  // Incremental verification (committer, inside the batch's write transaction): the
  // store's last journal row must be the tip this service committed (seq and stored
  // seal, which the next entry links to). kSealed replay_detected when it is not. An
  // edit of the entry's bytes alone is caught on read, as at start-up.
  Status CheckStoreTip(store::Writer& w);
  Status BuildIndex(store::Reader& reader, std::uint64_t* entries);
  Status CreateStore(const Actor& actor);
  Status LoadKeys();
  // The stored recovery public key, checked against the journal's last recovery_key entry;
  // sets recovery_sealer_ (recovery.cc).
  Status LoadRecovery();
  // The current recovery sealer, or null.
  std::shared_ptr<const RecoverySealer> recovery_sealer() const;
  // Writes the sealed head on top of b, commits the store transaction, applies b to the
  // index. The anchor is not moved.
  Status CommitBatch(Batch& b);
  // At open, before the committer runs: journals `e` alone in its own transaction (a
  // recover or restored entry) and anchors the new head.
  Status JournalAndAnchor(journal::Entry e);
  void Fence(const Status& why);

  std::shared_ptr<hsm::KeyBackend> backend_;
  ServiceOptions options_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<ReaderPool> readers_;
  Bytes store_id_;
  SecretBytes jk_, ak_;
  DekCache cache_;

  mutable std::shared_mutex index_mu_;
  std::mutex lease_mu_;             // RecordLease: one lease change at a time
  std::mutex init_recovery_mu_;     // InitRecovery: one at a time
  mutable std::mutex recovery_mu_;  // guards recovery_sealer_
  std::shared_ptr<const RecoverySealer> recovery_sealer_;
  std::atomic<bool> recovery_wrapped_all_{false};  // RecoveryWrapBatch found nothing left
  // Where the next wrap batch starts (guarded by recovery_mu_): versions at or before it
  // were wrapped or could not be (those stay for verification to report).
  std::pair<std::string, std::uint64_t> recovery_cursor_;
  Index index_;

  // Held by the committer from a batch's store commit to the end of its anchor step,
  // and by VerifyAll to start its read transaction and read the anchor: so the two agree.
  std::mutex commit_gate_;
  std::mutex anchor_mu_;
  hsm::Anchor anchor_;  // the hardware anchor as last read or written
  std::chrono::steady_clock::time_point last_anchor_time_{};
  // Commits since the last anchor advance: set and cleared under commit_gate_, read by the
  // committer thread's epoch timer without it.
  std::atomic<bool> unanchored_writes_{false};
  bool anchor_behind_ = false;  // under commit_gate_: the last anchor advance failed
  // Change records kept in the store for the audit log (Actor::change_record): the highest
  // seq a committed batch may have kept, and how far they were dropped (batch runner
  // only); how far the log is synced (NoteAuditSynced).
  std::uint64_t outbox_kept_through_ = 0;
  std::uint64_t outbox_dropped_through_ = 0;
  std::atomic<std::uint64_t> audit_synced_{0};
  bool checkpoint_owed_ = false;  // batch runner only: a reader blocked the last checkpoint

  std::unique_ptr<journal::Sealer> commit_sealer_;
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::unique_ptr<Job>> queue_;
  bool stopping_ = false;
  bool committing_ = false;                // a thread (the committer, or a writer in Submit) runs a batch
  bool committer_sleeps_untimed_ = false;  // the committer thread waits with no epoch timeout
  std::thread committer_;

  // Set once, when a commit finds the store changed behind the service's back; from then
  // on every read and write fails with it (the sealed state start-up would give the same
  // store), until the service is closed.
  mutable std::mutex fence_mu_;
  Status fence_;
  std::atomic<bool> fenced_{false};

  std::atomic<std::uint64_t> commits_{0}, batches_{0}, anchor_advances_{0};
  double start_verify_seconds_ = 0;
  bool read_only_ = false;
};

}  // namespace sk::secrets::internal
