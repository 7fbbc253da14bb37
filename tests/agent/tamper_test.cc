// Every rollback refusal reason, produced by real tampering with the store file on disk
// (SQL from outside while the agent is stopped, as an attacker with the disk would), and
// the AAD binding that keeps ciphertexts and wrapped keys where they belong.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "agent/journal/journal_format.h"
#include "agent/secrets/keys.h"
#include "crypto/aead.h"
#include "tests/agent/service_fixture.h"

namespace sk::secrets {
namespace {

using testing::ServiceHarness;

class TamperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(h_.Open().ok());
    h_.PutText("k", "v1");
    h_.PutText("k", "v2");
    h_.PutText("k", "v3");
    h_.PutText("bystander", "b1");
    h_.Close();
  }
  SecretService& svc() { return h_.svc(); }
  std::string Where(std::uint64_t v) { return " WHERE path = 'k' AND version = " + std::to_string(v); }
  void FlipEntryByte(std::uint64_t seq, std::size_t offset) {
    Bytes e = h_.Blob("SELECT entry FROM journal WHERE seq = " + std::to_string(seq));
    ASSERT_LT(offset, e.size());
    e[offset] ^= 0x01;
    h_.SetBlob("UPDATE journal SET entry = ?1 WHERE seq = " + std::to_string(seq), e);
  }
  void ExpectRefused(std::uint64_t version, const char* reason) {
    auto head_before = svc().Report().head_seq;
    auto r = Rollback(svc(), "k", version, h_.actor);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kConflict);
    EXPECT_EQ(r.status().reason(), reason) << r.status().ToString();
    EXPECT_EQ(svc().Report().head_seq, head_before) << "a refused rollback changes nothing";
    auto versions = svc().Versions("k");
    ASSERT_TRUE(versions.ok());
    EXPECT_FALSE((*versions)[version - 1].verifies);
    EXPECT_EQ((*versions)[version - 1].reason, reason);
  }
  // Full verification names (path, version) with `reason` among its problems.
  void ExpectVerifyReports(const std::string& path, std::uint64_t version, const char* reason) {
    auto report = svc().VerifyAll();
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_FALSE(report->ok);
    bool found = false;
    for (const auto& p : report->problems)
      found |= p.path == path && p.version == version && p.reason == reason;
    EXPECT_TRUE(found) << "VerifyAll does not report " << reason << " for " << path << " v" << version << " ("
                       << report->problems.size() << " problems, first: "
                       << (report->problems.empty()
                               ? ""
                               : report->problems[0].reason + " " + report->problems[0].detail)
                       << ")";
  }
  ServiceHarness h_{"tamper"};
};

