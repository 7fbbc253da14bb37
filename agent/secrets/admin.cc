// Master-key rotation, full verification (VerifyAll: docs/journal.md says what it checks
// beyond the start-up scan), status.
#include <chrono>
#include <map>
#include <set>
#include <tuple>

#include "agent/journal/anchor_check.h"
#include "agent/journal/scan.h"
#include "agent/secrets/keys.h"
#include "agent/secrets/service_impl.h"
#include "agent/secrets/snapshot_format.h"
#include "crypto/ct.h"
#include "crypto/reasons.h"

namespace sk::secrets::internal {

Result<TxnResult> ServiceImpl::Rotate(const Actor& actor) {
  TxnResult result;
  Status st = Submit([&](Batch& b) -> Status {
    result = TxnResult{};
    std::uint32_t old_gen = backend_->Info().current_generation;
    SK_ASSIGN_OR_RETURN(std::uint32_t gen, backend_->Rotate());
    SK_ASSIGN_OR_RETURN(Bytes wjk, backend_->Wrap(jk_, JournalKeyAad(store_id_)));
    SK_ASSIGN_OR_RETURN(Bytes wak, backend_->Wrap(ak_, AuditKeyAad(store_id_)));
    SK_RETURN_IF_ERROR(b.writer().PutMeta("journal_key", wjk));
    SK_RETURN_IF_ERROR(b.writer().PutMeta("audit_key", wak));
    std::vector<std::tuple<std::string, std::uint64_t, Bytes>> rows;
    SK_RETURN_IF_ERROR(
        b.writer().ScanVersions([&](const std::string& path, std::uint64_t v, store::VersionBlob& blob) {
          if (!blob.erased) rows.emplace_back(path, v, std::move(blob.wrapped_dek));
          return true;
        }));
    std::uint64_t rewrapped = 0, skipped = 0;
    for (auto& [path, v, wrapped] : rows) {
      Bytes aad = DekAad(store_id_, path, v);
      auto dek = backend_->Unwrap(wrapped, aad);
      if (!dek.ok()) {
        std::string_view r = dek.status().reason();
        if (sk::reason::IsUnopenableBlob(r) || r == sk::reason::kKeyRetired) {
          ++skipped;  // it does not verify now and will not after; verification reports it
          continue;
        }
        return dek.status();
      }
      SK_ASSIGN_OR_RETURN(Bytes fresh, backend_->Wrap(*dek, aad));
      SK_RETURN_IF_ERROR(b.writer().UpdateWrappedDek(path, v, fresh));
      ++rewrapped;
    }
    journal::Entry e;
    e.kind = journal::Kind::kRotate;
    e.key_generation = gen;
    e.from_version = old_gen;
    e.actor = actor.text.substr(0, journal::kMaxActorBytes);
    e.detail.note = "rewrapped " + std::to_string(rewrapped) + " data keys" +
                    (skipped ? ", skipped " + std::to_string(skipped) + " that do not verify" : "");
    SK_RETURN_IF_ERROR(b.Append(std::move(e)).status());
    result.txn_id = HexEncode(b.txn_id());
    result.seq = b.tip().seq;
    result.results.push_back({"rotate", "", gen});
    return OkStatus();
  });
  if (!st.ok()) return st;
  return result;
}

Result<TxnResult> ServiceImpl::RecordReseal(const std::string& note, const Actor& actor) {
  TxnResult result;
  Status st = Submit([&](Batch& b) -> Status {
    journal::Entry e;
    e.kind = journal::Kind::kReseal;
    e.actor = actor.text.substr(0, journal::kMaxActorBytes);
    e.detail.note = note.substr(0, 1024);
    SK_RETURN_IF_ERROR(b.Append(std::move(e)).status());
    result.txn_id = HexEncode(b.txn_id());
    result.seq = b.tip().seq;
    return OkStatus();
  });
  if (!st.ok()) return st;
  return result;
}

namespace {

// Collects problems (the first 1000).
struct Problems {
  VerifyReport& rep;
  void Add(std::uint64_t seq, std::string_view path, std::uint64_t v, std::string_view reason,
           std::string detail) {
    if (rep.problems.size() < 1000) {
      rep.problems.push_back({seq, std::string(path), v, std::string(reason), std::move(detail)});
    }
  }
};

// Every version the journal wrote must have a stored row (erased, once destroyed). The
// version rows arrive ordered by (path, version), the index's paths in the same byte
// order, so one merge pass finds the missing rows without remembering the rows seen.
class RowCoverage {
 public:
  RowCoverage(const Index& index, Problems& problems)
      : index_(index), problems_(problems), next_(index.ordered().begin()) {}

