// The SQLite implementation of Store: WAL, synchronous=FULL, secure_delete, one writer
// connection (the committer's) and one connection per Reader.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/store/fault_vfs.h"
#include "agent/store/schema.h"
#include "agent/store/sqlite.h"
#include "agent/store/store.h"

namespace sk::store {
namespace {

Digest ToDigest(ByteView b) {
  Digest d{};
  if (b.size() == d.size()) std::copy(b.begin(), b.end(), d.begin());
  return d;
}

std::int64_t I64(std::uint64_t v) { return static_cast<std::int64_t>(v); }

// The row-level queries, shared by readers and the writer (which reads its own writes).
class Rows : public virtual Reader {
 public:
  explicit Rows(std::unique_ptr<Db> db) : db_(std::move(db)) {}

  Result<std::optional<VersionBlob>> GetVersion(std::string_view path, std::uint64_t version) override {
    SK_ASSIGN_OR_RETURN(
        Stmt * s,
        db_->Cached("SELECT ciphertext, wrapped_dek, erased FROM versions WHERE path = ?1 AND version = ?2"));
    s->Bind(1, path).Bind(2, I64(version));
    if (!s->Step()) {
      SK_RETURN_IF_ERROR(s->status());
      return std::optional<VersionBlob>();
    }
    VersionBlob b;
    ByteView ct = s->Blob(0), dek = s->Blob(1);
    b.ciphertext.assign(ct.begin(), ct.end());
    b.wrapped_dek.assign(dek.begin(), dek.end());
    b.erased = s->Int(2) != 0;
    s->Reset();
    return std::optional<VersionBlob>(std::move(b));
  }

  Result<std::optional<JournalRecord>> GetEntry(std::uint64_t seq) override {
    SK_ASSIGN_OR_RETURN(Stmt * s, db_->Cached("SELECT seq, path, entry, seal FROM journal WHERE seq = ?1"));
    s->Bind(1, I64(seq));
    if (!s->Step()) {
      SK_RETURN_IF_ERROR(s->status());
      return std::optional<JournalRecord>();
    }
    JournalRecord r = RecordFrom(*s);
    s->Reset();
    return std::optional<JournalRecord>(std::move(r));
  }

  Result<std::optional<JournalRecord>> LastEntry() override {
    SK_ASSIGN_OR_RETURN(
        Stmt * s,
        db_->Cached("SELECT seq, path, entry, seal FROM journal WHERE seq = (SELECT max(seq) FROM journal)"));
    if (!s->Step()) {
      SK_RETURN_IF_ERROR(s->status());
      return std::optional<JournalRecord>();
    }
    JournalRecord r = RecordFrom(*s);
    s->Reset();
    return std::optional<JournalRecord>(std::move(r));
  }

  Status ScanJournal(std::uint64_t from, const std::function<bool(JournalRecord&)>& fn) override {
    SK_ASSIGN_OR_RETURN(
        Stmt s, db_->Prepare("SELECT seq, path, entry, seal FROM journal WHERE seq >= ?1 ORDER BY seq"));
    s.Bind(1, I64(from));
    while (s.Step()) {
      JournalRecord r = RecordFrom(s);
      if (!fn(r)) break;
    }
    return s.status();
  }

  Status ScanPathEntries(std::string_view path, std::uint64_t from,
                         const std::function<bool(JournalRecord&)>& fn) override {
    SK_ASSIGN_OR_RETURN(
        Stmt s, db_->Prepare(
                    "SELECT seq, path, entry, seal FROM journal WHERE path = ?1 AND seq >= ?2 ORDER BY seq"));
    s.Bind(1, path).Bind(2, I64(from));
    while (s.Step()) {
      JournalRecord r = RecordFrom(s);
      if (!fn(r)) break;
    }
    return s.status();
  }