// A second connection to the live store file, as another process with the disk would have.
class LiveSql {
 public:
  explicit LiveSql(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~LiveSql() { sqlite3_close(db_); }
  LiveSql(const LiveSql&) = delete;
  LiveSql& operator=(const LiveSql&) = delete;
  void Exec(const std::string& sql) {
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
        << (err ? err : "") << " in " << sql;
  }
  std::int64_t Int(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
    std::int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
  }

 private:
  sqlite3* db_ = nullptr;
};

TEST_F(TamperTest, EditedJournalEntryRefusesRollbackAsSealInvalid) {
  std::uint64_t seq = h_.EntrySeqOf("k", 1);
  FlipEntryByte(seq, 12);  // a byte of the entry's time
  ASSERT_TRUE(h_.Open().ok()) << "one bad entry does not seal the agent";
  ExpectRefused(1, "seal_invalid");
  EXPECT_EQ(svc().Get("k", 1).status().reason(), "seal_invalid") << "never served as genuine";
  EXPECT_EQ(*h_.GetText("k"), "v3") << "versions that verify are still served";
  auto report = svc().VerifyAll();
  ASSERT_TRUE(report.ok());
  EXPECT_FALSE(report->ok);
  ASSERT_FALSE(report->problems.empty());
  EXPECT_EQ(report->problems[0].reason, "seal_invalid");
  EXPECT_EQ(report->problems[0].seq, seq);
  EXPECT_GE(svc().Report().journal_problems, 1u);
}

TEST_F(TamperTest, EditedSealColumnRefusesRollbackAsSealInvalid) {
  std::uint64_t seq = h_.EntrySeqOf("k", 1);
  Bytes seal = h_.Blob("SELECT seal FROM journal WHERE seq = " + std::to_string(seq));
  seal[0] ^= 0xFF;
  h_.SetBlob("UPDATE journal SET seal = ?1 WHERE seq = " + std::to_string(seq), seal);
  ASSERT_TRUE(h_.Open().ok());
  ExpectRefused(1, "seal_invalid");
}

TEST_F(TamperTest, DeletedJournalEntryRefusesRollbackAsChainBroken) {
  h_.Sql("DELETE FROM journal WHERE seq = " + std::to_string(h_.EntrySeqOf("k", 2)));
  ASSERT_TRUE(h_.Open().ok());
  ExpectRefused(1, "chain_broken");
  EXPECT_EQ(*h_.GetText("k"), "v3") << "the latest version is after the break and verifies";
  auto report = svc().VerifyAll();
  ASSERT_TRUE(report.ok());
  EXPECT_FALSE(report->ok);
  bool chain = false;
  for (const auto& p : report->problems) chain |= p.reason == "chain_broken";
  EXPECT_TRUE(chain);
}

TEST_F(TamperTest, ReorderedJournalEntriesAreDetected) {
  std::uint64_t a = h_.EntrySeqOf("k", 1), b = h_.EntrySeqOf("k", 2);
  h_.Sql("UPDATE journal SET seq = -1 WHERE seq = " + std::to_string(a));
  h_.Sql("UPDATE journal SET seq = " + std::to_string(a) + " WHERE seq = " + std::to_string(b));
  h_.Sql("UPDATE journal SET seq = " + std::to_string(b) + " WHERE seq = -1");
  ASSERT_TRUE(h_.Open().ok());
  auto r = Rollback(svc(), "k", 1, h_.actor);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().reason() == "seal_invalid" || r.status().reason() == "chain_broken")
      << r.status().ToString();
  EXPECT_FALSE(svc().VerifyAll()->ok);
}

TEST_F(TamperTest, EditedCiphertextRefusesRollbackAsContentMismatch) {
  Bytes ct = h_.Blob("SELECT ciphertext FROM versions" + Where(1));
  ct[ct.size() / 2] ^= 0x01;
  h_.SetBlob("UPDATE versions SET ciphertext = ?1" + Where(1), ct);
  ASSERT_TRUE(h_.Open().ok());
  ExpectRefused(1, "content_mismatch");
  EXPECT_EQ(svc().Get("k", 1).status().code(), Code::kCorruption);
  auto report = svc().VerifyAll();
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->problems.size(), 1u);
  EXPECT_EQ(report->problems[0].reason, "content_mismatch");
  EXPECT_EQ(report->problems[0].version, 1u);
}

TEST_F(TamperTest, WrappedKeyCopiedFromAnotherVersionDoesNotDecrypt) {
  Bytes other = h_.Blob("SELECT wrapped_dek FROM versions" + Where(2));
  h_.SetBlob("UPDATE versions SET wrapped_dek = ?1" + Where(1), other);
  ASSERT_TRUE(h_.Open().ok());
  ExpectRefused(1, "content_mismatch");
  ExpectVerifyReports("k", 1, "content_mismatch");
}

TEST_F(TamperTest, AWrappedKeyForAnotherDataKeyIsCaughtByTheKeyCommitment) {
  // Someone who may use the token wraps a key of their own for k v1, with the right AAD:
  // it unwraps, but it is not the key the sealed entry committed to.
  Bytes store_id = h_.Blob("SELECT value FROM meta WHERE key = 'store_id'");
  ASSERT_TRUE(h_.Open().ok());
  auto forged = h_.backend()->Wrap(SecretBytes::CopyFrom(Bytes(32, 0x5a)), DekAad(store_id, "k", 1));
  ASSERT_TRUE(forged.ok()) << forged.status().ToString();
  h_.Close();
  h_.SetBlob("UPDATE versions SET wrapped_dek = ?1" + Where(1), *forged);
  ASSERT_TRUE(h_.Open().ok());
  ExpectRefused(1, "content_mismatch");
  ExpectVerifyReports("k", 1, "content_mismatch");
}

