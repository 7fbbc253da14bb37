#include "agent/secrets/recovery_backend.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "agent/secrets/backup_manifest.h"
#include "agent/secrets/keys.h"
#include "agent/store/sqlite.h"
#include "crypto/random.h"
#include "crypto/reasons.h"

namespace sk::secrets {
namespace {

Status IoError(const std::string& what, const std::string& path, int err) {
  return Status(Code::kUnavailable, "store_io_error", what + " " + path + ": " + std::strerror(err));
}

Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open folder", dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  return rc == 0 ? OkStatus() : IoError("cannot sync folder", dir, err);
}

// Copies `from` to `to` through `to`.tmp (0600), synced, renamed, the folder synced.
Status CopyFileDurably(const std::string& from, const std::string& to) {
  const std::string tmp = to + ".tmp";
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return IoError("cannot open", from, errno);
  ::unlink(tmp.c_str());
  int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out < 0) {
    const int err = errno;
    ::close(in);
    return IoError("cannot create", tmp, err);
  }
  std::vector<char> buf(1 << 20);
  Status st;
  for (;;) {
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      st = IoError("cannot read", from, errno);
      break;
    }
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(out, buf.data() + done, static_cast<std::size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        st = IoError("cannot write", tmp, errno);
        break;
      }
      done += w;
    }
    if (!st.ok()) break;
  }
  if (st.ok() && ::fsync(out) != 0) st = IoError("cannot sync", tmp, errno);
  ::close(in);
  if (::close(out) != 0 && st.ok()) st = IoError("cannot close", tmp, errno);
  if (st.ok() && ::rename(tmp.c_str(), to.c_str()) != 0) st = IoError("cannot rename into place", to, errno);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  return SyncDir(std::filesystem::path(to).parent_path().string());
}

Status WriteMarker(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return IoError("cannot create", path, errno);
  const bool ok =
      ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) return IoError("cannot write", path, err);
  return SyncDir(std::filesystem::path(path).parent_path().string());
}

// Run as root (the CLI offline) in the agent's state folder: the files a restore makes
// (the store, its -wal, -shm and lock file) go to the folder's owner, the agent's user,
// which could not open root's 0600 files.
void MatchFolderOwner(const std::string& store) {
  if (::geteuid() != 0) return;
  struct stat dir {};
  if (::stat(std::filesystem::path(store).parent_path().c_str(), &dir) != 0) return;
  for (const char* suffix : {"", "-wal", "-shm", ".lock"}) {
    const std::string p = store + suffix;
    struct stat st {};
    if (::lstat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        (st.st_uid != dir.st_uid || st.st_gid != dir.st_gid)) {
      (void)::lchown(p.c_str(), dir.st_uid, dir.st_gid);
    }
  }
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// The journal key of a store file, opened by the recovery key.
Result<SecretBytes> RecoveredJournalKey(const RecoveryBlobs& blobs, RecoveryOpener& opener) {
  const Bytes aad = JournalKeyAad(blobs.store_id);
  auto it = blobs.by_aad.find(aad);
  if (it == blobs.by_aad.end()) {
    return Status(Code::kCorruption, "backup_unreadable",
                  "the backup has no journal key wrapped to its recovery key");
  }
  return opener.Open(it->second, aad);
}

// A copy of a backup in a work folder, removed (with what SQLite made beside it) when done:
// verification opens a store, which must not touch the backup itself.
struct WorkCopy {
  WorkCopy() = default;
  WorkCopy(const WorkCopy&) = delete;
  WorkCopy& operator=(const WorkCopy&) = delete;
  std::string path;
  ~WorkCopy() {
    for (const char* suffix : {"", "-wal", "-shm", ".lock"}) ::unlink((path + suffix).c_str());
  }
};

Result<std::unique_ptr<WorkCopy>> CopyIntoWorkDir(const std::string& file, const std::string& work_dir) {
  SK_ASSIGN_OR_RETURN(Bytes tag, RandomBytes(8));
  const std::string copy = work_dir + "/verify-" + HexEncode(tag) + ".db";
  SK_RETURN_IF_ERROR(CopyFileDurably(file, copy));
  auto work = std::make_unique<WorkCopy>();  // from here on, the copy goes with it
  work->path = copy;
  return work;
}

// A backup's journal key, unwrapped by this host's master key (the hardware that made it);
// backup_other_hardware (with `instead` as advice) when its keys are another host's.
Result<SecretBytes> JournalKeyOnThisHardware(const std::string& file, hsm::KeyBackend& backend,
                                             const std::string& instead, Bytes* store_id) {
  Bytes wrapped_jk;
  {
    auto db = store::Db::Open(file, false);
    if (!db.ok()) return Status(Code::kCorruption, "backup_unreadable", std::string(db.status().message()));
    for (const char* key : {"store_id", "journal_key"}) {
      SK_ASSIGN_OR_RETURN(store::Stmt q, (*db)->Prepare("SELECT value FROM meta WHERE key = ?1"));
      q.Bind(1, std::string_view(key));
      if (!q.Step()) return Status(Code::kCorruption, "backup_unreadable", file + " lacks its " + key);
      ByteView v = q.Blob(0);
      (std::string(key) == "store_id" ? *store_id : wrapped_jk).assign(v.begin(), v.end());
    }
  }
  auto jk = backend.Unwrap(wrapped_jk, JournalKeyAad(*store_id));
  if (!jk.ok() && sk::reason::IsUnopenableBlob(jk.status().reason())) {
    return FailedPrecondition(
        "the backup's keys do not unwrap with this host's " + backend.Info().kind + ": " + instead,
        "backup_other_hardware");
  }
  return jk;
}

}  // namespace