  Status ScanVersions(
      const std::function<bool(const std::string&, std::uint64_t, VersionBlob&)>& fn) override {
    SK_ASSIGN_OR_RETURN(
        Stmt s,
        db_->Prepare(
            "SELECT path, version, ciphertext, wrapped_dek, erased FROM versions ORDER BY path, version"));
    while (s.Step()) {
      VersionBlob b;
      ByteView ct = s.Blob(2), dek = s.Blob(3);
      b.ciphertext.assign(ct.begin(), ct.end());
      b.wrapped_dek.assign(dek.begin(), dek.end());
      b.erased = s.Int(4) != 0;
      if (!fn(s.Text(0), static_cast<std::uint64_t>(s.Int(1)), b)) break;
    }
    return s.status();
  }

  Status CopyTo(const std::string& dest) override {
    sqlite3* out = nullptr;
    int rc = sqlite3_open_v2(dest.c_str(), &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    auto fail = [&](const std::string& what) {
      std::string msg = what + " " + dest + ": " + (out ? sqlite3_errmsg(out) : sqlite3_errstr(rc));
      sqlite3_close(out);
      return Status(Code::kUnavailable, "store_io_error", msg);
    };
    if (rc != SQLITE_OK) return fail("cannot create");
    sqlite3_backup* b = sqlite3_backup_init(out, "main", db_->raw(), "main");
    if (b == nullptr) return fail("cannot start the copy to");
    rc = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) return fail("cannot copy the store to");
    rc = sqlite3_exec(out, "PRAGMA journal_mode = DELETE", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return fail("cannot finish");
    sqlite3_close(out);
    return OkStatus();
  }
  Result<std::optional<Bytes>> GetRecoveryWrap(std::string_view path, std::uint64_t version) override {
    SK_ASSIGN_OR_RETURN(Stmt * s,
                        db_->Cached("SELECT recovery_wrap FROM versions WHERE path = ?1 AND version = ?2 AND "
                                    "recovery_wrap IS NOT NULL"));
    s->Bind(1, path).Bind(2, I64(version));
    if (!s->Step()) {
      SK_RETURN_IF_ERROR(s->status());
      return std::optional<Bytes>();
    }
    ByteView v = s->Blob(0);
    Bytes out(v.begin(), v.end());
    s->Reset();
    return std::optional<Bytes>(std::move(out));
  }
  Result<std::pair<std::uint64_t, std::uint64_t>> CountRecoveryWraps(ByteView key_id) override {
    SK_ASSIGN_OR_RETURN(
        Stmt s, db_->Prepare("SELECT count(*), count(CASE WHEN substr(recovery_wrap, 6, 8) = ?1 THEN 1 END) "
                             "FROM versions WHERE erased = 0"));
    s.BindBlob(1, key_id);
    if (!s.Step()) {
      SK_RETURN_IF_ERROR(s.status());
      return Internal("count returned no row");
    }
    return std::pair<std::uint64_t, std::uint64_t>(static_cast<std::uint64_t>(s.Int(0)),
                                                   static_cast<std::uint64_t>(s.Int(1)));
  }
  Status ScanRecoveryPending(
      ByteView key_id, const std::string& after_path, std::uint64_t after_version, std::size_t limit,
      const std::function<void(const std::string&, std::uint64_t, ByteView)>& fn) override {
    SK_ASSIGN_OR_RETURN(
        Stmt s,
        db_->Prepare("SELECT path, version, wrapped_dek FROM versions WHERE (path, version) > (?3, ?4) AND "
                     "erased = 0 AND (recovery_wrap IS NULL OR substr(recovery_wrap, 6, 8) != ?1) ORDER BY "
                     "path, version LIMIT ?2"));
    s.BindBlob(1, key_id)
        .Bind(2, static_cast<std::int64_t>(limit))
        .Bind(3, after_path)
        .Bind(4, I64(after_version));
    while (s.Step()) fn(s.Text(0), static_cast<std::uint64_t>(s.Int(1)), s.Blob(2));
    return s.status();
  }
  Result<std::optional<Bytes>> GetMeta(std::string_view key) override {
    SK_ASSIGN_OR_RETURN(Stmt * s, db_->Cached("SELECT value FROM meta WHERE key = ?1"));
    s->Bind(1, key);
    if (!s->Step()) {
      SK_RETURN_IF_ERROR(s->status());
      return std::optional<Bytes>();
    }
    ByteView v = s->Blob(0);
    Bytes out(v.begin(), v.end());
    s->Reset();
    return std::optional<Bytes>(std::move(out));
  }

  Result<std::optional<SnapshotRecord>> GetSnapshot(std::string_view name) override {
    SK_ASSIGN_OR_RETURN(Stmt * s, db_->Cached("SELECT name, body, seal FROM snapshots WHERE name = ?1"));
    s->Bind(1, name);
    if (!s->Step()) {
      SK_RETURN_IF_ERROR(s->status());
      return std::optional<SnapshotRecord>();
    }
    SnapshotRecord r;
    r.name = s->Text(0);
    ByteView body = s->Blob(1);
    r.body.assign(body.begin(), body.end());
    r.seal = ToDigest(s->Blob(2));
    s->Reset();
    return std::optional<SnapshotRecord>(std::move(r));
  }

  Result<std::optional<IdempotencyRecord>> GetIdempotency(std::string_view key) override {
    SK_ASSIGN_OR_RETURN(
        Stmt * s,
        db_->Cached("SELECT key, request_digest, result, created_ms FROM idempotency WHERE key = ?1"));
    s->Bind(1, key);
    if (!s->Step()) {
      SK_RETURN_IF_ERROR(s->status());
      return std::optional<IdempotencyRecord>();
    }
    IdempotencyRecord r;
    r.key = s->Text(0);
    r.request_digest = ToDigest(s->Blob(1));
    r.result = s->Text(2);
    r.created_ms = s->Int(3);
    s->Reset();
    return std::optional<IdempotencyRecord>(std::move(r));
  }

  Result<std::vector<std::pair<std::uint64_t, Bytes>>> AuditOutbox() override {
    SK_ASSIGN_OR_RETURN(Stmt s, db_->Prepare("SELECT seq, record FROM audit_outbox ORDER BY seq"));
    std::vector<std::pair<std::uint64_t, Bytes>> out;
    while (s.Step()) {
      ByteView record = s.Blob(1);
      out.emplace_back(static_cast<std::uint64_t>(s.Int(0)), Bytes(record.begin(), record.end()));
    }
    SK_RETURN_IF_ERROR(s.status());
    return out;
  }
  Status ScanSnapshots(const std::function<bool(SnapshotRecord&)>& fn) override {
    SK_ASSIGN_OR_RETURN(Stmt s, db_->Prepare("SELECT name, body, seal FROM snapshots ORDER BY name"));
    while (s.Step()) {
      SnapshotRecord r;
      r.name = s.Text(0);
      ByteView body = s.Blob(1);
      r.body.assign(body.begin(), body.end());
      r.seal = ToDigest(s.Blob(2));
      if (!fn(r)) break;
    }
    return s.status();
  }

 protected:
  static JournalRecord RecordFrom(const Stmt& s) {
    JournalRecord r;
    r.seq = static_cast<std::uint64_t>(s.Int(0));
    r.path = s.Text(1);
    ByteView e = s.Blob(2);
    r.entry.assign(e.begin(), e.end());
    r.seal = ToDigest(s.Blob(3));
    return r;
  }
  std::unique_ptr<Db> db_;
};

class SqliteReader final : public Rows {
 public:
  using Rows::Rows;
  ~SqliteReader() override {
    if (in_read_) (void)EndRead();
  }
  SqliteReader(const SqliteReader&) = delete;
  SqliteReader& operator=(const SqliteReader&) = delete;