TEST_F(TamperTest, CiphertextAndKeyCopiedToAnotherPathDoNotDecrypt) {
  Bytes ct = h_.Blob("SELECT ciphertext FROM versions" + Where(3));
  Bytes dek = h_.Blob("SELECT wrapped_dek FROM versions" + Where(3));
  h_.SetBlob("UPDATE versions SET ciphertext = ?1 WHERE path = 'bystander' AND version = 1", ct);
  h_.SetBlob("UPDATE versions SET wrapped_dek = ?1 WHERE path = 'bystander' AND version = 1", dek);
  ASSERT_TRUE(h_.Open().ok());
  auto r = h_.GetText("bystander");
  EXPECT_FALSE(r.ok()) << "a value moved to another path must not be served there";
  EXPECT_EQ(r.status().reason(), "content_mismatch");
  ExpectVerifyReports("bystander", 1, "content_mismatch");
}

TEST_F(TamperTest, CiphertextEditedWhileTheAgentRunsIsCaughtEvenWhenItsKeyIsCached) {
  ASSERT_TRUE(h_.Open().ok());
  EXPECT_EQ(*h_.GetText("k"), "v3");  // its data key and entry facts are now cached
  {
    // Another process edits the live file (SQLite lets a second connection write).
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(h_.store_path().c_str(), &raw), SQLITE_OK);
    sqlite3_busy_timeout(raw, 5000);
    ASSERT_EQ(sqlite3_exec(raw,
                           "UPDATE versions SET ciphertext = substr(ciphertext, 1, 20) || "
                           "(CASE WHEN substr(ciphertext, 21, 1) = x'00' THEN x'01' ELSE x'00' END) || "
                           "substr(ciphertext, 22) WHERE path = 'k' AND version = 3",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(raw);
  }
  auto r = h_.GetText("k");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().reason(), "content_mismatch");
}

TEST(AadBinding, ValueAndWrappedKeyOpenOnlyWhereTheyWereWritten) {
  testing::TempDir dir("aad");
  testing::SoftHsmToken token(dir.path());
  auto backend = token.Open();
  ASSERT_TRUE(backend.ok());
  Bytes store(16, 0x11), other_store(16, 0x22);
  auto sealed = SealValue(**backend, store, "app/db", 7, AsBytes("hunter2"));
  ASSERT_TRUE(sealed.ok());
  // The right place opens.
  auto dek = (*backend)->Unwrap(sealed->wrapped_dek, DekAad(store, "app/db", 7));
  ASSERT_TRUE(dek.ok());
  EXPECT_TRUE(AeadOpen(*dek, ValueAad(store, "app/db", 7), sealed->ciphertext).ok());
  // Any other path, version or store does not.
  struct Place {
    ByteView store;
    const char* path;
    std::uint64_t version;
  } wrong[] = {{store, "app/db2", 7}, {store, "app/db", 8}, {other_store, "app/db", 7}};
  for (const Place& p : wrong) {
    EXPECT_EQ((*backend)->Unwrap(sealed->wrapped_dek, DekAad(p.store, p.path, p.version)).status().reason(),
              "does_not_verify");
    EXPECT_FALSE(AeadOpen(*dek, ValueAad(p.store, p.path, p.version), sealed->ciphertext).ok());
  }
}