  // A row (path, v); returns the journal's facts for the path, or null if it has none.
  const PathState* Row(const std::string& path, std::uint64_t v) {
    if (cur_ == nullptr || path != cur_path_) {
      ClosePath();
      while (next_ != index_.ordered().end() && *next_ < path) MissingFrom(*next_++, 1);
      if (next_ != index_.ordered().end() && *next_ == path) {
        cur_path_ = *next_++;
        cur_ = index_.Find(cur_path_);
        next_v_ = 1;
      }
    }
    if (cur_ == nullptr) return nullptr;
    for (; next_v_ < v && next_v_ <= cur_->versions.size(); ++next_v_) Missing(cur_path_, *cur_, next_v_);
    if (v >= next_v_) next_v_ = v + 1;
    return cur_;
  }
  void Finish() {
    ClosePath();
    while (next_ != index_.ordered().end()) MissingFrom(*next_++, 1);
  }

 private:
  void ClosePath() {
    if (cur_ != nullptr) {
      for (; next_v_ <= cur_->versions.size(); ++next_v_) Missing(cur_path_, *cur_, next_v_);
    }
    cur_ = nullptr;
  }
  void MissingFrom(std::string_view path, std::uint64_t from) {
    const PathState* s = index_.Find(path);
    for (std::uint64_t v = from; s != nullptr && v <= s->versions.size(); ++v) Missing(path, *s, v);
  }
  void Missing(std::string_view path, const PathState& s, std::uint64_t v) {
    const VersionInfo& info = s.versions[v - 1];
    if (info.created_seq == 0) return;  // its entry is gone: reported by the journal scan
    problems_.Add(info.created_seq, path, v, "content_mismatch", "the version's stored row is missing");
  }

  const Index& index_;
  Problems& problems_;
  std::set<std::string_view>::const_iterator next_;
  const PathState* cur_ = nullptr;
  std::string_view cur_path_;
  std::uint64_t next_v_ = 1;
};

struct JournaledSnapshot {
  std::uint64_t seq = 0;
  Digest digest{};
  bool sealed = false;  // the entry's seal verified, so its digest can be trusted
};

// One full verification inside one read transaction (docs/journal.md): the journal, its
// sealed head and the hardware anchor, every stored version row, every snapshot. Each step
// adds what it finds to the report's problems.
class Verification {
 public:
  Verification(const SecretBytes& jk, hsm::KeyBackend& backend, ByteView store_id, int threads,
               store::Reader& reader, VerifyReport& rep)
      : jk_(jk), backend_(backend), store_id_(store_id), threads_(threads), reader_(reader), rep_(rep) {}

  // Every seal and both chains, replayed into an index of its own, so the report is about
  // the file as it is, not about what this process remembers.
  Status Journal() {
    auto scan = journal::ScanJournal(reader_, jk_, threads_, [&](journal::ScannedEntry& s) { Entry(s); });
    if (!scan.ok()) return scan.status();
    index_.FinishReplay();
    rep_.entries = scan->entries;
    rep_.head_seq = scan->last_seq;
    rep_.head_hash = HexEncode(scan->last_hash);
    last_hash_ = scan->last_hash;
    return OkStatus();
  }