  Status BeginRead() override {
    if (in_read_) return Internal("a read transaction is already open");
    SK_RETURN_IF_ERROR(db_->Exec("BEGIN DEFERRED"));
    // A deferred transaction takes its snapshot at its first read: take it now.
    auto pinned = QueryInt(*db_, "SELECT count(*) FROM meta");
    if (!pinned.ok()) {
      (void)db_->Exec("ROLLBACK");
      return pinned.status();
    }
    in_read_ = true;
    return OkStatus();
  }
  Status EndRead() override {
    if (!in_read_) return OkStatus();
    in_read_ = false;
    return db_->Exec("COMMIT");
  }

 private:
  bool in_read_ = false;
};

class SqliteWriter final : public Writer, public Rows {
 public:
  explicit SqliteWriter(std::unique_ptr<Db> db) : Rows(std::move(db)) {}
  Db& db() { return *db_; }

  Status AppendEntry(const JournalRecord& r) override {
    SK_ASSIGN_OR_RETURN(Stmt * s,
                        db_->Cached("INSERT INTO journal (seq, path, entry, seal) VALUES (?1, ?2, ?3, ?4)"));
    return s->Bind(1, I64(r.seq)).Bind(2, r.path).BindBlob(3, r.entry).BindBlob(4, r.seal).Run();
  }
  Status PutVersion(std::string_view path, std::uint64_t version, const VersionBlob& b) override {
    SK_ASSIGN_OR_RETURN(Stmt * s,
                        db_->Cached("INSERT OR REPLACE INTO versions (path, version, ciphertext, "
                                    "wrapped_dek, erased, recovery_wrap) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
    s->Bind(1, path).Bind(2, I64(version)).BindBlob(3, b.ciphertext).BindBlob(4, b.wrapped_dek);
    s->Bind(5, b.erased ? 1 : 0);
    if (b.recovery_wrap.empty()) {
      s->BindNull(6);
    } else {
      s->BindBlob(6, b.recovery_wrap);
    }
    return s->Run();
  }
  Status EraseVersion(std::string_view path, std::uint64_t version) override {
    SK_ASSIGN_OR_RETURN(Stmt * s, db_->Cached("UPDATE versions SET ciphertext = zeroblob(0), wrapped_dek = "
                                              "zeroblob(0), erased = 1, recovery_wrap = NULL "
                                              "WHERE path = ?1 AND version = ?2"));
    return s->Bind(1, path).Bind(2, I64(version)).Run();
  }
  Status PutRecoveryWrap(std::string_view path, std::uint64_t version, ByteView blob) override {
    SK_ASSIGN_OR_RETURN(Stmt * s, db_->Cached("UPDATE versions SET recovery_wrap = ?3 WHERE path = ?1 AND "
                                              "version = ?2 AND erased = 0"));
    return s->Bind(1, path).Bind(2, I64(version)).BindBlob(3, blob).Run();
  }
  Status UpdateWrappedDek(std::string_view path, std::uint64_t version, ByteView wrapped) override {
    SK_ASSIGN_OR_RETURN(
        Stmt * s,
        db_->Cached("UPDATE versions SET wrapped_dek = ?3 WHERE path = ?1 AND version = ?2 AND erased = 0"));
    return s->Bind(1, path).Bind(2, I64(version)).BindBlob(3, wrapped).Run();
  }
  Status PutAuditOutbox(std::uint64_t seq, ByteView record) override {
    SK_ASSIGN_OR_RETURN(Stmt * s,
                        db_->Cached("INSERT OR REPLACE INTO audit_outbox (seq, record) VALUES (?1, ?2)"));
    return s->Bind(1, I64(seq)).BindBlob(2, record).Run();
  }
  Status DeleteAuditOutboxThrough(std::uint64_t seq) override {
    SK_ASSIGN_OR_RETURN(Stmt * s, db_->Cached("DELETE FROM audit_outbox WHERE seq <= ?1"));
    return s->Bind(1, I64(std::min<std::uint64_t>(seq, INT64_MAX))).Run();
  }
  Status PutMeta(std::string_view key, ByteView value) override {
    SK_ASSIGN_OR_RETURN(Stmt * s, db_->Cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)"));
    return s->Bind(1, key).BindBlob(2, value).Run();
  }
  Status PutSnapshot(const SnapshotRecord& r) override {
    SK_ASSIGN_OR_RETURN(Stmt * s,
                        db_->Cached("INSERT INTO snapshots (name, body, seal) VALUES (?1, ?2, ?3)"));
    return s->Bind(1, r.name).BindBlob(2, r.body).BindBlob(3, r.seal).Run();
  }
  Status PutIdempotency(const IdempotencyRecord& r) override {
    SK_ASSIGN_OR_RETURN(
        Stmt * s,
        db_->Cached(
            "INSERT INTO idempotency (key, request_digest, result, created_ms) VALUES (?1, ?2, ?3, ?4)"));
    return s->Bind(1, r.key).BindBlob(2, r.request_digest).Bind(3, r.result).Bind(4, r.created_ms).Run();
  }
  Status DeleteIdempotencyBefore(std::int64_t created_ms) override {
    SK_ASSIGN_OR_RETURN(Stmt * s, db_->Cached("DELETE FROM idempotency WHERE created_ms < ?1"));
    return s->Bind(1, created_ms).Run();
  }
  Status BeginRead() override { return Internal("the writer reads inside its own transaction"); }
  Status EndRead() override { return OkStatus(); }
  Status Savepoint() override { return db_->Exec("SAVEPOINT op"); }
  Status ReleaseSavepoint() override { return db_->Exec("RELEASE op"); }
  Status RollbackToSavepoint() override {
    SK_RETURN_IF_ERROR(db_->Exec("ROLLBACK TO op"));
    return db_->Exec("RELEASE op");
  }
};

class SqliteStore final : public Store {
 public:
  SqliteStore(SqliteOptions options, int lock_fd, bool created)
      : options_(std::move(options)), lock_fd_(lock_fd), created_(created) {}
  ~SqliteStore() override {
    if (in_txn_) Abort();
    writer_.reset();
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  Status Init() {
    SK_ASSIGN_OR_RETURN(auto db, Connect());
    SK_RETURN_IF_ERROR(MigrateSchema(*db));
    writer_ = std::make_unique<SqliteWriter>(std::move(db));
    return OkStatus();
  }

  Result<std::unique_ptr<Reader>> NewReader() override {
    SK_ASSIGN_OR_RETURN(auto db, Connect());
    return std::unique_ptr<Reader>(std::make_unique<SqliteReader>(std::move(db)));
  }

  Result<Writer*> Begin() override {
    if (failed_)
      return Status(Code::kUnavailable, "store_failed", "the store failed a commit; restart the agent");
    if (in_txn_) return Internal("a write transaction is already open");
    SK_RETURN_IF_ERROR(writer_->db().Exec("BEGIN IMMEDIATE"));
    in_txn_ = true;
    return static_cast<Writer*>(writer_.get());
  }

  Status Commit() override {
    if (!in_txn_) return Internal("commit without a transaction");
    Status st = writer_->db().Exec("COMMIT");
    if (!st.ok()) {
      Abort();
      failed_ = true;
      return st.WithContext("committing");
    }
    in_txn_ = false;
    return OkStatus();
  }

  void Abort() override {
    if (!in_txn_) return;
    (void)writer_->db().Exec("ROLLBACK");  // fails harmlessly when SQLite already rolled back
    in_txn_ = false;
  }

  Status Checkpoint() override {
    if (in_txn_) return Internal("checkpoint inside a transaction");
    // No busy wait: a long reader (a full verification holds one snapshot throughout)
    // would otherwise stall the committer for busy_timeout. Blocked, it says so and the
    // caller tries again later.
    Db& db = writer_->db();
    SK_RETURN_IF_ERROR(db.Exec("PRAGMA busy_timeout = 0"));
    Result<std::int64_t> blocked = QueryInt(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    Status restored = db.Exec("PRAGMA busy_timeout = " + std::to_string(options_.busy_timeout_ms));
    if (!blocked.ok()) return blocked.status();
    SK_RETURN_IF_ERROR(restored);
    if (*blocked != 0)
      return Status(Code::kUnavailable, "store_busy", "a reader holds an older snapshot; checkpoint later");
    return OkStatus();
  }

  std::string Describe() const override { return "sqlite:" + options_.path; }
  Result<std::string> DurabilitySettings() override {
    SK_ASSIGN_OR_RETURN(Stmt mode, writer_->db().Prepare("PRAGMA journal_mode"));
    if (!mode.Step())
      return mode.status().ok() ? Internal("PRAGMA journal_mode returned nothing") : mode.status();
    std::string out = "journal_mode=" + mode.Text(0);
    SK_ASSIGN_OR_RETURN(std::int64_t sync, QueryInt(writer_->db(), "PRAGMA synchronous"));
    return out + " synchronous=" + std::to_string(sync);
  }
  bool is_empty_on_open() const override { return created_; }

 private:
  Result<std::unique_ptr<Db>> Connect() {
    ConfigureSqlite();
    const char* vfs = nullptr;
    if (options_.vfs == kFaultVfsName) {
      FaultVfs();
      vfs = kFaultVfsName;
    } else if (!options_.vfs.empty()) {
      return InvalidArgument("unknown SQLite VFS '" + options_.vfs + "'", "bad_config");
    }
    SK_ASSIGN_OR_RETURN(auto db, Db::Open(options_.path, false, vfs));
    SK_RETURN_IF_ERROR(db->Exec("PRAGMA busy_timeout = " + std::to_string(options_.busy_timeout_ms)));
    SK_RETURN_IF_ERROR(db->Exec("PRAGMA journal_mode = WAL"));
    SK_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous = FULL"));
    SK_RETURN_IF_ERROR(db->Exec("PRAGMA secure_delete = ON"));
    SK_RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys = OFF"));
    SK_RETURN_IF_ERROR(db->Exec("PRAGMA cache_size = -16384"));
    return db;
  }

  SqliteOptions options_;
  int lock_fd_;
  bool created_;
  std::unique_ptr<SqliteWriter> writer_;
  bool in_txn_ = false;
  bool failed_ = false;
};

Result<int> LockStore(const std::string& path) {
  std::string lock_path = path + ".lock";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status(Code::kUnavailable, "store_io_error",
                  "cannot open " + lock_path + ": " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return Status(Code::kUnavailable, "store_locked",
                    "the store " + path + " is in use by another process (is sealkeepd running?)");
    }
    return Status(Code::kUnavailable, "store_io_error",
                  "cannot lock " + lock_path + ": " + std::strerror(err));
  }
  return fd;
}

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options) {
  int lock_fd = -1;
  if (options.lock) {
    SK_ASSIGN_OR_RETURN(lock_fd, LockStore(options.path));
  }
  // Create the file ourselves so it is 0600 from the first byte; SQLite gives the -wal
  // and -shm files the same mode.
  bool created = false;
  struct stat st {};
  if (::stat(options.path.c_str(), &st) != 0) {
    if (!options.create) {
      if (lock_fd >= 0) ::close(lock_fd);
      return Status(Code::kNotFound, "store_missing", "no store at " + options.path);
    }
    int fd = ::open(options.path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      int err = errno;
      if (lock_fd >= 0) ::close(lock_fd);
      return Status(Code::kUnavailable, "store_io_error",
                    "cannot create " + options.path + ": " + std::strerror(err));
    }
    ::close(fd);
    created = true;
  }
  auto store = std::make_unique<SqliteStore>(options, lock_fd, created);
  SK_RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace sk::store
