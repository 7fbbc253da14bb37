// Store: the narrow persistence interface under the journal and the secret service.
//
// It knows rows, not rules: journal records (sealed entries), version blobs (ciphertext
// and wrapped data key), a few metadata values, snapshots and idempotency records. All
// verification lives above it, so a PostgreSQL store (docs/design.md) implements these
// same calls with serialisable transactions and nothing else changes.
//
// Concurrency: any number of Readers (each used by one thread at a time) and one write
// transaction at a time, driven by the single committer thread (Begin/Commit/Abort).
// Readers never see an uncommitted write. Commit() returns OK only once the
// transaction is durable (SQLite: WAL + synchronous=FULL). After a failed Commit the
// store refuses further writes (reason store_failed) until it is reopened: after an
// fsync error nobody can say what reached the disk, so recovery is a restart, where
// the database's own recovery decides (a whole transaction or none of it).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crypto/bytes.h"
#include "crypto/mac.h"
#include "crypto/status.h"

namespace sk::store {

struct JournalRecord {
  std::uint64_t seq = 0;
  std::string path;  // empty for entries that concern no path
  Bytes entry;       // the sealed encoding (agent/journal/journal_format.h)
  Digest seal{};
};

// A version's stored bytes. Destroyed versions keep their row with both fields erased.
struct VersionBlob {
  Bytes ciphertext;
  Bytes wrapped_dek;
  bool erased = false;
  Bytes recovery_wrap;  // PutVersion: the data key wrapped to the recovery key (empty: none)
};

struct SnapshotRecord {
  std::string name;
  Bytes body;  // agent/secrets/snapshot_format.h
  Digest seal{};
};

struct IdempotencyRecord {
  std::string key;
  Digest request_digest{};
  std::string result;  // the first response, replayed on a retry
  std::int64_t created_ms = 0;
};

class Reader {
 public:
  virtual ~Reader() = default;
  virtual Result<std::optional<VersionBlob>> GetVersion(std::string_view path, std::uint64_t version) = 0;
  virtual Result<std::optional<JournalRecord>> GetEntry(std::uint64_t seq) = 0;
  // The journal's last entry (highest seq), or none when the journal is empty. One
  // indexed lookup: the committer calls it in every write transaction.
  virtual Result<std::optional<JournalRecord>> LastEntry() = 0;
  // Calls fn for every entry with seq >= from, in seq order, until fn returns false.
  virtual Status ScanJournal(std::uint64_t from, const std::function<bool(JournalRecord&)>& fn) = 0;
  // Calls fn for the entries of one path with seq >= from, in seq order, until fn returns false.
  virtual Status ScanPathEntries(std::string_view path, std::uint64_t from,
                                 const std::function<bool(JournalRecord&)>& fn) = 0;
  // Calls fn for every version row, ordered by (path, version), until fn returns false.
  virtual Status ScanVersions(
      const std::function<bool(const std::string& path, std::uint64_t version, VersionBlob&)>& fn) = 0;
  virtual Result<std::optional<Bytes>> GetMeta(std::string_view key) = 0;
  virtual Result<std::optional<SnapshotRecord>> GetSnapshot(std::string_view name) = 0;
  virtual Result<std::optional<IdempotencyRecord>> GetIdempotency(std::string_view key) = 0;
  // Calls fn for every snapshot, ordered by name, until fn returns false.
  virtual Status ScanSnapshots(const std::function<bool(SnapshotRecord&)>& fn) = 0;
  // The version's data key wrapped to the recovery key (docs/recovery.md), if any.
  virtual Result<std::optional<Bytes>> GetRecoveryWrap(std::string_view path, std::uint64_t version) = 0;
  // Live (not erased) versions and how many of them have a recovery wrap naming key_id.
  virtual Result<std::pair<std::uint64_t, std::uint64_t>> CountRecoveryWraps(ByteView key_id) = 0;
  // Calls fn for up to `limit` live versions after (after_path, after_version) with no
  // recovery wrap naming key_id, in (path, version) order; fn gets the version's
  // master-key-wrapped data key.
  virtual Status ScanRecoveryPending(ByteView key_id, const std::string& after_path,
                                     std::uint64_t after_version, std::size_t limit,
                                     const std::function<void(const std::string& path, std::uint64_t version,
                                                              ByteView wrapped_dek)>& fn) = 0;