Result<RecoveryBlobs> LoadRecoveryBlobs(const std::string& store_file) {
  auto db = store::Db::Open(store_file, false);
  if (!db.ok()) {
    return Status(Code::kCorruption, "backup_unreadable",
                  store_file + " is not a readable sealkeep store or backup (" +
                      std::string(db.status().message()) + ")");
  }
  auto meta = [&](std::string_view key) -> Result<std::optional<Bytes>> {
    SK_ASSIGN_OR_RETURN(store::Stmt s, (*db)->Prepare("SELECT value FROM meta WHERE key = ?1"));
    s.Bind(1, key);
    if (!s.Step()) {
      if (!s.status().ok()) {
        return Status(Code::kCorruption, "backup_unreadable",
                      store_file + " cannot be read (" + std::string(s.status().message()) + ")");
      }
      return std::optional<Bytes>();
    }
    ByteView v = s.Blob(0);
    return std::optional<Bytes>(Bytes(v.begin(), v.end()));
  };
  RecoveryBlobs out;
  SK_ASSIGN_OR_RETURN(auto id, meta("store_id"));
  SK_ASSIGN_OR_RETURN(auto pub, meta("recovery_public"));
  SK_ASSIGN_OR_RETURN(auto wjk, meta("recovery_journal_key"));
  SK_ASSIGN_OR_RETURN(auto wak, meta("recovery_audit_key"));
  if (!id || id->size() != kStoreIdSize) {
    return Status(Code::kCorruption, "backup_unreadable",
                  store_file + " has no store id: not a sealkeep store");
  }
  out.store_id = *id;
  if (!pub || !wjk || !wak) {
    return FailedPrecondition(
        "the store had no recovery key when this copy was made (`sealkeep recovery init`)",
        "no_recovery_key");
  }
  out.by_aad[JournalKeyAad(out.store_id)] = *wjk;
  out.by_aad[AuditKeyAad(out.store_id)] = *wak;
  SK_ASSIGN_OR_RETURN(
      store::Stmt s,
      (*db)->Prepare("SELECT path, version, recovery_wrap FROM versions WHERE recovery_wrap IS NOT NULL"));
  while (s.Step()) {
    ByteView blob = s.Blob(2);
    out.by_aad[DekAad(out.store_id, s.Text(0), static_cast<std::uint64_t>(s.Int(1)))] =
        Bytes(blob.begin(), blob.end());
  }
  if (!s.status().ok()) {
    return Status(Code::kCorruption, "backup_unreadable",
                  store_file + " cannot be read (" + std::string(s.status().message()) + ")");
  }
  return out;
}

Result<Bytes> RecoveryBackend::Wrap(const SecretBytes& key, ByteView aad) {
  if (!target_ || verify_only_)
    return FailedPrecondition("verification only: nothing is wrapped", "read_only");
  return target_->Wrap(key, aad);
}