TEST_F(TamperTest, PreRotationWrappedKeyOnARetiredGenerationIsRefusedAsKeyRetired) {
  Bytes old_wrap = h_.Blob("SELECT wrapped_dek FROM versions" + Where(1));  // generation 1
  ASSERT_TRUE(h_.Open().ok());
  ASSERT_TRUE(svc().Rotate(h_.actor).ok());  // everything re-wrapped under generation 2
  h_.Close();
  ASSERT_TRUE(h_.backend()->Retire(1).ok());
  h_.SetBlob("UPDATE versions SET wrapped_dek = ?1" + Where(1), old_wrap);  // an old backup's bytes
  ASSERT_TRUE(h_.Open().ok());
  ExpectRefused(1, "key_retired");
  EXPECT_EQ(*h_.GetText("k", 2), "v2");
  ExpectVerifyReports("k", 1, "key_retired");
}

TEST_F(TamperTest, SnapshotRestoreIsAllOrNothingWhenOneTargetWasTamperedWith) {
  ASSERT_TRUE(h_.Open().ok());
  h_.PutText("rel/a", "a1");
  h_.PutText("rel/b", "b1");
  h_.PutText("rel/c", "c1");
  ASSERT_TRUE(svc().CreateSnapshot("r1", "rel", h_.actor).ok());
  h_.PutText("rel/a", "a2");
  h_.PutText("rel/b", "b2");
  h_.PutText("rel/c", "c2");
  auto head_before = svc().Report().head_seq;
  h_.Close();
  Bytes ct = h_.Blob("SELECT ciphertext FROM versions WHERE path = 'rel/b' AND version = 1");
  ct[0] ^= 0x40;
  h_.SetBlob("UPDATE versions SET ciphertext = ?1 WHERE path = 'rel/b' AND version = 1", ct);
  ASSERT_TRUE(h_.Open().ok());
  auto report = svc().RestoreSnapshot("r1", h_.actor);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_FALSE(report->applied);
  ASSERT_EQ(report->failures.size(), 1u);
  EXPECT_EQ(report->failures[0].path, "rel/b");
  EXPECT_EQ(report->failures[0].version, 1u);
  EXPECT_EQ(report->failures[0].reason, "content_mismatch");
  EXPECT_EQ(*h_.GetText("rel/a"), "a2") << "nothing changed";
  EXPECT_EQ(*h_.GetText("rel/c"), "c2");
  EXPECT_EQ(svc().Report().head_seq, head_before);
}

TEST_F(TamperTest, TamperedSnapshotIsRefused) {
  ASSERT_TRUE(h_.Open().ok());
  ASSERT_TRUE(svc().CreateSnapshot("s", "", h_.actor).ok());
  h_.Close();
  Bytes body = h_.Blob("SELECT body FROM snapshots WHERE name = 's'");
  body.back() ^= 0x01;  // the last version number
  h_.SetBlob("UPDATE snapshots SET body = ?1 WHERE name = 's'", body);
  ASSERT_TRUE(h_.Open().ok());
  EXPECT_EQ(svc().GetSnapshot("s").status().reason(), "seal_invalid");
  EXPECT_EQ(svc().RestoreSnapshot("s", h_.actor).status().reason(), "seal_invalid");
  auto report = svc().VerifyAll();
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->problems.size(), 1u) << "only the snapshot was touched";
  EXPECT_EQ(report->problems[0].reason, "seal_invalid");
  EXPECT_NE(report->problems[0].detail.find("snapshot s"), std::string::npos) << report->problems[0].detail;
}

TEST_F(TamperTest, ASnapshotBodySwappedForAnotherSealedOneIsReportedByVerify) {
  ASSERT_TRUE(h_.Open().ok());
  ASSERT_TRUE(svc().CreateSnapshot("s", "", h_.actor).ok());
  h_.PutText("k", "v4");
  ASSERT_TRUE(svc().CreateSnapshot("s2", "", h_.actor).ok());
  h_.Close();
  // s2's sealed body and seal, under s's name: the seal is good but it names s2, and the
  // journal's entry for s holds another body's digest.
  h_.Sql("DELETE FROM snapshots WHERE name = 's'");
  h_.Sql("UPDATE snapshots SET name = 's' WHERE name = 's2'");
  ASSERT_TRUE(h_.Open().ok());
  EXPECT_EQ(svc().GetSnapshot("s").status().reason(), "seal_invalid");
  auto report = svc().VerifyAll();
  ASSERT_TRUE(report.ok());
  EXPECT_FALSE(report->ok);
  bool swapped = false, missing = false;
  for (const auto& p : report->problems) {
    swapped |= p.reason == "seal_invalid" && p.detail.find("snapshot s:") != std::string::npos;
    missing |= p.reason == "content_mismatch" && p.detail.find("snapshot s2:") != std::string::npos;
  }
  EXPECT_TRUE(swapped) << "the body under s is s2's";
  EXPECT_TRUE(missing) << "s2's journaled body is gone";
}

