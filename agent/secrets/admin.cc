// Master-key rotation, full verification, status.
#include <chrono>
#include <tuple>
#include <unordered_map>

#include "agent/journal/anchor_check.h"
#include "agent/journal/scan.h"
#include "agent/secrets/keys.h"
#include "agent/secrets/service_impl.h"
#include "crypto/ct.h"

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
        if (r == "does_not_verify" || r == "malformed_blob" || r == "wrong_token" || r == "wrong_tpm" ||
            r == "key_retired") {
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

Result<VerifyReport> ServiceImpl::VerifyAll() {
  auto started = std::chrono::steady_clock::now();
  VerifyReport rep;
  auto problem = [&](std::uint64_t seq, const std::string& path, std::uint64_t v, const char* reason,
                     std::string detail) {
    if (rep.problems.size() < 1000) rep.problems.push_back({seq, path, v, reason, std::move(detail)});
  };
  SK_ASSIGN_OR_RETURN(auto reader, store_->NewReader());
  std::unordered_map<std::string, Digest> last_of_path;
  auto scan = journal::ScanJournal(*reader, jk_, options_.verify_threads, [&](journal::ScannedEntry& s) {
    std::string path = s.entry ? s.entry->path : s.row_path;
    std::uint64_t v = s.entry ? s.entry->version : 0;
    if (!s.entry) {
      problem(s.seq, path, v, "seal_invalid", "the entry does not parse");
    } else if (!s.seal_ok) {
      problem(s.seq, path, v, "seal_invalid", "the entry's seal does not verify");
    }
    if (!s.link_ok) problem(s.seq, path, v, "chain_broken", "the entry does not follow its predecessor");
    if (s.entry && !path.empty()) {
      Digest& last = last_of_path[path];
      if (s.entry->prev_path_hash != last) {
        problem(s.seq, path, v, "chain_broken", "the entry does not follow the previous entry of its path");
      }
      last = s.stored_seal;
    }
  });
  if (!scan.ok()) return scan.status();
  rep.entries = scan->entries;
  rep.head_seq = scan->last_seq;
  rep.head_hash = HexEncode(scan->last_hash);

  journal::Sealer sealer(jk_);
  SK_ASSIGN_OR_RETURN(auto head_record, reader->GetMeta("head"));
  std::optional<journal::Head> head;
  if (head_record) {
    auto opened = sealer.OpenHead(*head_record);
    if (opened.ok()) head = *opened;
  }
  if (!head) {
    problem(0, "", 0, "seal_invalid", "the sealed journal head is missing or does not verify");
  } else if (head->head_seq != scan->last_seq || head->head_hash != scan->last_hash) {
    problem(head->head_seq, "", 0, "replay_detected", "the journal does not end at its sealed head");
  }
  SK_ASSIGN_OR_RETURN(rep.anchor, backend_->ReadAnchor());
  if (head) {
    std::optional<Digest> at;
    if (rep.anchor.seq > 0) {
      SK_ASSIGN_OR_RETURN(auto row, reader->GetEntry(rep.anchor.seq));
      if (row) at = row->seal;
    }
    auto d = journal::DecideAnchor(rep.anchor, *head, at);
    rep.anchor_state = d.verdict == journal::AnchorVerdict::kInSync        ? "in_sync"
                       : d.verdict == journal::AnchorVerdict::kRollForward ? "ahead_of_anchor"
                                                                           : "replay";
    if (d.verdict == journal::AnchorVerdict::kReplay)
      problem(rep.anchor.seq, "", 0, "replay_detected", d.explanation);
  }

  // Every version row against its sealed entry.
  SK_ASSIGN_OR_RETURN(auto entries, store_->NewReader());
  SK_RETURN_IF_ERROR(
      reader->ScanVersions([&](const std::string& path, std::uint64_t v, store::VersionBlob& blob) {
        ++rep.versions_checked;
        std::optional<VersionInfo> info;
        {
          std::shared_lock lock(index_mu_);
          const PathState* s = index_.Find(path);
          if (s != nullptr && v >= 1 && v <= s->versions.size()) info = s->versions[v - 1];
        }
        if (!info) {
          problem(0, path, v, "chain_broken", "a stored version has no journal entry");
          return true;
        }
        bool destroyed = info->state == VersionState::kDestroyed;
        if (destroyed != blob.erased) {
          problem(info->created_seq, path, v, "content_mismatch",
                  destroyed ? "a destroyed version still holds bytes"
                            : "a version's bytes were erased without a destroy");
          return true;
        }
        if (destroyed) return true;
        auto row = entries->GetEntry(info->created_seq);
        if (!row.ok() || !*row) return true;  // reported by the journal scan
        auto e = journal::DecodeEntry((*row)->entry);
        if (e.ok() && !ConstantTimeEqual(Sha256(blob.ciphertext), e->content_digest)) {
          problem(info->created_seq, path, v, "content_mismatch",
                  "the stored ciphertext does not match its sealed digest");
        }
        return true;
      }));
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