Result<SecretBytes> RecoveryBackend::Unwrap(ByteView blob, ByteView aad) {
  if (target_) {
    auto r = target_->Unwrap(blob, aad);
    if (r.ok()) return r;
    std::string_view why = r.status().reason();
    if (!sk::reason::IsUnopenableBlob(why) && why != sk::reason::kKeyRetired) return r;
  }
  auto it = blobs_.by_aad.find(Bytes(aad.begin(), aad.end()));
  if (!opener_ || it == blobs_.by_aad.end()) {
    return Status(Code::kCorruption, "no_recovery_wrap",
                  "this key has no wrap to the recovery key (its version was written before the recovery key "
                  "existed, and the backup was made before it was wrapped)");
  }
  return opener_->Open(it->second, aad);
}

Result<hsm::Anchor> RecoveryBackend::ReadAnchor() {
  if (target_ && !verify_only_) return target_->ReadAnchor();
  return manifest_anchor_;
}

Result<hsm::Anchor> RecoveryBackend::AdvanceAnchor(std::uint64_t seq, const Digest& head_hash) {
  if (!target_ || verify_only_) return FailedPrecondition("verification only: no anchor moves", "read_only");
  return target_->AdvanceAnchor(seq, head_hash);
}

hsm::BackendInfo RecoveryBackend::Info() const {
  if (target_) return target_->Info();
  hsm::BackendInfo info;
  info.kind = "recovery";
  info.identity = opener_ ? "recovery key " + HexEncode(opener_->key_id()) : "none";
  info.anchor_location = "the backup's sealed manifest";
  return info;
}

Result<std::uint32_t> RecoveryBackend::Rotate() {
  if (!target_ || verify_only_) return FailedPrecondition("verification only", "read_only");
  return target_->Info().current_generation;
}

Status RecoveryBackend::Retire(std::uint32_t) {
  return FailedPrecondition("no generation is retired during a restore", "read_only");
}

Result<BackupCheck> VerifyBackupOnHardware(const std::string& file, std::shared_ptr<hsm::KeyBackend> backend,
                                           const std::string& work_dir) {
  BackupCheck out;
  SK_RETURN_IF_ERROR(ReadBackupManifest(file).status());
  SK_ASSIGN_OR_RETURN(auto copy, CopyIntoWorkDir(file, work_dir));
  Bytes store_id;
  SK_ASSIGN_OR_RETURN(
      SecretBytes jk,
      JournalKeyOnThisHardware(copy->path, *backend,
                               "verify it with the recovery shares instead (--shares-file)", &store_id));
  SK_ASSIGN_OR_RETURN(out.manifest, ReadSealedBackupManifest(copy->path, jk));
  RecoveryBlobs none;
  none.store_id = store_id;
  auto wrapped = std::make_shared<RecoveryBackend>(
      backend, nullptr, std::move(none), hsm::Anchor{out.manifest.head_seq, out.manifest.head_hash, 0},
      /*verify_only=*/true);
  ServiceOptions o;
  o.store_path = copy->path;
  o.read_only = true;
  SK_ASSIGN_OR_RETURN(auto svc, SecretService::Open(wrapped, o));
  SK_ASSIGN_OR_RETURN(out.report, svc->VerifyAll());
  return out;
}

Result<BackupCheck> VerifyBackupWithShares(const std::string& file, std::shared_ptr<RecoveryOpener> opener,
                                           const std::string& work_dir) {
  BackupCheck out;
  SK_ASSIGN_OR_RETURN(BackupManifest unsealed, ReadBackupManifest(file));
  SK_ASSIGN_OR_RETURN(auto work, CopyIntoWorkDir(file, work_dir));
  const std::string& copy = work->path;
  SK_ASSIGN_OR_RETURN(RecoveryBlobs blobs, LoadRecoveryBlobs(copy));
  if (HexEncode(blobs.store_id) != unsealed.store_id) {
    return Status(Code::kCorruption, "backup_manifest_invalid", "the backup's manifest names another store");
  }
  SK_ASSIGN_OR_RETURN(SecretBytes jk, RecoveredJournalKey(blobs, *opener));
  SK_ASSIGN_OR_RETURN(out.manifest, ReadSealedBackupManifest(copy, jk));
  auto backend = std::make_shared<RecoveryBackend>(
      nullptr, opener, std::move(blobs), hsm::Anchor{out.manifest.head_seq, out.manifest.head_hash, 0});
  ServiceOptions o;
  o.store_path = copy;
  o.read_only = true;
  SK_ASSIGN_OR_RETURN(auto svc, SecretService::Open(backend, o));
  SK_ASSIGN_OR_RETURN(out.report, svc->VerifyAll());
  return out;
}