  // The sealed head must end the journal and agree with the hardware anchor.
  Status HeadAndAnchor() {
    journal::Sealer sealer(jk_);
    SK_ASSIGN_OR_RETURN(auto head_record, reader_.GetMeta("head"));
    std::optional<journal::Head> head;
    if (head_record) {
      auto opened = sealer.OpenHead(*head_record);
      if (opened.ok()) head = *opened;
    }
    if (!head) {
      problems_.Add(0, "", 0, "seal_invalid", "the sealed journal head is missing or does not verify");
      return OkStatus();
    }
    if (head->head_seq != rep_.head_seq || head->head_hash != last_hash_) {
      problems_.Add(head->head_seq, "", 0, "replay_detected", "the journal does not end at its sealed head");
    }
    std::optional<Digest> at;
    if (rep_.anchor.seq > 0) {
      SK_ASSIGN_OR_RETURN(auto row, reader_.GetEntry(rep_.anchor.seq));
      if (row) at = row->seal;
    }
    auto d = journal::DecideAnchor(rep_.anchor, *head, at);
    rep_.anchor_state = d.verdict == journal::AnchorVerdict::kInSync        ? "in_sync"
                        : d.verdict == journal::AnchorVerdict::kRollForward ? "ahead_of_anchor"
                                                                            : "replay";
    if (d.verdict == journal::AnchorVerdict::kReplay)
      problems_.Add(rep_.anchor.seq, "", 0, "replay_detected", d.explanation);
    return OkStatus();
  }

  // Every version row against its sealed entry: erased exactly when destroyed; otherwise
  // its ciphertext, its wrapped data key (one unwrap each) and its value.
  Status VersionRows() {
    RowCoverage coverage(index_, problems_);
    Status failure = OkStatus();
    SK_RETURN_IF_ERROR(
        reader_.ScanVersions([&](const std::string& path, std::uint64_t v, store::VersionBlob& blob) {
          ++rep_.versions_checked;
          failure = Row(coverage, path, v, blob);
          return failure.ok();
        }));
    SK_RETURN_IF_ERROR(failure);
    coverage.Finish();
    return OkStatus();
  }

  // Every snapshot: its seal, and the body digest its journal entry holds.
  Status Snapshots() {
    std::set<std::string> stored;
    SK_RETURN_IF_ERROR(reader_.ScanSnapshots([&](store::SnapshotRecord& r) {
      stored.insert(r.name);
      Snapshot(r);
      return true;
    }));
    for (const auto& [name, j] : journaled_snapshots_) {
      if (j.sealed && stored.count(name) == 0) {
        problems_.Add(j.seq, "", 0, "content_mismatch", "snapshot " + name + ": its stored body is missing");
      }
    }
    return OkStatus();
  }

 private:
  void Entry(journal::ScannedEntry& s) {
    std::string_view path = s.entry ? std::string_view(s.entry->path) : std::string_view(s.row_path);
    std::uint64_t v = s.entry ? s.entry->version : 0;
    if (!s.entry) {
      problems_.Add(s.seq, path, v, "seal_invalid", "the entry does not parse");
    } else if (!s.seal_ok) {
      problems_.Add(s.seq, path, v, "seal_invalid", "the entry's seal does not verify");
    }
    if (!s.link_ok) {
      problems_.Add(s.seq, path, v, "chain_broken", "the entry does not follow its predecessor");
      index_.global_ok_from = s.seq;
    }
    if (!s.entry) {
      index_.ReplayUnparsed(s.row_path, s.seq);
      return;
    }
    if (!path.empty()) {
      const PathState* before = index_.Find(path);
      if (s.entry->prev_path_hash != (before != nullptr ? before->fields.last_hash : Digest{})) {
        problems_.Add(s.seq, path, v, "chain_broken",
                      "the entry does not follow the previous entry of its path");
      }
    }
    if (s.entry->kind == journal::Kind::kSnapshot) {
      journaled_snapshots_[s.entry->detail.snapshot] = {s.seq, s.entry->content_digest, s.seal_ok};
    }
    index_.Replay(*s.entry, s.stored_seal, s.seal_ok);
  }

  // One version row; a non-OK status stops the scan (the backend failed: no verdict).
  Status Row(RowCoverage& coverage, const std::string& path, std::uint64_t v, store::VersionBlob& blob) {
    const PathState* s = coverage.Row(path, v);
    if (s == nullptr || v < 1 || v > s->versions.size()) {
      problems_.Add(0, path, v, "chain_broken", "a stored version has no journal entry");
      return OkStatus();
    }
    const VersionInfo& info = s->versions[v - 1];
    bool destroyed = info.state == VersionState::kDestroyed;
    if (destroyed != blob.erased) {
      problems_.Add(info.created_seq, path, v, "content_mismatch",
                    destroyed ? "a destroyed version still holds bytes"
                              : "a version's bytes were erased without a destroy");
      return OkStatus();
    }
    // Destroyed, or its entry is missing or does not verify (the scan reported that).
    if (destroyed || info.created_seq == 0 || info.seal_invalid || s->fields.tainted) return OkStatus();
    SK_ASSIGN_OR_RETURN(auto row, reader_.GetEntry(info.created_seq));
    if (!row) return OkStatus();
    auto e = journal::DecodeEntry(row->entry);
    if (!e.ok()) return OkStatus();
    Status bytes = CheckStoredBytes(backend_, store_id_, path, v, *e, blob);
    if (bytes.code() == Code::kConflict) {
      problems_.Add(info.created_seq, path, v, bytes.reason(), std::string(bytes.message()));
      return OkStatus();
    }
    return bytes;
  }

