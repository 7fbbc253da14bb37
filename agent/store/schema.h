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
// A migration from version n to n+1 runs in one transaction with the version bump, so
// a crash during a migration leaves the old schema intact.
#pragma once

#include "agent/store/sqlite.h"

namespace sk::store {

// Creates the schema in an empty database, or migrates an older one to kSchemaVersion.
// Errors: store_too_new when the file comes from a newer sealkeep.
Status MigrateSchema(Db& db);

}  // namespace sk::store