Result<RestoreResult> RestoreOntoNewHardware(const std::string& file, std::shared_ptr<RecoveryOpener> opener,
                                             std::shared_ptr<hsm::KeyBackend> target,
                                             const ServiceOptions& options, const Actor& actor) {
  RestoreResult out;
  const std::string store = options.store_path;
  const std::string marker = store + ".restoring";
  out.resumed = Exists(marker);
  if (!out.resumed) {
    if (Exists(store)) {
      return FailedPrecondition(store + " exists: restore onto new hardware fills an empty host only",
                                "store_exists");
    }
    SK_ASSIGN_OR_RETURN(hsm::Anchor hw, target->ReadAnchor());
    if (hw.seq != 0) {
      return FailedPrecondition("this host's hardware anchor already records seq " + std::to_string(hw.seq) +
                                    ": a backup is restored onto new hardware only on a freshly set-up host",
                                "restore_target_not_fresh");
    }
  }
  // The manifest, its seal checked with the journal key the recovery key opens.
  SK_ASSIGN_OR_RETURN(RecoveryBlobs blobs, LoadRecoveryBlobs(file));
  SK_ASSIGN_OR_RETURN(BackupManifest unsealed, ReadBackupManifest(file));
  if (HexEncode(blobs.store_id) != unsealed.store_id) {
    return Status(Code::kCorruption, "backup_manifest_invalid", "the backup's manifest names another store");
  }
  SK_ASSIGN_OR_RETURN(SecretBytes jk, RecoveredJournalKey(blobs, *opener));
  SK_ASSIGN_OR_RETURN(out.manifest, ReadSealedBackupManifest(file, jk));

  if (!out.resumed) {
    SK_RETURN_IF_ERROR(WriteMarker(
        marker, "restoring " + file + " head_seq=" + std::to_string(out.manifest.head_seq) + "\n"));
  }
  if (!Exists(store)) SK_RETURN_IF_ERROR(CopyFileDurably(file, store));

  {
    ServiceOptions o = options;
    o.adopt_backup = ServiceOptions::AdoptBackup{
        out.manifest.head_seq, out.manifest.head_hash,
        "restored from backup: store_id=" + out.manifest.store_id + " head_seq=" +
            std::to_string(out.manifest.head_seq) + " head_hash=" + HexEncode(out.manifest.head_hash) +
            " onto new hardware (" + target->Info().kind + ": " + target->Info().identity + ")",
        false, actor.text};
    auto backend = std::make_shared<RecoveryBackend>(
        target, opener, std::move(blobs), hsm::Anchor{out.manifest.head_seq, out.manifest.head_hash, 0});
    SK_ASSIGN_OR_RETURN(auto svc, SecretService::Open(backend, o));
    out.restored_seq = svc->Report().head_seq;
    // Every key under the new master key: from here the recovery key is needed no more.
    SK_ASSIGN_OR_RETURN(TxnResult rewrap, svc->Rotate(actor));
    out.rewrapped_seq = rewrap.seq;
  }
  {
    ServiceOptions o = options;
    SK_ASSIGN_OR_RETURN(auto svc, SecretService::Open(target, o));
    SK_ASSIGN_OR_RETURN(out.report, svc->VerifyAll());
  }
  MatchFolderOwner(store);
  if (::unlink(marker.c_str()) != 0) return IoError("cannot remove", marker, errno);
  SK_RETURN_IF_ERROR(SyncDir(std::filesystem::path(store).parent_path().string()));
  return out;
}

