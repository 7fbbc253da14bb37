// Opening the service: store, keys, full journal verification, the anchor decision.
#include <chrono>

#include "agent/journal/anchor_check.h"
#include "agent/journal/scan.h"
#include "agent/secrets/keys.h"
#include "agent/secrets/service_impl.h"
#include "crypto/random.h"
#include "crypto/reasons.h"

namespace sk::secrets {

using internal::ServiceImpl;

std::string_view AnchorModeName(AnchorMode m) { return m == AnchorMode::kStrict ? "strict" : "epoch"; }

Result<std::unique_ptr<SecretService>> SecretService::Open(std::shared_ptr<hsm::KeyBackend> backend,
                                                           const ServiceOptions& options) {
  auto svc = std::make_unique<ServiceImpl>(std::move(backend), options);
  SK_RETURN_IF_ERROR(svc->Init(options.read_only, false, Actor{"sealkeepd"}, nullptr));
  return std::unique_ptr<SecretService>(std::move(svc));
}

Result<std::string> SecretService::AcceptRollback(std::shared_ptr<hsm::KeyBackend> backend,
                                                  const ServiceOptions& options, const Actor& actor) {
  auto svc = std::make_unique<ServiceImpl>(std::move(backend), options);
  std::string recovered;
  SK_RETURN_IF_ERROR(svc->Init(false, true, actor, &recovered));
  return recovered;
}

namespace internal {

Result<ReaderPool::Lease> ReaderPool::Acquire() {
  {
    std::lock_guard lock(mu_);
    if (!free_.empty()) {
      auto slot = std::move(free_.back());
      free_.pop_back();
      return Lease(this, std::move(slot));
    }
  }
  auto slot = std::make_unique<Slot>();
  SK_ASSIGN_OR_RETURN(slot->reader, store_.NewReader());
  slot->sealer = std::make_unique<journal::Sealer>(jk_);
  return Lease(this, std::move(slot));
}

void ReaderPool::Return(std::unique_ptr<Slot> slot) {
  std::lock_guard lock(mu_);
  free_.push_back(std::move(slot));
}

namespace {

constexpr const char* kMetaStoreId = "store_id";
constexpr const char* kMetaJournalKey = "journal_key";
constexpr const char* kMetaAuditKey = "audit_key";
constexpr const char* kMetaHead = "head";

Status Sealed(const std::string& reason, const std::string& message) {
  return Status(Code::kSealed, reason, message);
}

}  // namespace

Status ServiceImpl::CreateStore(const Actor& actor) {
  SK_ASSIGN_OR_RETURN(store_id_, RandomBytes(kStoreIdSize));
  SK_ASSIGN_OR_RETURN(jk_, RandomSecret(32));
  SK_ASSIGN_OR_RETURN(ak_, RandomSecret(32));
  SK_ASSIGN_OR_RETURN(Bytes wrapped_jk, backend_->Wrap(jk_, JournalKeyAad(store_id_)));
  SK_ASSIGN_OR_RETURN(Bytes wrapped_ak, backend_->Wrap(ak_, AuditKeyAad(store_id_)));
  SK_ASSIGN_OR_RETURN(hsm::Anchor anchor, backend_->ReadAnchor());
  anchor_ = anchor;
  commit_sealer_ = std::make_unique<journal::Sealer>(jk_);

  SK_ASSIGN_OR_RETURN(store::Writer * w, store_->Begin());
  Status st = w->PutMeta(kMetaStoreId, store_id_);
  if (st.ok()) st = w->PutMeta(kMetaJournalKey, wrapped_jk);
  if (st.ok()) st = w->PutMeta(kMetaAuditKey, wrapped_ak);
  Batch b(*w, index_, *commit_sealer_, NowMs());
  if (st.ok()) {
    auto txn = RandomBytes(journal::kTxnIdSize);
    if (!txn.ok()) st = txn.status();
    journal::TxnId id{};
    if (st.ok()) std::copy(txn->begin(), txn->end(), id.begin());
    b.BeginTxn(id);
    journal::Entry genesis;
    genesis.kind = journal::Kind::kInit;
    genesis.actor = actor.text;
    genesis.detail.store_id = store_id_;
    if (st.ok()) st = b.Append(std::move(genesis)).status();
  }
  if (!st.ok()) {
    store_->Abort();
    return st.WithContext("creating the store");
  }
  return CommitBatch(b);
}

Status ServiceImpl::LoadKeys() {
  SK_ASSIGN_OR_RETURN(auto reader, store_->NewReader());
  SK_ASSIGN_OR_RETURN(auto id, reader->GetMeta(kMetaStoreId));
  SK_ASSIGN_OR_RETURN(auto wjk, reader->GetMeta(kMetaJournalKey));
  SK_ASSIGN_OR_RETURN(auto wak, reader->GetMeta(kMetaAuditKey));
  if (!id || !wjk || !wak || id->size() != kStoreIdSize) {
    return Status(Code::kCorruption, "store_corrupt", "the store lacks its id or wrapped keys");
  }
  store_id_ = *id;
  auto jk = backend_->Unwrap(*wjk, JournalKeyAad(store_id_));
  auto ak = jk.ok() ? backend_->Unwrap(*wak, AuditKeyAad(store_id_)) : Result<SecretBytes>(jk.status());
  if (!jk.ok() || !ak.ok()) {
    const sk::Status& err = !jk.ok() ? jk.status() : ak.status();
    std::string_view r = err.reason();
    if (sk::reason::IsUnopenableBlob(r)) {
      return Sealed("store_key_invalid",
                    "the store's journal or audit key does not unwrap with this " + backend_->Info().kind +
                        " backend (" + std::string(r) +
                        "): the store belongs to another token or TPM, or was tampered with");
    }
    return err.WithContext("unwrapping the store's keys");
  }
  jk_ = std::move(jk).value();
  ak_ = std::move(ak).value();
  return OkStatus();
}

Status ServiceImpl::BuildIndex(store::Reader& reader, std::uint64_t* entries) {
  auto summary = journal::ScanJournal(reader, jk_, options_.verify_threads, [&](journal::ScannedEntry& s) {
    if (!s.link_ok) index_.global_ok_from = s.seq;
    if (s.entry) {
      index_.Replay(*s.entry, s.stored_seal, s.seal_ok);
    } else {
      index_.ReplayUnparsed(s.row_path, s.seq);
    }
    index_.tip = {s.seq, s.stored_seal};
  });
  index_.FinishReplay();
  if (!summary.ok()) return summary.status();
  *entries = summary->entries;
  return OkStatus();
}

Status ServiceImpl::Init(bool read_only, bool accept_rollback, const Actor& actor, std::string* recovered) {
  read_only_ = read_only;
  auto started = std::chrono::steady_clock::now();
  store::SqliteOptions so;
  so.path = options_.store_path;
  so.create = !read_only;
  so.vfs = options_.vfs;
  SK_ASSIGN_OR_RETURN(store_, store::OpenSqliteStore(so));

  bool created = false;
  {
    SK_ASSIGN_OR_RETURN(auto reader, store_->NewReader());
    SK_ASSIGN_OR_RETURN(auto id, reader->GetMeta(kMetaStoreId));
    if (!id) {
      if (read_only)
        return Status(Code::kNotFound, "store_empty", "the store at " + so.path + " holds nothing yet");
      SK_RETURN_IF_ERROR(CreateStore(actor));
      created = true;
    }
  }
  if (!created) {
    SK_RETURN_IF_ERROR(LoadKeys());
    commit_sealer_ = std::make_unique<journal::Sealer>(jk_);
    SK_ASSIGN_OR_RETURN(auto reader, store_->NewReader());
    std::uint64_t entries = 0;
    SK_RETURN_IF_ERROR(BuildIndex(*reader, &entries));
    SK_RETURN_IF_ERROR(LoadRecovery());
  }

  // The sealed head must be the journal's last entry.
  SK_ASSIGN_OR_RETURN(auto reader, store_->NewReader());
  SK_ASSIGN_OR_RETURN(auto head_record, reader->GetMeta(kMetaHead));
  if (!head_record) return Sealed("head_invalid", "the store has no sealed journal head");
  auto head = commit_sealer_->OpenHead(*head_record);
  if (!head.ok()) return Sealed("head_invalid", std::string(head.status().message()));
  if (head->head_seq != index_.tip.seq || head->head_hash != index_.tip.hash) {
    return Sealed("replay_detected", "the journal ends at seq " + std::to_string(index_.tip.seq) +
                                         " but its sealed head names seq " + std::to_string(head->head_seq) +
                                         ": entries were removed or added behind sealkeep's back");
  }

  SK_ASSIGN_OR_RETURN(hsm::Anchor hw, backend_->ReadAnchor());
  {
    std::lock_guard lock(anchor_mu_);
    anchor_ = hw;
  }
  std::optional<Digest> seal_at_anchor;
  if (hw.seq > 0) {
    SK_ASSIGN_OR_RETURN(auto row, reader->GetEntry(hw.seq));
    if (row) seal_at_anchor = row->seal;
  }
  journal::AnchorDecision decision = journal::DecideAnchor(hw, *head, seal_at_anchor);
  if (created && decision.verdict == journal::AnchorVerdict::kReplay) {
    decision.explanation = "this store is new, but the hardware anchor records seq " +
                           std::to_string(hw.seq) + " of an earlier store: the store was deleted or replaced";
  }

  if (decision.verdict == journal::AnchorVerdict::kReplay && options_.adopt_backup && !read_only) {
    // A backup restored onto new hardware (docs/recovery.md): accepted only on hardware
    // that anchors nothing yet, and only at exactly the head the backup's manifest names.
    const ServiceOptions::AdoptBackup& adopt = *options_.adopt_backup;
    if (hw.seq != 0 && !adopt.same_hardware) {
      return FailedPrecondition("this host's hardware anchor already records seq " + std::to_string(hw.seq) +
                                    ": a backup is restored onto new hardware only on a freshly set-up host",
                                "restore_target_not_fresh");
    }
    if (index_.tip.seq != adopt.head_seq || index_.tip.hash != adopt.head_hash) {
      return Status(Code::kCorruption, "backup_head_mismatch",
                    "the backup's journal ends at seq " + std::to_string(index_.tip.seq) +
                        ", not at the head its manifest names (seq " + std::to_string(adopt.head_seq) + ")");
    }
    journal::Entry e;
    e.kind = journal::Kind::kRestored;
    e.from_version = adopt.head_seq;
    e.actor = (adopt.actor.empty() ? actor.text : adopt.actor).substr(0, journal::kMaxActorBytes);
    e.detail.note = adopt.note.substr(0, 1024);
    SK_RETURN_IF_ERROR(JournalAndAnchor(std::move(e)));
  } else if (decision.verdict == journal::AnchorVerdict::kReplay) {
    if (!accept_rollback) {
      return Sealed(
          "replay_detected",
          decision.explanation + "; to accept this store anyway run `sealkeep recover --accept-rollback`");
    }
    // Journal the acceptance, then anchor the new head.
    journal::Entry e;
    e.kind = journal::Kind::kRecover;
    e.from_version = hw.seq;
    e.actor = actor.text;
    e.detail.note = decision.explanation.substr(0, 1024);
    SK_RETURN_IF_ERROR(JournalAndAnchor(std::move(e)));
    if (recovered != nullptr) *recovered = decision.explanation;
  } else if (accept_rollback) {
    return FailedPrecondition("the store agrees with the hardware anchor; there is nothing to recover",
                              "nothing_to_recover");
  } else if (decision.verdict == journal::AnchorVerdict::kRollForward && !read_only) {
    SK_RETURN_IF_ERROR(AdvanceAnchor(index_.tip));
  }

  readers_ = std::make_unique<ReaderPool>(*store_, jk_);
  start_verify_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!read_only) StartCommitter();
  return OkStatus();
}

Status ServiceImpl::JournalAndAnchor(journal::Entry e) {
  SK_ASSIGN_OR_RETURN(store::Writer * w, store_->Begin());
  Batch b(*w, index_, *commit_sealer_, NowMs());
  SK_ASSIGN_OR_RETURN(Bytes txn, RandomBytes(journal::kTxnIdSize));
  journal::TxnId id{};
  std::copy(txn.begin(), txn.end(), id.begin());
  b.BeginTxn(id);
  Status st = b.Append(std::move(e)).status();
  if (!st.ok()) {
    store_->Abort();
    return st;
  }
  SK_RETURN_IF_ERROR(CommitBatch(b));
  return AdvanceAnchor(index_.tip);
}

Status ServiceImpl::CommitBatch(Batch& b) {
  store::Writer& w = b.writer();
  if (!b.pending().empty()) {
    journal::Head head;
    head.head_seq = b.tip().seq;
    head.head_hash = b.tip().hash;
    {
      std::lock_guard lock(anchor_mu_);
      head.anchor_seq = anchor_.seq;
      head.anchor_hash = anchor_.head_hash;
    }
    Status st = w.PutMeta(kMetaHead, commit_sealer_->SealHead(head));
    if (!st.ok()) {
      store_->Abort();
      return st;
    }
  }
  SK_RETURN_IF_ERROR(store_->Commit());
  if (!b.pending().empty()) {
    std::unique_lock lock(index_mu_);
    for (const PendingEntry& p : b.pending()) index_.Apply(p.entry, p.seal);
    unanchored_writes_ = true;
  }
  return OkStatus();
}

Status ServiceImpl::AdvanceAnchor(const JournalTip& tip) {
  SK_ASSIGN_OR_RETURN(hsm::Anchor a, backend_->AdvanceAnchor(tip.seq, tip.hash));
  std::lock_guard lock(anchor_mu_);
  anchor_ = a;
  last_anchor_time_ = std::chrono::steady_clock::now();
  unanchored_writes_ = false;
  anchor_behind_ = false;
  ++anchor_advances_;
  return OkStatus();
}

}  // namespace internal
}  // namespace sk::secrets