  // The audit records waiting in the store for the audit log to be synced (AuditOutbox
  // rows), in seq order: (the record's seq in the audit log, its bytes).
  virtual Result<std::vector<std::pair<std::uint64_t, Bytes>>> AuditOutbox() = 0;

  // Writes a consistent copy of the whole store to a new file `dest` (SQLite's online
  // backup), as this Reader sees it: inside BeginRead, that snapshot; commits may land
  // meanwhile. Fails with store_io_error when dest cannot be written; dest exists after.
  virtual Status CopyTo(const std::string& dest) = 0;

  // A read transaction (Readers only, not the Writer): from BeginRead until EndRead
  // every read of this Reader sees the store as it was when BeginRead returned, however
  // many commits land meanwhile (SQLite: BEGIN plus a first read, which pins the WAL
  // snapshot; PostgreSQL: REPEATABLE READ). Without one, each call sees the latest commit.
  virtual Status BeginRead() = 0;
  virtual Status EndRead() = 0;
};

// The open write transaction. Savepoints nest inside it (all-or-nothing sub-scopes).
class Writer : public virtual Reader {
 public:
  virtual Status AppendEntry(const JournalRecord& record) = 0;
  virtual Status PutVersion(std::string_view path, std::uint64_t version, const VersionBlob& blob) = 0;
  // Destroy: overwrites ciphertext and wrapped key (secure_delete) and marks the row erased;
  // the version's recovery wrap goes too.
  virtual Status EraseVersion(std::string_view path, std::uint64_t version) = 0;
  // Stores (or replaces) the data key of an existing version wrapped to the recovery key.
  virtual Status PutRecoveryWrap(std::string_view path, std::uint64_t version, ByteView blob) = 0;
  // Rotation: replaces a version's wrapped data key, leaving its ciphertext.
  virtual Status UpdateWrappedDek(std::string_view path, std::uint64_t version, ByteView wrapped_dek) = 0;
  virtual Status PutMeta(std::string_view key, ByteView value) = 0;
  virtual Status PutSnapshot(const SnapshotRecord& record) = 0;
  virtual Status PutIdempotency(const IdempotencyRecord& record) = 0;
  virtual Status DeleteIdempotencyBefore(std::int64_t created_ms) = 0;
  // A change's audit record, at `seq` in the audit log, kept until that log is synced.
  virtual Status PutAuditOutbox(std::uint64_t seq, ByteView record) = 0;
  // Drops the kept records at or below `seq` (the audit log is synced through it).
  virtual Status DeleteAuditOutboxThrough(std::uint64_t seq) = 0;
  virtual Status Savepoint() = 0;
  virtual Status ReleaseSavepoint() = 0;
  virtual Status RollbackToSavepoint() = 0;
};

class Store {
 public:
  virtual ~Store() = default;
  virtual Result<std::unique_ptr<Reader>> NewReader() = 0;
  virtual Result<Writer*> Begin() = 0;
  virtual Status Commit() = 0;
  virtual void Abort() = 0;
  // Moves the write-ahead log into the database and truncates it, so erased bytes do
  // not linger in the log (called after destroys). Never waits for readers: kUnavailable
  // (store_busy) when one holds an older snapshot, and the caller tries again later.
  virtual Status Checkpoint() = 0;
  virtual std::string Describe() const = 0;
  // The durability settings in force on the writer's own connection, as
  // "journal_mode=wal synchronous=2" (SQLite: 2 is FULL). Call it only while no other
  // thread drives writes (start-up, tests).
  virtual Result<std::string> DurabilitySettings() = 0;
  virtual bool is_empty_on_open() const = 0;  // the store was created by this open
};

struct SqliteOptions {
  std::string path;    // the database file; -wal and -shm files sit beside it
  bool create = true;  // create when missing (first start); false for offline tools
  std::string vfs;     // empty: SQLite's default; "sk-fault" in fault-injection tests
  int busy_timeout_ms = 5000;
  bool lock = true;  // hold an exclusive lock file (<path>.lock) while open
};

// Opens (and creates or migrates) the SQLite store. Errors: store_locked (another process
// holds it), store_missing, store_too_new (schema from a newer sealkeep), store_corrupt.
Result<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options);

inline constexpr int kSchemaVersion = 4;

}  // namespace sk::store