TEST_F(TamperTest, RemovedTailEntriesSealTheAgent) {
  h_.Sql("DELETE FROM journal WHERE seq = (SELECT max(seq) FROM journal)");
  Status st = h_.Open();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.reason(), "replay_detected") << st.ToString();
}

TEST_F(TamperTest, EditedSealedHeadSealsTheAgent) {
  Bytes head = h_.Blob("SELECT value FROM meta WHERE key = 'head'");
  head[3] ^= 0x01;
  h_.SetBlob("UPDATE meta SET value = ?1 WHERE key = 'head'", head);
  Status st = h_.Open();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.reason(), "head_invalid");
}

// --- incremental verification: the store changed under a running agent ---

class LiveTamperTest : public TamperTest {
 protected:
  // Edits the live store from another connection, then checks that the next put fails
  // with replay_detected, writes nothing, and leaves the service refusing everything.
  void ExpectNextCommitRefused(const std::string& edit) {
    ASSERT_TRUE(h_.Open().ok());
    EXPECT_EQ(*h_.GetText("k"), "v3");
    LiveSql live(h_.store_path());
    live.Exec(edit);
    std::int64_t entries = live.Int("SELECT count(*) FROM journal");
    std::int64_t versions = live.Int("SELECT count(*) FROM versions");
    auto r = Put(svc(), "k", AsBytes("v4"), h_.actor);
    ASSERT_FALSE(r.ok()) << "a commit on top of a changed journal must fail";
    EXPECT_EQ(r.status().code(), Code::kSealed);
    EXPECT_EQ(r.status().reason(), "replay_detected") << r.status().ToString();
    EXPECT_EQ(live.Int("SELECT count(*) FROM journal"), entries) << "nothing was written";
    EXPECT_EQ(live.Int("SELECT count(*) FROM versions"), versions) << "nothing was written";
    // From now on the service refuses reads and writes alike, as start-up would.
    EXPECT_EQ(h_.GetText("k").status().reason(), "replay_detected");
    EXPECT_EQ(svc().List("", 10).status().reason(), "replay_detected");
    EXPECT_EQ(Put(svc(), "other", AsBytes("x"), h_.actor).status().reason(), "replay_detected");
    auto report = svc().VerifyAll();
    ASSERT_TRUE(report.ok()) << "verification still runs, to say what changed";
    EXPECT_FALSE(report->ok);
    h_.Close();
    Status reopened = h_.Open();
    EXPECT_EQ(reopened.reason(), "replay_detected") << "start-up reports the same: " << reopened.ToString();
  }
};

TEST_F(LiveTamperTest, DeletingTheLastJournalRowOfALiveStoreFailsTheNextCommit) {
  ExpectNextCommitRefused("DELETE FROM journal WHERE seq = (SELECT max(seq) FROM journal)");
}

TEST_F(LiveTamperTest, EditingTheLastJournalSealOfALiveStoreFailsTheNextCommit) {
  ExpectNextCommitRefused(
      "UPDATE journal SET seal = substr(seal, 1, 31) || (CASE WHEN substr(seal, 32, 1) = x'00' THEN x'01' "
      "ELSE x'00' END) WHERE seq = (SELECT max(seq) FROM journal)");
}

