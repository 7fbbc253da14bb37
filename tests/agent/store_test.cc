// The SQLite store on real files: durability settings, the process lock, savepoints,
// schema versions, and the fault seam (a failing fsync, a torn write, a full disk).
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "agent/store/fault_vfs.h"
#include "agent/store/schema.h"
#include "agent/store/sqlite.h"
#include "agent/store/store.h"
#include "tests/fixtures/temp_dir.h"

namespace sk::store {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { FaultVfs().Clear(); }
  void TearDown() override { FaultVfs().Clear(); }

  std::unique_ptr<Store> Open(const std::string& vfs = "") {
    SqliteOptions o;
    o.path = dir_.Join("store.db");
    o.vfs = vfs;
    auto s = OpenSqliteStore(o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  static Status AppendOne(Store& s, std::uint64_t seq) {
    SK_ASSIGN_OR_RETURN(Writer * w, s.Begin());
    Status st = w->AppendEntry({seq, "p", Bytes{1, 2, 3}, Digest{}});
    if (!st.ok()) {
      s.Abort();
      return st;
    }
    return s.Commit();
  }

  static std::uint64_t CountEntries(Store& s) {
    auto r = s.NewReader();
    std::uint64_t n = 0;
    EXPECT_TRUE((*r)->ScanJournal(0, [&](JournalRecord&) { return ++n, true; }).ok());
    return n;
  }

  testing::TempDir dir_{"store"};
};

TEST_F(StoreTest, OpensInWalModeWithFullSyncAndPrivateFiles) {
  auto s = Open();
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->is_empty_on_open());
  ASSERT_TRUE(AppendOne(*s, 1).ok());
  auto db = Db::Open(dir_.Join("store.db"), false);
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(*QueryInt(**db, "PRAGMA user_version"), kSchemaVersion);
  auto mode = (*db)->Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(mode.ok() && mode->Step());
  EXPECT_EQ(mode->Text(0), "wal");
  std::string perms = testing::RunCommandOutput("stat -c %a " + dir_.Join("store.db"));
  EXPECT_EQ(perms, "600\n");
  // synchronous is a per-connection setting: ask the store's own writer connection.
  auto durability = s->DurabilitySettings();
  ASSERT_TRUE(durability.ok()) << durability.status().ToString();
  EXPECT_EQ(*durability, "journal_mode=wal synchronous=2") << "2 is FULL";
}

// Builds a schema-version-1 file as sealkeep 1 made it, with a row in every table.
void MakeVersionOneStore(const std::string& path) {
  auto db = Db::Open(path, true);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  ASSERT_TRUE(MigrateSchema(**db, 1).ok());
  ASSERT_EQ(*QueryInt(**db, "PRAGMA user_version"), 1);
  ASSERT_TRUE((*db)
                  ->Exec("INSERT INTO meta VALUES ('store_id', x'0102');"
                         "INSERT INTO journal VALUES (1, 'p', x'aa', x'bb');"
                         "INSERT INTO versions VALUES ('p', 1, x'cc', x'dd', 0);"
                         "INSERT INTO snapshots VALUES ('s', x'ee', x'ff');"
                         "INSERT INTO idempotency VALUES ('key', x'11', 'result', 42);")
                  .ok());
}

TEST_F(StoreTest, AVersionOneStoreIsMigratedInPlaceAndKeepsEveryRow) {
  MakeVersionOneStore(dir_.Join("store.db"));
  {
    auto s = Open();
    ASSERT_TRUE(s);
    EXPECT_FALSE(s->is_empty_on_open());
    auto r = s->NewReader();
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(**(*r)->GetMeta("store_id"), (Bytes{1, 2}));
    auto e = (*r)->GetEntry(1);
    ASSERT_TRUE(e.ok() && e->has_value());
    EXPECT_EQ((*e)->entry, Bytes{0xaa});
    auto v = (*r)->GetVersion("p", 1);
    ASSERT_TRUE(v.ok() && v->has_value());
    EXPECT_EQ((*v)->wrapped_dek, Bytes{0xdd});
    EXPECT_TRUE((**(*r)->GetSnapshot("s")).body == Bytes{0xee});
    EXPECT_EQ((**(*r)->GetIdempotency("key")).created_ms, 42);
    ASSERT_TRUE(AppendOne(*s, 2).ok()) << "and it takes writes";
  }
  auto db = Db::Open(dir_.Join("store.db"), false);
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(*QueryInt(**db, "PRAGMA user_version"), 4);
  EXPECT_EQ(*QueryInt(**db, "SELECT count(*) FROM sqlite_schema WHERE name = 'idempotency_by_time'"), 1);
  EXPECT_EQ(
      *QueryInt(**db, "SELECT count(*) FROM pragma_table_info('versions') WHERE name = 'recovery_wrap'"), 1);
  EXPECT_EQ(*QueryInt(**db, "SELECT count(*) FROM sqlite_schema WHERE name = 'audit_outbox'"), 1);
  EXPECT_EQ(*QueryInt(**db, "SELECT count(*) FROM journal"), 2);
}

TEST_F(StoreTest, ACurrentStoreIsOpenedUnchanged) {
  { ASSERT_TRUE(Open()); }
  auto db = Db::Open(dir_.Join("store.db"), false);
  ASSERT_TRUE(db.ok());
  const char* kSchema = "SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_schema ORDER BY name)";
  auto before = (*db)->Prepare(kSchema);
  ASSERT_TRUE(before.ok() && before->Step());
  std::string schema = before->Text(0);
  db->reset();
  { ASSERT_TRUE(Open()); }
  auto again = Db::Open(dir_.Join("store.db"), false);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*QueryInt(**again, "PRAGMA user_version"), kSchemaVersion);
  auto after = (*again)->Prepare(kSchema);
  ASSERT_TRUE(after.ok() && after->Step());
  EXPECT_EQ(after->Text(0), schema);
}

