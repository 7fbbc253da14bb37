// The SQLite schema of the store and its migrations.
//
// PRAGMA user_version holds the schema version. Version 1:
//   meta(key TEXT PRIMARY KEY, value BLOB)          -- store id, wrapped keys, sealed head
//   journal(seq INTEGER PRIMARY KEY, path TEXT, entry BLOB, seal BLOB), index (path, seq)
//   versions(path TEXT, version INTEGER, ciphertext BLOB, wrapped_dek BLOB,
//            erased INTEGER, PRIMARY KEY (path, version)) WITHOUT ROWID
//   snapshots(name TEXT PRIMARY KEY, body BLOB, seal BLOB) WITHOUT ROWID
//   idempotency(key TEXT PRIMARY KEY, request_digest BLOB, result TEXT,
//               created_ms INTEGER) WITHOUT ROWID
// Version 2 adds idempotency_by_time ON idempotency (created_ms): the hourly purge of
// expired keys (DELETE ... WHERE created_ms < ?) runs inside the committer's write
// transaction, and without the index it scans every key of the last day.
//
// A migration from version n to n+1 runs in one transaction with the version bump, so
// a crash during a migration leaves the old schema intact. Adding version n+1: append
// its SQL to kMigrations (never edit an earlier one), bump kSchemaVersion (store.h),
// describe it here, and add a test that opens a version-n file built by
// MigrateSchema(db, n) (tests/agent/store_test.cc).
#pragma once

#include "agent/store/sqlite.h"
#include "agent/store/store.h"

namespace sk::store {

// Creates the schema in an empty database, or migrates an older one, to `target`
// (kSchemaVersion except in tests that build an old file). Errors: store_too_new when
// the file comes from a newer sealkeep.
Status MigrateSchema(Db& db, int target = kSchemaVersion);

}  // namespace sk::store