TEST_F(LiveTamperTest, AnEditedLastEntryUnderALiveAgentIsCaughtOnReadAsAtStartUp) {
  // The seal column is left alone and the entry's bytes no longer match it. The chain
  // still ends at the tip (links are seals), so, as at start-up, this is one entry that
  // does not verify: the version it wrote is refused, the agent goes on.
  ASSERT_TRUE(h_.Open().ok());
  {
    LiveSql live(h_.store_path());
    live.Exec(
        "UPDATE journal SET entry = substr(entry, 1, 12) || (CASE WHEN substr(entry, 13, 1) = x'00' THEN "
        "x'01' ELSE x'00' END) || substr(entry, 14) WHERE seq = (SELECT max(seq) FROM journal)");
  }
  EXPECT_EQ(h_.GetText("bystander").status().reason(), "seal_invalid");  // the last entry wrote it
  h_.PutText("k", "v4");
  EXPECT_EQ(*h_.GetText("k"), "v4");
  ASSERT_TRUE(h_.Restart().ok());
  EXPECT_EQ(h_.GetText("bystander").status().reason(), "seal_invalid");
  EXPECT_EQ(*h_.GetText("k"), "v4");
}

TEST_F(LiveTamperTest, CommitsOnAnUntouchedLiveStoreKeepWorking) {
  ASSERT_TRUE(h_.Open().ok());
  {
    LiveSql live(h_.store_path());  // another connection that only reads
    EXPECT_GT(live.Int("SELECT count(*) FROM journal"), 0);
  }
  for (int i = 0; i < 3; ++i) h_.PutText("k", "more" + std::to_string(i));
  EXPECT_EQ(*h_.GetText("k"), "more2");
}

// --- refusals by on-disk tampering of destroys and floors ---

TEST_F(TamperTest, UnErasingADestroyedVersionStillRefusesRollbackAsDestroyed) {
  Bytes ct = h_.Blob("SELECT ciphertext FROM versions" + Where(1));
  Bytes dek = h_.Blob("SELECT wrapped_dek FROM versions" + Where(1));
  ASSERT_TRUE(h_.Open().ok());
  std::vector<Op> destroy(1);
  destroy[0].type = Op::Type::kDestroy;
  destroy[0].path = "k";
  destroy[0].version = 1;
  ASSERT_TRUE(svc().Transact(std::move(destroy), "", h_.actor).ok());
  h_.Close();
  // Put the bytes from the earlier copy back and clear the erased flag.
  h_.SetBlob("UPDATE versions SET ciphertext = ?1" + Where(1), ct);
  h_.SetBlob("UPDATE versions SET wrapped_dek = ?1" + Where(1), dek);
  h_.Sql("UPDATE versions SET erased = 0" + Where(1));
  ASSERT_TRUE(h_.Open().ok());
  ExpectRefused(1, "destroyed");
  EXPECT_EQ(svc().Get("k", 1).status().reason(), "destroyed") << "the sealed destroy entry decides";
  ExpectVerifyReports("k", 1, "content_mismatch");  // "a destroyed version still holds bytes"
}

class FloorTamperTest : public TamperTest {
 protected:
  // k: v1..v3, floor 3, then v4 (so the floor entry is not the journal's last), and a
  // restart, which anchors v4's entry (the floor's anchor move is no longer the last).
  void SetUp() override {
    TamperTest::SetUp();
    ASSERT_TRUE(h_.Open().ok());
    RaiseFloor(3);
    h_.PutText("k", "v4");
    ASSERT_EQ(Rollback(svc(), "k", 2, h_.actor).status().reason(), "below_floor");
    ASSERT_EQ(svc().Get("k", 2).status().reason(), "below_floor");
    ASSERT_TRUE(h_.Restart().ok());
    h_.Close();
    floor_seq_ = FloorSeq(3);
  }
  void RaiseFloor(std::uint64_t to) {
    std::vector<Op> floor(1);
    floor[0].type = Op::Type::kFloor;
    floor[0].path = "k";
    floor[0].floor = to;
    ASSERT_TRUE(svc().Transact(std::move(floor), "", h_.actor).ok());
  }
  // The seq of k's floor entry that raised the floor to `to` (kind 8 at byte 9).
  std::uint64_t FloorSeq(std::uint64_t to) {
    for (std::uint64_t seq = 1;; ++seq) {
      Bytes raw = h_.Blob("SELECT entry FROM journal WHERE seq = " + std::to_string(seq));
      if (raw.empty()) return 0;
      auto e = journal::DecodeEntry(raw);
      if (e.ok() && e->kind == journal::Kind::kFloor && e->path == "k" && e->from_version == to) return seq;
    }
  }
  std::uint64_t floor_seq_ = 0;
};