  void Snapshot(const store::SnapshotRecord& r) {
    auto j = journaled_snapshots_.find(r.name);
    std::uint64_t seq = j != journaled_snapshots_.end() ? j->second.seq : 0;
    const std::string name = "snapshot " + r.name;
    if (!ConstantTimeEqual(SnapshotSeal(jk_, r.body), r.seal)) {
      problems_.Add(seq, "", 0, "seal_invalid", name + ": its seal does not verify");
      return;
    }
    auto body = DecodeSnapshot(r.body);
    if (!body.ok() || body->name != r.name) {
      problems_.Add(seq, "", 0, "seal_invalid",
                    name + ": its sealed body is another snapshot's or malformed");
      return;
    }
    if (j == journaled_snapshots_.end()) {
      problems_.Add(0, "", 0, "chain_broken", name + ": no journal entry created it");
    } else if (j->second.sealed && !ConstantTimeEqual(Sha256(r.body), j->second.digest)) {
      problems_.Add(seq, "", 0, "content_mismatch",
                    name + ": its body is not the one its journal entry names");
    }
  }

  const SecretBytes& jk_;
  hsm::KeyBackend& backend_;
  ByteView store_id_;
  int threads_;
  store::Reader& reader_;
  VerifyReport& rep_;
  Problems problems_{rep_};
  Index index_;
  Digest last_hash_{};
  std::map<std::string, JournaledSnapshot> journaled_snapshots_;
};

}  // namespace

Result<VerifyReport> ServiceImpl::VerifyAll() {
  auto started = std::chrono::steady_clock::now();
  VerifyReport rep;
  SK_ASSIGN_OR_RETURN(auto reader, store_->NewReader());
  {
    // One read transaction for everything below, and the anchor as the hardware held it
    // at that snapshot: no commit lands and no anchor moves while the gate is held.
    std::lock_guard gate(commit_gate_);
    SK_RETURN_IF_ERROR(reader->BeginRead());
    SK_ASSIGN_OR_RETURN(rep.anchor, backend_->ReadAnchor());
  }
  Verification check(jk_, *backend_, store_id_, options_.verify_threads, *reader, rep);
  SK_RETURN_IF_ERROR(check.Journal());
  SK_RETURN_IF_ERROR(check.HeadAndAnchor());
  SK_RETURN_IF_ERROR(check.VersionRows());
  SK_RETURN_IF_ERROR(check.Snapshots());
  SK_RETURN_IF_ERROR(reader->EndRead());
  rep.ok = rep.problems.empty();
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return rep;
}

ServiceStatus ServiceImpl::Report() {
  ServiceStatus s;
  s.backend = backend_->Info();
  {
    std::shared_lock lock(index_mu_);
    s.head_seq = index_.tip.seq;
    s.head_hash = HexEncode(index_.tip.hash);
    s.paths = index_.size();
    s.journal_problems = index_.bad_seals + (index_.global_ok_from > 0 ? 1 : 0);
  }
  {
    std::lock_guard lock(anchor_mu_);
    s.anchor = anchor_;
  }
  s.anchor_mode = std::string(AnchorModeName(options_.anchor_mode));
  s.commits = commits_;
  s.batches = batches_;
  s.anchor_advances = anchor_advances_;
  s.dek_cache_hits = cache_.hits();
  s.dek_cache_misses = cache_.misses();
  s.dek_cache_size = cache_.size();
  s.start_verify_seconds = start_verify_seconds_;
  return s;
}

}  // namespace sk::secrets::internal
