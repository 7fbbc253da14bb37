// The committer: one thread applying queued transactions in batches (group commit), and
// the Batch every transaction writes through.
#include <algorithm>
#include <chrono>

#include "agent/secrets/service_impl.h"
#include "crypto/random.h"

namespace sk::secrets::internal {

std::uint64_t NowMs() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

std::string CanonicalLabels(const Labels& labels) {
  std::string out;
  for (const auto& [k, v] : labels) {  // std::map: sorted by key
    if (!out.empty()) out += '\n';
    out += k + "=" + v;
  }
  return out;
}

Labels ParseLabels(const std::string& canonical) {
  Labels out;
  std::size_t start = 0;
  while (start < canonical.size()) {
    std::size_t end = canonical.find('\n', start);
    if (end == std::string::npos) end = canonical.size();
    std::string line = canonical.substr(start, end - start);
    std::size_t eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
    start = end + 1;
  }
  return out;
}

PathView Batch::View(const std::string& path) const {
  auto it = by_path_.find(path);
  return PathView(index_.Find(path), it == by_path_.end() ? nullptr : &it->second);
}

std::vector<std::string> Batch::PathsWithPrefix(const std::string& prefix) const {
  std::vector<std::string> out;
  const auto& paths = index_.ordered();
  for (auto it = paths.lower_bound(prefix); it != paths.end(); ++it) {
    if (it->compare(0, prefix.size(), prefix) != 0) break;
    if (PathMatchesPrefix(*it, prefix)) out.emplace_back(*it);
  }
  for (const auto& [path, entries] : by_path_) {
    if (PathMatchesPrefix(path, prefix) && index_.Find(path) == nullptr) out.push_back(path);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<const PendingEntry*> Batch::Append(journal::Entry e) {
  e.seq = tip_.seq + 1;
  e.time_ms = now_ms_;
  e.txn_id = txn_id_;
  e.prev_hash = tip_.hash;
  if (!e.path.empty()) e.prev_path_hash = View(e.path).fields().last_hash;
  SK_ASSIGN_OR_RETURN(Bytes encoded, journal::EncodeEntry(e));
  Digest seal = sealer_.SealEntry(encoded);
  SK_RETURN_IF_ERROR(writer_.AppendEntry({e.seq, e.path, std::move(encoded), seal}));
  switch (e.kind) {
    case journal::Kind::kRollback:
    case journal::Kind::kRestore:
    case journal::Kind::kFloor:
    case journal::Kind::kRotate:
    case journal::Kind::kRecover:
    case journal::Kind::kPromote:  // a rotated-away credential must not come back with an old store
      anchor_needed = true;
      break;
    case journal::Kind::kDestroy:
    case journal::Kind::kAbort:
      // A prune (note "pruned") destroys a version as surely as an explicit destroy does:
      // both are anchored at once, so an older copy of the store cannot bring it back.
      checkpoint_needed = true;
      anchor_needed = true;
      break;
    default:
      break;
  }
  tip_ = {e.seq, seal};
  pending_.push_back(PendingEntry{std::move(e), seal});
  const PendingEntry* p = &pending_.back();
  if (!p->entry.path.empty()) by_path_[p->entry.path].push_back(p);
  return p;
}

void Batch::Restore(const Mark& m) {
  while (pending_.size() > m.pending) {
    const PendingEntry& p = pending_.back();
    if (!p.entry.path.empty()) {
      auto it = by_path_.find(p.entry.path);
      it->second.pop_back();
      if (it->second.empty()) by_path_.erase(it);
    }
    pending_.pop_back();
  }
  tip_ = m.tip;
  anchor_needed = m.anchor_needed;
  checkpoint_needed = m.checkpoint_needed;
  idempotency = m.idempotency;
}

ServiceImpl::~ServiceImpl() {
  {
    std::lock_guard lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (committer_.joinable()) committer_.join();
}

void ServiceImpl::StartCommitter() {
  std::lock_guard lock(anchor_mu_);
  last_anchor_time_ = std::chrono::steady_clock::now();
  committer_ = std::thread([this] { CommitterLoop(); });
}

Status ServiceImpl::Submit(std::function<Status(Batch&)> run) {
  if (read_only_) return FailedPrecondition("the store is open read-only", "read_only");
  SK_RETURN_IF_ERROR(Fenced());
  auto job = std::make_unique<Job>();
  job->run = std::move(run);
  std::future<Status> done = job->done.get_future();
  std::vector<std::unique_ptr<Job>> lead;
  {
    std::lock_guard lock(queue_mu_);
    if (stopping_) return Status(Code::kSealed, "sealed", "the service is shutting down");
    queue_.push_back(std::move(job));
    if (!committing_) {
      // Nobody is committing: this thread commits the queue itself, sparing a lone writer
      // two thread hand-overs (to the committer thread and back), each a wake-up of an idle
      // CPU. Writers that come meanwhile queue up and the committer thread takes them as
      // one batch when this one is done: group commit as before.
      lead = TakeBatchLocked();
    }
  }
  if (lead.empty()) {
    queue_cv_.notify_one();
    return done.get();
  }
  RunBatch(lead);
  bool more = false;
  {
    std::lock_guard lock(queue_mu_);
    committing_ = false;
    // Also when this commit left writes unanchored and the committer thread sleeps with no
    // timeout: it must start the epoch timer that anchors them if no commit comes.
    more = !queue_.empty() || stopping_ || (committer_sleeps_untimed_ && unanchored_writes_);
  }
  if (more) queue_cv_.notify_one();  // who queued meanwhile: the committer thread takes them
  return done.get();
}

std::vector<std::unique_ptr<Job>> ServiceImpl::TakeBatchLocked() {
  committing_ = true;
  std::vector<std::unique_ptr<Job>> jobs;
  while (!queue_.empty() && jobs.size() < options_.max_batch) {
    jobs.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return jobs;
}

void ServiceImpl::CommitterLoop() {
  // Takes the queue whenever nobody commits it (a lone writer commits its own, Submit).
  auto ready = [this] { return !committing_ && (stopping_ || !queue_.empty()); };
  for (;;) {
    std::vector<std::unique_ptr<Job>> jobs;
    {
      std::unique_lock lock(queue_mu_);
      bool epoch = options_.anchor_mode == AnchorMode::kEpoch;
      if (epoch && unanchored_writes_) {
        queue_cv_.wait_for(lock, options_.epoch_interval, ready);
      } else {
        committer_sleeps_untimed_ = true;
        queue_cv_.wait(lock, [&] { return ready() || (epoch && unanchored_writes_); });
        committer_sleeps_untimed_ = false;
        if (!ready()) continue;  // writes to anchor came: wait again, with the epoch's timeout
      }
      if (committing_) continue;  // the epoch passed while a writer commits: its commit anchors
      if (queue_.empty()) {
        if (stopping_) return;
        lock.unlock();
        // An epoch passed with writes and no commit since: anchor them now.
        if (epoch && unanchored_writes_ && Fenced().ok()) {
          std::lock_guard gate(commit_gate_);
          if (!AdvanceAnchor(index_.tip).ok()) anchor_behind_ = true;
        }
        continue;
      }
      jobs = TakeBatchLocked();
    }
    RunBatch(jobs);
    std::lock_guard lock(queue_mu_);
    committing_ = false;
  }
}

Status ServiceImpl::Fenced() const {
  if (!fenced_.load(std::memory_order_acquire)) return OkStatus();
  std::lock_guard lock(fence_mu_);
  return fence_;
}

void ServiceImpl::Fence(const Status& why) {
  std::lock_guard lock(fence_mu_);
  if (!fence_.ok()) return;
  fence_ = why;
  fenced_.store(true, std::memory_order_release);
  cache_.Clear();
}

Status ServiceImpl::CheckStoreTip(store::Writer& w) {
  SK_ASSIGN_OR_RETURN(std::optional<store::JournalRecord> last, w.LastEntry());
  const JournalTip& tip = index_.tip;  // the committer is the index's only writer
  std::string found;
  if (!last) {
    found = "the journal is empty";
  } else if (last->seq != tip.seq) {
    found = "the journal ends at seq " + std::to_string(last->seq);
  } else if (last->seal != tip.hash) {
    found = "the seal of its last entry was changed";
  } else {
    return OkStatus();
  }
  return Status(
      Code::kSealed, "replay_detected",
      "the store was changed behind sealkeep's back: this agent committed up to seq " +
          std::to_string(tip.seq) + " but " + found +
          "; nothing was written, and the agent seals itself (sys/unseal or a restart runs start-up "
          "verification, which reports the store as it is)");
}

void ServiceImpl::RunBatch(std::vector<std::unique_ptr<Job>>& jobs) {
  std::vector<Status> results(jobs.size());
  auto finish = [&](const Status& all) {
    for (std::size_t i = 0; i < jobs.size(); ++i) jobs[i]->done.set_value(results[i].ok() ? all : results[i]);
  };
  auto fail_all = [&](const Status& why) {
    for (auto& r : results) r = why;
    finish(OkStatus());
  };
  if (Status fenced = Fenced(); !fenced.ok()) return fail_all(fenced);
  auto began = store_->Begin();
  if (!began.ok()) return fail_all(began.status());
  store::Writer& w = **began;
  // Incremental verification: inside this write transaction nobody else can write, so
  // the journal must still end exactly at the tip this service committed last.
  if (Status tip = CheckStoreTip(w); !tip.ok()) {
    store_->Abort();
    if (tip.code() == Code::kSealed) Fence(tip);
    return fail_all(tip);
  }
  // Change records the audit log now holds durably leave the store with this commit.
  std::uint64_t drop_through = std::min(audit_synced_.load(std::memory_order_acquire), outbox_kept_through_);
  if (drop_through > outbox_dropped_through_ && !w.DeleteAuditOutboxThrough(drop_through).ok()) {
    drop_through = outbox_dropped_through_;  // kept: tried again with the next batch
  }
  Batch b(w, index_, *commit_sealer_, NowMs());
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    auto txn = RandomBytes(journal::kTxnIdSize);
    if (!txn.ok()) {
      results[i] = txn.status();
      continue;
    }
    journal::TxnId id{};
    std::copy(txn->begin(), txn->end(), id.begin());
    b.BeginTxn(id);
    Batch::Mark mark = b.Save();
    Status st = w.Savepoint();
    if (st.ok()) st = jobs[i]->run(b);
    if (st.ok()) st = w.ReleaseSavepoint();
    if (!st.ok()) {
      Status undo = w.RollbackToSavepoint();
      b.Restore(mark);
      if (!undo.ok()) {  // the transaction is unusable: fail the whole batch
        store_->Abort();
        for (auto& r : results) r = undo;
        finish(OkStatus());
        return;
      }
    }
    results[i] = st;
  }
  std::unique_lock gate(commit_gate_);
  Status committed = CommitBatch(b);
  if (!committed.ok()) {
    finish(committed);
    return;
  }
  ++batches_;
  commits_ += jobs.size();
  outbox_dropped_through_ = std::max(outbox_dropped_through_, drop_through);
  outbox_kept_through_ = std::max(outbox_kept_through_, b.outbox_high);
  if (!b.pending().empty() && options_.hooks != nullptr && options_.hooks->after_store_commit) {
    options_.hooks->after_store_commit();
  }

  Status anchored = OkStatus();
  bool epoch_due = false;
  {
    std::lock_guard lock(anchor_mu_);
    epoch_due = std::chrono::steady_clock::now() - last_anchor_time_ >= options_.epoch_interval;
  }
  const bool strict = options_.anchor_mode == AnchorMode::kStrict;
  // anchor_behind_: an earlier advance failed, so this commit retries it in either mode.
  if (!b.pending().empty() && (strict || b.anchor_needed || epoch_due || anchor_behind_)) {
    anchored = AdvanceAnchor(b.tip());
    if (!anchored.ok()) {
      anchor_behind_ = true;
      anchored = Status(Code::kUnavailable, "anchor_unavailable",
                        "the change is stored durably but the hardware anchor could not be advanced (" +
                            anchored.ToString() + "); it is anchored with the next commit" +
                            (strict ? "" : ", or by the epoch timer if no commit comes first,") +
                            " or at the next start");
    }
  }
  if (options_.hooks != nullptr && options_.hooks->after_anchor_update) options_.hooks->after_anchor_update();
  gate.unlock();
  // Erased bytes leave the write-ahead log here, or with a later batch when a long reader
  // (a full verification) blocks it now: the checkpoint never makes writers wait.
  if (b.checkpoint_needed || checkpoint_owed_) checkpoint_owed_ = !store_->Checkpoint().ok();
  if (!b.pending().empty() && options_.on_commit) options_.on_commit(b.tip().seq);
  finish(anchored);
}

void ServiceImpl::NoteAuditSynced(std::uint64_t seq) {
  std::uint64_t was = audit_synced_.load(std::memory_order_relaxed);
  while (seq > was && !audit_synced_.compare_exchange_weak(was, seq, std::memory_order_acq_rel)) {
  }
}

Result<std::size_t> ServiceImpl::SettleAuditOutbox(std::uint64_t log_last_seq, bool log_created,
                                                   const std::function<Status(std::vector<Bytes>)>& rewrite) {
  SK_ASSIGN_OR_RETURN(std::unique_ptr<store::Reader> reader, store_->NewReader());
  SK_ASSIGN_OR_RETURN(auto kept, reader->AuditOutbox());
  reader.reset();
  if (kept.empty()) return std::size_t{0};
  // The log keeps a prefix of what was written to it (a torn tail is cut at open), and each
  // kept record's seq was its place in this log: those at or below its last are in it.
  std::vector<Bytes> lost;
  for (auto& [seq, record] : kept) {
    if (log_created || seq > log_last_seq) lost.push_back(std::move(record));
  }
  const std::size_t count = lost.size();
  if (count > 0) SK_RETURN_IF_ERROR(rewrite(std::move(lost)));
  const std::uint64_t last = kept.back().first;
  SK_RETURN_IF_ERROR(Submit([last](Batch& b) { return b.writer().DeleteAuditOutboxThrough(last); }));
  return count;
}

}  // namespace sk::secrets::internal