TEST_F(FloorTamperTest, DeletingTheLastAnchoredFloorEntrySealsTheAgentAsReplayDetected) {
  // A floor moves the anchor at once in either mode, so while it is the last anchor move
  // its entry is the anchored one: removing it is a replay of the store before it.
  ASSERT_TRUE(h_.Open().ok());
  RaiseFloor(4);
  h_.PutText("k", "v5");  // not anchored yet (epoch mode)
  h_.Close();
  h_.Sql("DELETE FROM journal WHERE seq = " + std::to_string(FloorSeq(4)));
  Status st = h_.Open();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.reason(), "replay_detected") << st.ToString();
}

TEST_F(FloorTamperTest, DeletingAFloorsJournalEntryRefusesRollbackBelowItAsChainBroken) {
  h_.Sql("DELETE FROM journal WHERE seq = " + std::to_string(floor_seq_));
  Status opened = h_.Open();
  ASSERT_TRUE(opened.ok()) << opened.ToString();
  // With its floor entry gone, every older version is cut off from the head.
  ExpectRefused(2, "chain_broken");
  ExpectRefused(1, "chain_broken");
  EXPECT_EQ(svc().Get("k", 2).status().reason(), "chain_broken") << "never served as genuine";
  EXPECT_EQ(*h_.GetText("k"), "v4");
}

TEST_F(FloorTamperTest, LoweringAFloorWithSqlRefusesRollbackBelowItAsChainBroken) {
  // Rewrite the floor entry's from_version (the floor) to 1, keeping its seal.
  Bytes raw = h_.Blob("SELECT entry FROM journal WHERE seq = " + std::to_string(floor_seq_));
  auto e = journal::DecodeEntry(raw);
  ASSERT_TRUE(e.ok());
  ASSERT_EQ(e->from_version, 3u);
  e->from_version = 1;
  auto lowered = journal::EncodeEntry(*e);
  ASSERT_TRUE(lowered.ok());
  h_.SetBlob("UPDATE journal SET entry = ?1 WHERE seq = " + std::to_string(floor_seq_), *lowered);
  ASSERT_TRUE(h_.Open().ok());
  // The floor entry no longer verifies, so the versions before it do not reach the head
  // through it: refused, and not readable either (as they were not below the floor).
  ExpectRefused(2, "chain_broken");
  EXPECT_EQ(svc().Get("k", 2).status().reason(), "chain_broken");
  EXPECT_EQ(*h_.GetText("k"), "v4");
  auto report = svc().VerifyAll();
  ASSERT_TRUE(report.ok());
  ASSERT_FALSE(report->problems.empty());
  EXPECT_EQ(report->problems[0].reason, "seal_invalid");
  EXPECT_EQ(report->problems[0].seq, floor_seq_);
}

TEST_F(TamperTest, AnAnchorMovedBehindTheAgentsBackRefusesRollbackAsReplayDetected) {
  ASSERT_TRUE(h_.Open().ok());
  auto before = svc().Report();
  // Another holder of the token moves the anchor while this agent runs.
  auto hw = h_.backend()->ReadAnchor();
  ASSERT_TRUE(hw.ok());
  ASSERT_TRUE(h_.backend()->AdvanceAnchor(hw->seq + 5, Digest{}).ok());
  auto r = Rollback(svc(), "k", 1, h_.actor);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().reason(), "replay_detected") << r.status().ToString();
  EXPECT_EQ(svc().Report().head_seq, before.head_seq) << "nothing changed";
  EXPECT_EQ(*h_.GetText("k"), "v3");
}

}  // namespace
}  // namespace sk::secrets