Result<SameHardwareRestore> RestoreOnSameHardware(const std::string& file,
                                                  std::shared_ptr<hsm::KeyBackend> backend,
                                                  const ServiceOptions& options, bool accept_loss,
                                                  const Actor& actor) {
  SameHardwareRestore out;
  SK_RETURN_IF_ERROR(ReadBackupManifest(file).status());
  SK_ASSIGN_OR_RETURN(out.anchor, backend->ReadAnchor());
  // The backup's journal key, under this host's master key (alive: same hardware).
  Bytes store_id;
  SK_ASSIGN_OR_RETURN(SecretBytes jk, JournalKeyOnThisHardware(
                                          file, *backend,
                                          "it was made on other hardware; restore it as onto new hardware, "
                                          "with the recovery shares, on a freshly set-up host",
                                          &store_id));
  // The backup's entry at the anchored seq, to tell a backup along another history.
  std::optional<Digest> seal_at_anchor;
  if (out.anchor.seq > 0) {
    auto db = store::Db::Open(file, false);
    if (!db.ok()) return Status(Code::kCorruption, "backup_unreadable", std::string(db.status().message()));
    SK_ASSIGN_OR_RETURN(store::Stmt q, (*db)->Prepare("SELECT seal FROM journal WHERE seq = ?1"));
    q.Bind(1, static_cast<std::int64_t>(out.anchor.seq));
    if (q.Step() && q.Blob(0).size() == Digest{}.size()) {
      Digest d{};
      std::copy(q.Blob(0).begin(), q.Blob(0).end(), d.begin());
      seal_at_anchor = d;
    }
  }
  SK_ASSIGN_OR_RETURN(out.manifest, ReadSealedBackupManifest(file, jk));
  const std::string store = options.store_path;
  if (Exists(store)) {
    auto db = store::Db::Open(store, false);
    if (db.ok()) {
      auto q = (*db)->Prepare("SELECT value FROM meta WHERE key = 'store_id'");
      if (q.ok() && q->Step() && Bytes(q->Blob(0).begin(), q->Blob(0).end()) != store_id) {
        return Status(Code::kFailedPrecondition, "backup_other_store",
                      "the backup is of store " + out.manifest.store_id + ", not of the store at " + store);
      }
    }
  }
  // What the hardware anchored that the backup does not hold.
  bool differs = false;
  if (out.anchor.seq > out.manifest.head_seq) {
    out.lost = out.anchor.seq - out.manifest.head_seq;
  } else if (out.anchor.seq > 0 && (!seal_at_anchor || *seal_at_anchor != out.anchor.head_hash)) {
    differs = true;  // the backup reaches past the anchor along another history
  }
  if ((out.lost > 0 || differs) && !accept_loss) {
    std::string gap = differs ? "the backup's history differs from the one the hardware anchored (at seq " +
                                    std::to_string(out.anchor.seq) + ")"
                              : "the hardware anchor is at seq " + std::to_string(out.anchor.seq) +
                                    " and the backup ends at seq " + std::to_string(out.manifest.head_seq) +
                                    ": the " + std::to_string(out.lost) +
                                    " anchored changes after the backup would be lost";
    return FailedPrecondition(gap + "; nothing was changed. Restore anyway with --accept-loss",
                              "restore_needs_accept_loss");
  }
  SK_ASSIGN_OR_RETURN(Bytes tag, RandomBytes(4));
  out.kept_aside = store + ".before-restore-" + HexEncode(tag);
  if (Exists(store)) {
    if (::rename(store.c_str(), out.kept_aside.c_str()) != 0)
      return IoError("cannot move aside", store, errno);
    if (Exists(store + "-wal") &&
        ::rename((store + "-wal").c_str(), (out.kept_aside + "-wal").c_str()) != 0) {
      return IoError("cannot move aside", store + "-wal", errno);
    }
    ::unlink((store + "-shm").c_str());
  } else {
    out.kept_aside.clear();
  }
  SK_RETURN_IF_ERROR(CopyFileDurably(file, store));
  {
    ServiceOptions o = options;
    o.adopt_backup = ServiceOptions::AdoptBackup{
        out.manifest.head_seq, out.manifest.head_hash,
        "restored from backup on the same hardware: backup head_seq=" +
            std::to_string(out.manifest.head_seq) + " head_hash=" + HexEncode(out.manifest.head_hash) +
            "; the anchor was at seq=" + std::to_string(out.anchor.seq) +
            " hash=" + HexEncode(out.anchor.head_hash) + "; " + std::to_string(out.lost) +
            " anchored changes after the backup are lost (accepted)",
        true, actor.text};
    SK_ASSIGN_OR_RETURN(auto svc, SecretService::Open(backend, o));
    out.restored_seq = svc->Report().head_seq;
    SK_ASSIGN_OR_RETURN(out.report, svc->VerifyAll());
  }
  MatchFolderOwner(store);
  return out;
}

}  // namespace sk::secrets
