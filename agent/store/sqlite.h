// Thin RAII wrappers over the SQLite C API: a connection (Db) and a prepared statement
// (Stmt). Errors become Status: SQLITE_BUSY/LOCKED -> kUnavailable ("store_busy"),
// SQLITE_CORRUPT/NOTADB -> kCorruption ("store_corrupt"), SQLITE_FULL/IOERR ->
// kUnavailable ("store_io_error"), anything else kInternal. Messages carry SQLite's
// text, which names tables and constraints but never bound values.
//
// A Db is used by one thread at a time (SQLite's multi-thread mode); a Stmt belongs to
// its Db. Neither is copyable.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "crypto/bytes.h"
#include "crypto/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace sk::store {

Status SqliteStatus(int rc, std::string_view what, sqlite3* db = nullptr);

class Stmt {
 public:
  Stmt() = default;
  Stmt(Stmt&& other) noexcept;
  Stmt& operator=(Stmt&& other) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt();

  // Binds are 1-based, like SQLite's. Blobs and text are copied (SQLITE_TRANSIENT)
  // unless the _Static variants are used, which require the bytes to outlive Step().
  Stmt& Bind(int i, std::int64_t v);
  Stmt& Bind(int i, std::string_view text);
  Stmt& BindBlob(int i, ByteView blob);
  Stmt& BindNull(int i);

  // true: a row is ready; false: done. Errors are kept and returned by status().
  bool Step();
  // Resets for re-use and clears bindings.
  void Reset();
  // Runs to completion (for statements that return no rows).
  Status Run();
  const Status& status() const { return status_; }

  std::int64_t Int(int col) const;
  std::string Text(int col) const;
  ByteView Blob(int col) const;  // valid until the next Step()/Reset()
  bool IsNull(int col) const;

 private:
  friend class Db;
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), stmt_(s) {}
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  Status status_;
};

// Process-wide SQLite settings, applied once before the first connection opens.
void ConfigureSqlite();

class Db {
 public:
  // Opens (creating when `create`) the file with the named VFS (nullptr: default).
  static Result<std::unique_ptr<Db>> Open(const std::string& path, bool create, const char* vfs = nullptr);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  Status Exec(std::string_view sql);
  Result<Stmt> Prepare(std::string_view sql);
  // A cached prepared statement, reset and ready for new bindings. The pointer stays
  // valid for the Db's lifetime.
  Result<Stmt*> Cached(std::string_view sql);

  std::int64_t Changes() const;
  sqlite3* raw() const { return db_; }

 private:
  explicit Db(sqlite3* db);
  struct Cache;
  sqlite3* db_;
  std::unique_ptr<Cache> cache_;
};

// Runs `sql` on `db` and returns the single integer it yields (e.g. a PRAGMA).
Result<std::int64_t> QueryInt(Db& db, std::string_view sql);

}  // namespace sk::store
