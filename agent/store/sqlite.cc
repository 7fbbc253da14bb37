#include "agent/store/sqlite.h"

#include <sqlite3.h>

#include <mutex>
#include <string>
#include <unordered_map>

namespace sk::store {

Status SqliteStatus(int rc, std::string_view what, sqlite3* db) {
  if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) return OkStatus();
  std::string msg = std::string(what) + ": " + sqlite3_errstr(rc);
  if (db != nullptr && sqlite3_errcode(db) == rc) msg += " (" + std::string(sqlite3_errmsg(db)) + ")";
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status(Code::kUnavailable, "store_busy", msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status(Code::kCorruption, "store_corrupt", msg);
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return Status(Code::kUnavailable, "store_io_error", msg);
    case SQLITE_CONSTRAINT:
      return Status(Code::kConflict, "store_constraint", msg);
    default:
      return Status(Code::kInternal, "store_error", msg);
  }
}

Stmt::Stmt(Stmt&& o) noexcept : db_(o.db_), stmt_(o.stmt_), status_(std::move(o.status_)) {
  o.stmt_ = nullptr;
}
Stmt& Stmt::operator=(Stmt&& o) noexcept {
  if (this != &o) {
    sqlite3_finalize(stmt_);
    db_ = o.db_;
    stmt_ = o.stmt_;
    status_ = std::move(o.status_);
    o.stmt_ = nullptr;
  }
  return *this;
}
Stmt::~Stmt() { sqlite3_finalize(stmt_); }

Stmt& Stmt::Bind(int i, std::int64_t v) {
  if (status_.ok()) status_ = SqliteStatus(sqlite3_bind_int64(stmt_, i, v), "bind", db_);
  return *this;
}
Stmt& Stmt::Bind(int i, std::string_view text) {
  if (status_.ok()) {
    status_ = SqliteStatus(
        sqlite3_bind_text64(stmt_, i, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8), "bind", db_);
  }
  return *this;
}
Stmt& Stmt::BindBlob(int i, ByteView blob) {
  if (status_.ok()) {
    // A zero-length blob must still bind as a blob, not NULL: give SQLite a valid pointer.
    static const std::uint8_t kEmpty = 0;
    const void* p = blob.empty() ? &kEmpty : blob.data();
    status_ = SqliteStatus(sqlite3_bind_blob64(stmt_, i, p, blob.size(), SQLITE_TRANSIENT), "bind", db_);
  }
  return *this;
}
Stmt& Stmt::BindNull(int i) {
  if (status_.ok()) status_ = SqliteStatus(sqlite3_bind_null(stmt_, i), "bind", db_);
  return *this;
}

bool Stmt::Step() {
  if (!status_.ok()) return false;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc != SQLITE_DONE) status_ = SqliteStatus(rc, "step", db_);
  return false;
}

void Stmt::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  status_ = OkStatus();
}

Status Stmt::Run() {
  while (Step()) {
  }
  return status_;
}

std::int64_t Stmt::Int(int col) const { return sqlite3_column_int64(stmt_, col); }
std::string Stmt::Text(int col) const {
  const unsigned char* t = sqlite3_column_text(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  return t == nullptr ? std::string()
                      : std::string(reinterpret_cast<const char*>(t), static_cast<std::size_t>(n));
}
ByteView Stmt::Blob(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  if (p == nullptr) return {};
  return {static_cast<const std::uint8_t*>(p), static_cast<std::size_t>(n)};
}
bool Stmt::IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

struct Db::Cache {
  std::unordered_map<std::string, std::unique_ptr<Stmt>> stmts;
};

void ConfigureSqlite() {
  static std::once_flag once;
  std::call_once(once, [] {
    // No global memory statistics: with them every allocation takes one process-wide
    // mutex, which concurrent readers then fight over. Only possible before SQLite
    // initialises; if something initialised it first, it stays on (and still works).
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  });
}

Result<std::unique_ptr<Db>> Db::Open(const std::string& path, bool create, const char* vfs) {
  ConfigureSqlite();
  sqlite3* raw = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, vfs);
  if (rc != SQLITE_OK) {
    Status st = SqliteStatus(rc, "opening " + path, raw);
    sqlite3_close_v2(raw);
    if ((rc & 0xff) == SQLITE_CANTOPEN && !create) {
      return Status(Code::kNotFound, "store_missing", "no store at " + path);
    }
    return st;
  }
  sqlite3_extended_result_codes(raw, 1);
  auto db = std::unique_ptr<Db>(new Db(raw));
  db->cache_ = std::make_unique<Cache>();
  return db;
}

Db::Db(sqlite3* db) : db_(db) {}

Db::~Db() {
  cache_.reset();  // finalize statements before closing
  sqlite3_close_v2(db_);
}

Status Db::Exec(std::string_view sql) {
  char* err = nullptr;
  std::string s(sql);
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  sqlite3_free(err);
  return SqliteStatus(rc, "exec", db_);
}

Result<Stmt> Db::Prepare(std::string_view sql) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &s,
                              nullptr);
  if (rc != SQLITE_OK) return SqliteStatus(rc, "prepare", db_);
  return Stmt(db_, s);
}

Result<Stmt*> Db::Cached(std::string_view sql) {
  auto it = cache_->stmts.find(std::string(sql));
  if (it != cache_->stmts.end()) {
    it->second->Reset();
    return it->second.get();
  }
  SK_ASSIGN_OR_RETURN(Stmt s, Prepare(sql));
  auto owned = std::make_unique<Stmt>(std::move(s));
  Stmt* p = owned.get();
  cache_->stmts.emplace(std::string(sql), std::move(owned));
  return p;
}

std::int64_t Db::Changes() const { return sqlite3_changes64(db_); }

Result<std::int64_t> QueryInt(Db& db, std::string_view sql) {
  SK_ASSIGN_OR_RETURN(Stmt s, db.Prepare(sql));
  if (!s.Step()) {
    SK_RETURN_IF_ERROR(s.status());
    return Internal("query returned no row: " + std::string(sql));
  }
  return s.Int(0);
}

}  // namespace sk::store
