#include "agent/store/schema.h"

#include <string>

#include "agent/store/store.h"

namespace sk::store {
namespace {

constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE journal (seq INTEGER PRIMARY KEY, path TEXT NOT NULL, entry BLOB NOT NULL, seal BLOB NOT NULL);
CREATE INDEX journal_by_path ON journal (path, seq);
CREATE TABLE versions (path TEXT NOT NULL, version INTEGER NOT NULL, ciphertext BLOB NOT NULL,
                       wrapped_dek BLOB NOT NULL, erased INTEGER NOT NULL DEFAULT 0,
                       PRIMARY KEY (path, version)) WITHOUT ROWID;
CREATE TABLE snapshots (name TEXT PRIMARY KEY, body BLOB NOT NULL, seal BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE idempotency (key TEXT PRIMARY KEY, request_digest BLOB NOT NULL, result TEXT NOT NULL,
                          created_ms INTEGER NOT NULL) WITHOUT ROWID;
)sql";

constexpr const char* kSchemaV2 = R"sql(
CREATE INDEX idempotency_by_time ON idempotency (created_ms);
)sql";

// The recovery key's second wrap of each version's data key (docs/recovery.md), in the
// version's own row (written in the same page as the version: no extra page per commit).
// The key id is bytes 6..13 (1-based) of the blob (crypto/recovery_wrap.h).
constexpr const char* kSchemaV3 = R"sql(
ALTER TABLE versions ADD COLUMN recovery_wrap BLOB;
)sql";

// A change's "allowed" audit record, kept in the change's own transaction until the audit
// log holding it (at `seq`) is synced: one sync makes both durable (docs/audit.md).
constexpr const char* kSchemaV4 = R"sql(
CREATE TABLE audit_outbox (seq INTEGER PRIMARY KEY, record BLOB NOT NULL);
)sql";

// migrations[n] takes schema n to n+1; index 0 creates the schema from nothing.
constexpr const char* kMigrations[] = {kSchemaV1, kSchemaV2, kSchemaV3, kSchemaV4};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kSchemaVersion);

}  // namespace

Status MigrateSchema(Db& db, int target) {
  if (target < 1 || target > kSchemaVersion) return Internal("no schema version " + std::to_string(target));
  SK_ASSIGN_OR_RETURN(std::int64_t version, QueryInt(db, "PRAGMA user_version"));
  if (version > kSchemaVersion) {
    return Status(Code::kFailedPrecondition, "store_too_new",
                  "the store has schema version " + std::to_string(version) +
                      "; this sealkeep understands up to " + std::to_string(kSchemaVersion));
  }
  if (version == 0) {
    SK_ASSIGN_OR_RETURN(std::int64_t tables, QueryInt(db, "SELECT count(*) FROM sqlite_schema"));
    if (tables != 0) {
      return Status(Code::kCorruption, "store_corrupt", "the file has tables but no sealkeep schema version");
    }
  }
  while (version < target) {
    SK_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
    Status st = db.Exec(kMigrations[version]);
    if (st.ok()) st = db.Exec("PRAGMA user_version = " + std::to_string(version + 1));
    if (st.ok()) st = db.Exec("COMMIT");
    if (!st.ok()) {
      (void)db.Exec("ROLLBACK");
      return st.WithContext("migrating the store schema from version " + std::to_string(version));
    }
    ++version;
  }
  return OkStatus();
}

}  // namespace sk::store
