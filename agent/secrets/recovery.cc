// The recovery key and backups (docs/recovery.md): InitRecovery, RecoveryStatus,
// RecoveryWrapBatch, CreateBackup, and the check at open that the stored recovery public
// key is the one the journal names.
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>

#include "agent/secrets/backup_manifest.h"
#include "agent/secrets/keys.h"
#include "agent/secrets/service_impl.h"
#include "crypto/reasons.h"
#include "crypto/recovery_share.h"

namespace sk::secrets::internal {
namespace {

// The recovery_key entry's note: "recovery v1 key_id=<hex> threshold=<m> shares=<n> public=<hex>".
std::string RecoveryNote(ByteView key_id, int threshold, int shares, ByteView public_key) {
  return "recovery v1 key_id=" + HexEncode(key_id) + " threshold=" + std::to_string(threshold) +
         " shares=" + std::to_string(shares) + " public=" + HexEncode(public_key);
}

// A field of the note ("" when absent).
std::string NoteField(const std::string& note, const std::string& name) {
  const std::string key = " " + name + "=";
  std::size_t at = (" " + note).find(key);
  if (at == std::string::npos) return "";
  at += key.size() - 1;  // index in note
  std::size_t end = note.find(' ', at);
  return note.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

int NoteInt(const std::string& note, const std::string& name) {
  const std::string v = NoteField(note, name);
  int out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  return ec == std::errc() && p == v.data() + v.size() ? out : 0;
}

}  // namespace

std::shared_ptr<const RecoverySealer> ServiceImpl::recovery_sealer() const {
  std::lock_guard lock(recovery_mu_);
  return recovery_sealer_;
}

Status ServiceImpl::LoadRecovery() {
  std::string note;
  {
    std::shared_lock lock(index_mu_);
    note = index_.recovery_note;
  }
  SK_ASSIGN_OR_RETURN(auto reader, store_->NewReader());
  SK_ASSIGN_OR_RETURN(auto stored, reader->GetMeta(kMetaRecoveryPublic));
  if (note.empty() && !stored) return OkStatus();
  // The stored key must be the one the (sealed) journal names: otherwise someone with the
  // disk swapped in their own key, to be sent every new data key.
  if (note.empty() || !stored || HexEncode(*stored) != NoteField(note, "public")) {
    return Status(Code::kSealed, "recovery_key_mismatch",
                  "the store's recovery public key is not the one its journal names: the store was edited");
  }
  SK_ASSIGN_OR_RETURN(auto sealer, RecoverySealer::Create(*stored));
  std::lock_guard lock(recovery_mu_);
  recovery_sealer_ = std::shared_ptr<const RecoverySealer>(std::move(sealer));
  return OkStatus();
}

Result<RecoveryInitResult> ServiceImpl::InitRecovery(int threshold, int shares, bool replace,
                                                     const Actor& actor) {
  if (threshold < 2 || shares < threshold || shares > 16) {
    return InvalidArgument("a recovery key needs 2 <= threshold <= shares <= 16 (given threshold " +
                               std::to_string(threshold) + ", shares " + std::to_string(shares) + ")",
                           "bad_recovery_params");
  }
  std::lock_guard init_lock(init_recovery_mu_);
  const bool exists = recovery_sealer() != nullptr;
  if (exists && !replace) {
    return FailedPrecondition("this store has a recovery key; `sealkeep recovery rotate` replaces it",
                              "recovery_exists");
  }
  if (!exists && replace) {
    return FailedPrecondition("this store has no recovery key to replace; `sealkeep recovery init` makes one",
                              "no_recovery_key");
  }
  SK_ASSIGN_OR_RETURN(RecoveryKeyPair kp, GenerateRecoveryKey());
  SK_ASSIGN_OR_RETURN(std::vector<ShamirShare> parts, ShamirSplit(kp.private_key, threshold, shares));
  SK_ASSIGN_OR_RETURN(std::unique_ptr<RecoverySealer> sealer, RecoverySealer::Create(kp.public_key));
  std::shared_ptr<const RecoverySealer> shared(std::move(sealer));
  const Bytes key_id = RecoveryKeyId(kp.public_key);
  RecoveryInitResult result;
  for (ShamirShare& p : parts) {
    RecoveryShare s{threshold, key_id, std::move(p)};
    std::string line = EncodeRecoveryShare(s);
    result.shares.push_back(SecretBytes::CopyFrom(AsBytes(line)));
    std::fill(line.begin(), line.end(), '\0');
  }
  Status st = Submit([&](Batch& b) -> Status {
    SK_ASSIGN_OR_RETURN(Bytes wjk, shared->Seal(jk_, JournalKeyAad(store_id_)));
    SK_ASSIGN_OR_RETURN(Bytes wak, shared->Seal(ak_, AuditKeyAad(store_id_)));
    SK_RETURN_IF_ERROR(b.writer().PutMeta(kMetaRecoveryPublic, kp.public_key));
    SK_RETURN_IF_ERROR(b.writer().PutMeta(kMetaRecoveryJournalKey, wjk));
    SK_RETURN_IF_ERROR(b.writer().PutMeta(kMetaRecoveryAuditKey, wak));
    journal::Entry e;
    e.kind = journal::Kind::kRecoveryKey;
    e.actor = actor.text.substr(0, journal::kMaxActorBytes);
    e.detail.note = RecoveryNote(key_id, threshold, shares, kp.public_key);
    SK_ASSIGN_OR_RETURN(const PendingEntry* p, b.Append(std::move(e)));
    result.info.seq = p->entry.seq;
    result.txn_id = HexEncode(b.txn_id());
    return OkStatus();
  });
  if (!st.ok()) return st;
  {
    std::lock_guard lock(recovery_mu_);
    recovery_sealer_ = shared;
    recovery_cursor_ = {};
  }
  recovery_wrapped_all_ = false;
  SK_ASSIGN_OR_RETURN(RecoveryInfo info, RecoveryStatus());
  result.info = info;
  return result;
}

Result<RecoveryInfo> ServiceImpl::RecoveryStatus() {
  SK_RETURN_IF_ERROR(Fenced());
  RecoveryInfo info;
  std::string note;
  {
    std::shared_lock lock(index_mu_);
    note = index_.recovery_note;
  }
  auto sealer = recovery_sealer();
  if (!sealer) return info;
  info.configured = true;
  info.key_id = HexEncode(sealer->key_id());
  info.threshold = NoteInt(note, "threshold");
  info.shares = NoteInt(note, "shares");
  {
    std::shared_lock lock(index_mu_);
    info.seq = index_.recovery_seq;
  }
  SK_ASSIGN_OR_RETURN(auto reader, store_->NewReader());
  SK_ASSIGN_OR_RETURN(auto counts, reader->CountRecoveryWraps(sealer->key_id()));
  info.versions = counts.first;
  info.wrapped = counts.second;
  return info;
}

Result<std::uint64_t> ServiceImpl::RecoveryWrapBatch(std::size_t limit) {
  auto sealer = recovery_sealer();
  if (!sealer || recovery_wrapped_all_.load()) return std::uint64_t{0};
  {
    // Nothing left (the common case once done): no write transaction at all.
    SK_ASSIGN_OR_RETURN(auto reader, store_->NewReader());
    bool any = false;
    std::pair<std::string, std::uint64_t> from;
    {
      std::lock_guard lock(recovery_mu_);
      from = recovery_cursor_;
    }
    SK_RETURN_IF_ERROR(
        reader->ScanRecoveryPending(sealer->key_id(), from.first, from.second, 1,
                                    [&](const std::string&, std::uint64_t, ByteView) { any = true; }));
    if (!any) {
      recovery_wrapped_all_ = true;
      return std::uint64_t{0};
    }
  }
  std::uint64_t wrapped = 0;
  std::optional<std::pair<std::string, std::uint64_t>> next_cursor;
  Status st = Submit([&](Batch& b) -> Status {
    wrapped = 0;
    next_cursor.reset();
    std::vector<std::tuple<std::string, std::uint64_t, Bytes>> rows;
    std::pair<std::string, std::uint64_t> cursor;
    {
      std::lock_guard lock(recovery_mu_);
      cursor = recovery_cursor_;
    }
    SK_RETURN_IF_ERROR(b.writer().ScanRecoveryPending(
        sealer->key_id(), cursor.first, cursor.second, limit,
        [&](const std::string& path, std::uint64_t v, ByteView wrapped_dek) {
          rows.emplace_back(path, v, Bytes(wrapped_dek.begin(), wrapped_dek.end()));
        }));
    if (!rows.empty()) {
      // Past this batch from now on (keyset paging: each batch reads only its own rows).
      next_cursor = {std::get<0>(rows.back()), std::get<1>(rows.back())};
    }
    for (auto& [path, v, wrapped_dek] : rows) {
      const Bytes aad = DekAad(store_id_, path, v);
      auto dek = backend_->Unwrap(wrapped_dek, aad);
      if (!dek.ok()) {
        std::string_view r = dek.status().reason();
        if (sk::reason::IsUnopenableBlob(r) || r == sk::reason::kKeyRetired) continue;
        return dek.status();
      }
      SK_ASSIGN_OR_RETURN(Bytes blob, sealer->Seal(*dek, aad));
      SK_RETURN_IF_ERROR(b.writer().PutRecoveryWrap(path, v, blob));
      ++wrapped;
    }
    return OkStatus();
  });
  if (!st.ok()) return st;
  if (next_cursor) {
    std::lock_guard lock(recovery_mu_);
    recovery_cursor_ = *next_cursor;
  } else {
    recovery_wrapped_all_ = true;
  }
  return wrapped;
}

Result<BackupManifest> ServiceImpl::CreateBackup(const std::string& dest) {
  SK_RETURN_IF_ERROR(Fenced());
  struct stat st {};
  if (::lstat(dest.c_str(), &st) == 0) {
    return FailedPrecondition(dest + " exists; a backup is written to a new file", "backup_exists");
  }
  BackupManifest m;
  m.store_id = HexEncode(store_id_);
  {
    SK_ASSIGN_OR_RETURN(auto reader, store_->NewReader());
    SK_RETURN_IF_ERROR(reader->BeginRead());
    Status copied = [&]() -> Status {
      SK_ASSIGN_OR_RETURN(auto last, reader->LastEntry());
      if (!last) return Internal("the journal is empty");
      m.head_seq = last->seq;
      m.head_hash = last->seal;
      auto sealer = recovery_sealer();
      SK_ASSIGN_OR_RETURN(auto counts, reader->CountRecoveryWraps(sealer ? sealer->key_id() : Bytes(8, 0)));
      m.versions = counts.first;
      if (sealer) {
        m.recovery_key_id = HexEncode(sealer->key_id());
        m.recovery_wrapped = counts.second;
      }
      return reader->CopyTo(dest);
    }();
    (void)reader->EndRead();
    if (!copied.ok()) {
      ::unlink(dest.c_str());
      return copied;
    }
  }
  m.created_ms = NowMs();
  Status sealed = WriteBackupManifest(dest, m, jk_);
  if (!sealed.ok()) {
    ::unlink(dest.c_str());
    return sealed;
  }
  return m;
}

}  // namespace sk::secrets::internal
