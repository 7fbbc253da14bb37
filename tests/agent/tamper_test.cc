// Every rollback refusal reason, produced by real tampering with the store file on disk
// (SQL from outside while the agent is stopped, as an attacker with the disk would), and
// the AAD binding that keeps ciphertexts and wrapped keys where they belong.
#include <gtest/gtest.h>
#include <sqlite3.h>

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
  ServiceHarness h_{"tamper"};
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

}  // namespace
}  // namespace sk::secrets