// The queries the agent runs on every commit, read or purge use an index, not a scan.
TEST_F(StoreTest, HotQueriesUseAnIndex) {
  { ASSERT_TRUE(Open()); }
  auto db = Db::Open(dir_.Join("store.db"), false);
  ASSERT_TRUE(db.ok());
  const char* queries[] = {
      "SELECT seq, path, entry, seal FROM journal WHERE seq = 1",
      "SELECT seq, path, entry, seal FROM journal WHERE seq = (SELECT max(seq) FROM journal)",
      "SELECT seq, path, entry, seal FROM journal WHERE path = 'p' AND seq >= 0 ORDER BY seq",
      "SELECT ciphertext, wrapped_dek, erased FROM versions WHERE path = 'p' AND version = 1",
      "SELECT value FROM meta WHERE key = 'head'",
      "SELECT key, request_digest, result, created_ms FROM idempotency WHERE key = 'k'",
      "DELETE FROM idempotency WHERE created_ms < 5",
  };
  for (const char* q : queries) {
    auto plan = (*db)->Prepare(std::string("EXPLAIN QUERY PLAN ") + q);
    ASSERT_TRUE(plan.ok()) << q;
    std::string steps;
    while (plan->Step()) steps += plan->Text(3) + "; ";
    EXPECT_EQ(steps.find("SCAN"), std::string::npos) << q << " -> " << steps;
  }
}

TEST_F(StoreTest, SecondOpenInAnotherProcessIsRefusedWhileLocked) {
  auto s = Open();
  ASSERT_TRUE(s);
  // flock() locks belong to open file descriptions, so a second open in this process
  // behaves like another process would.
  SqliteOptions o;
  o.path = dir_.Join("store.db");
  auto second = OpenSqliteStore(o);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().reason(), "store_locked");
  s.reset();
  EXPECT_TRUE(OpenSqliteStore(o).ok()) << "the lock is released on close";
}

TEST_F(StoreTest, RolledBackSavepointLeavesNothingBehind) {
  auto s = Open();
  ASSERT_TRUE(s);
  auto w = s->Begin();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->AppendEntry({1, "a", Bytes{1}, Digest{}}).ok());
  ASSERT_TRUE((*w)->Savepoint().ok());
  ASSERT_TRUE((*w)->AppendEntry({2, "b", Bytes{2}, Digest{}}).ok());
  ASSERT_TRUE((*w)->RollbackToSavepoint().ok());
  ASSERT_TRUE(s->Commit().ok());
  EXPECT_EQ(CountEntries(*s), 1u);
}

TEST_F(StoreTest, AStoreFromANewerSchemaIsRefused) {
  { ASSERT_TRUE(Open()); }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.Join("store.db").c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  SqliteOptions o;
  o.path = dir_.Join("store.db");
  auto s = OpenSqliteStore(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().reason(), "store_too_new");
}

TEST_F(StoreTest, AFileThatIsNotAStoreIsRefused) {
  testing::WriteFile(dir_.Join("store.db"), std::string(8192, 'x'));
  SqliteOptions o;
  o.path = dir_.Join("store.db");
  auto s = OpenSqliteStore(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kCorruption) << s.status().ToString();
}

TEST_F(StoreTest, FailedFsyncFailsTheCommitAndFencesFurtherWrites) {
  auto s = Open(kFaultVfsName);
  ASSERT_TRUE(s);
  ASSERT_TRUE(AppendOne(*s, 1).ok());
  FaultVfs().fail_syncs = 1;
  Status st = AppendOne(*s, 2);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(FaultVfs().fired.load(), 1);
  EXPECT_EQ(s->Begin().status().reason(), "store_failed")
      << "after an fsync error the store must be reopened";
  EXPECT_EQ(CountEntries(*s), 1u) << "a reader must not see the failed commit";
  s.reset();
  // After a restart the database's own recovery decides: all of the commit or none.
  auto again = Open();
  ASSERT_TRUE(again);
  std::uint64_t n = CountEntries(*again);
  EXPECT_TRUE(n == 1 || n == 2) << n;
  ASSERT_TRUE(AppendOne(*again, n + 1).ok());
}

TEST_F(StoreTest, TornWriteFailsTheCommitAndRecoveryDropsIt) {
  auto s = Open(kFaultVfsName);
  ASSERT_TRUE(s);
  ASSERT_TRUE(AppendOne(*s, 1).ok());
  FaultVfs().short_writes = 1;
  EXPECT_FALSE(AppendOne(*s, 2).ok());
  s.reset();
  FaultVfs().Clear();
  auto again = Open();
  ASSERT_TRUE(again);
  EXPECT_EQ(CountEntries(*again), 1u) << "a torn commit must never become visible";
}

TEST_F(StoreTest, FullDiskFailsTheCommitCleanly) {
  auto s = Open(kFaultVfsName);
  ASSERT_TRUE(s);
  ASSERT_TRUE(AppendOne(*s, 1).ok());
  FaultVfs().fail_writes = 1000;
  Status st = AppendOne(*s, 2);
  EXPECT_FALSE(st.ok());
  FaultVfs().Clear();
  s.reset();
  auto again = Open();
  ASSERT_TRUE(again);
  EXPECT_EQ(CountEntries(*again), 1u);
}

}  // namespace
}  // namespace sk::store
