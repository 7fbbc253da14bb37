// The recovery key and backups (issue 20, docs/recovery.md), on real hardware: a SoftHSM2
// token on host A, a swtpm on host B.
//   - recovery init: shares come back once, every existing version is wrapped by batches,
//     every new one in its own transaction; a destroyed version's wrap goes with it; a
//     swapped public key is refused at open;
//   - a backup made online verifies offline with 3 of 5 shares and without the hardware,
//     and each damage (content, manifest, truncation) and each wrong set of shares is named;
//   - the motherboard dies: the backup is restored onto a fresh swtpm host with 3 shares,
//     every version of every secret reads and verifies there, the journal names the old
//     store and head; a restore cut short is finished by running it again; a host that
//     already anchors something, or has a store, is refused.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

#include "agent/journal/journal_format.h"
#include "agent/secrets/backup_manifest.h"
#include "agent/secrets/recovery_backend.h"
#include "crypto/recovery_share.h"
#include "hsm/tpm/provision.h"
#include "hsm/tpm/tpm_backend.h"
#include "tests/agent/service_fixture.h"
#include "tests/fixtures/swtpm.h"

namespace sk::secrets {
namespace {

using testing::PutOp;

std::vector<RecoveryShare> Parse(const RecoveryInitResult& r, std::initializer_list<int> which) {
  std::vector<RecoveryShare> out;
  for (int i : which) {
    auto s = ParseRecoveryShare(AsChars(r.shares[static_cast<std::size_t>(i)].Expose()));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (s.ok()) out.push_back(std::move(s).value());
  }
  return out;
}

std::shared_ptr<RecoveryOpener> Opener(const RecoveryInitResult& r, std::initializer_list<int> which) {
  auto key = CombineRecoveryShares(Parse(r, which));
  EXPECT_TRUE(key.ok()) << key.status().ToString();
  auto opener = RecoveryOpener::Create(std::move(key).value());
  EXPECT_TRUE(opener.ok());
  return std::shared_ptr<RecoveryOpener>(std::move(opener).value());
}

void WrapAll(SecretService& svc) {
  for (int i = 0; i < 1000; ++i) {
    auto n = svc.RecoveryWrapBatch(3);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    if (*n == 0) return;
  }
  FAIL() << "the wrap batches never finished";
}

// Host A: history on three paths (with a rollback), a snapshot, a destroyed version.
void Populate(testing::ServiceHarness& a) {
  for (int v = 1; v <= 4; ++v) a.PutText("app/db", "db-v" + std::to_string(v));
  a.PutText("app/api", "api-v1");
  a.PutText("app/api", "api-v2");
  ASSERT_TRUE(Rollback(a.svc(), "app/db", 2, a.actor).ok());  // v5 = db-v2
  ASSERT_TRUE(a.svc().CreateSnapshot("release-1", "app", a.actor).ok());
  a.PutText("app/tls", "tls-v1");
}

TEST(RecoveryKeyTest, InitReturnsSharesOnceAndEveryVersionGetsWrapped) {
  testing::ServiceHarness a("recov");
  ASSERT_TRUE(a.Open().ok());
  Populate(a);
  auto init = a.svc().InitRecovery(3, 5, false, a.actor);
  ASSERT_TRUE(init.ok()) << init.status().ToString();
  ASSERT_EQ(init->shares.size(), 5U);
  EXPECT_TRUE(init->info.configured);
  EXPECT_EQ(init->info.threshold, 3);
  EXPECT_EQ(init->info.shares, 5);
  EXPECT_EQ(init->info.versions, 8U);
  EXPECT_EQ(init->info.wrapped, 0U) << "existing versions are wrapped by batches";
  WrapAll(a.svc());
  auto st = a.svc().RecoveryStatus();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->wrapped, st->versions);
  // A new version is wrapped in its own transaction.
  a.PutText("app/new", "n1");
  st = a.svc().RecoveryStatus();
  EXPECT_EQ(st->versions, 9U);
  EXPECT_EQ(st->wrapped, 9U);
  // Destroying a version takes its recovery wrap too (crypto-shredding holds).
  std::vector<Op> ops(1);
  ops[0].type = Op::Type::kDestroy;
  ops[0].path = "app/db";
  ops[0].version = 1;
  ASSERT_TRUE(a.svc().Transact(std::move(ops), "", a.actor).ok());
  st = a.svc().RecoveryStatus();
  EXPECT_EQ(st->versions, 8U);
  EXPECT_EQ(st->wrapped, 8U);
  a.Close();
  EXPECT_EQ(a.Blob("SELECT count(recovery_wrap) FROM versions WHERE path = 'app/db' AND version = 1"),
            Bytes{'0'});
  EXPECT_EQ(a.Blob("SELECT count(recovery_wrap) FROM versions WHERE path = 'app/db' AND version = 2"),
            Bytes{'1'});
  // Once is once: a second init is refused; rotate makes a new key and wraps afresh.
  ASSERT_TRUE(a.Restart().ok());
  EXPECT_EQ(a.svc().InitRecovery(3, 5, false, a.actor).status().reason(), "recovery_exists");
  auto rotated = a.svc().InitRecovery(2, 3, true, a.actor);
  ASSERT_TRUE(rotated.ok()) << rotated.status().ToString();
  EXPECT_NE(rotated->info.key_id, init->info.key_id);
  EXPECT_EQ(rotated->info.wrapped, 0U);
  WrapAll(a.svc());
  EXPECT_EQ(a.svc().RecoveryStatus()->wrapped, 8U);
  EXPECT_EQ(a.svc().InitRecovery(1, 5, true, a.actor).status().reason(), "bad_recovery_params");
  EXPECT_EQ(a.svc().InitRecovery(4, 3, true, a.actor).status().reason(), "bad_recovery_params");
}

TEST(RecoveryKeyTest, ASwappedPublicKeyIsRefusedAtOpen) {
  testing::ServiceHarness a("recovswap");
  ASSERT_TRUE(a.Open().ok());
  a.PutText("p", "v");
  ASSERT_TRUE(a.svc().InitRecovery(2, 3, false, a.actor).ok());
  a.Close();
  auto other = GenerateRecoveryKey();
  ASSERT_TRUE(other.ok());
  a.SetBlob("UPDATE meta SET value = ?1 WHERE key = 'recovery_public'", other->public_key);
  Status st = a.Restart();
  EXPECT_EQ(st.reason(), "recovery_key_mismatch") << st.ToString();
}

class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(a_.Open().ok());
    Populate(a_);
    auto init = a_.svc().InitRecovery(3, 5, false, a_.actor);
    ASSERT_TRUE(init.ok());
    init_ = std::move(init).value();
    WrapAll(a_.svc());
    a_.PutText("app/after-init", "x1");  // wrapped in its own transaction
    auto m = a_.svc().CreateBackup(backup_);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    manifest_ = *m;
    for (const char* p : {"app/db", "app/api", "app/tls", "app/after-init"}) {
      auto versions = a_.svc().Versions(p);
      ASSERT_TRUE(versions.ok());
      for (const auto& v : *versions) {
        auto value = a_.GetText(p, v.version);
        expected_[{p, v.version}] = value.ok() ? *value : "<" + std::string(value.status().reason()) + ">";
      }
    }
  }

  std::string Work() {
    const std::string d = tmp_.Join("work");
    std::filesystem::create_directories(d);
    return d;
  }

  testing::ServiceHarness a_{"hostA"};
  testing::TempDir tmp_{"backup"};
  std::string backup_ = tmp_.Join("a.backup");
  RecoveryInitResult init_;
  BackupManifest manifest_;
  std::map<std::pair<std::string, std::uint64_t>, std::string> expected_;
};

TEST_F(BackupTest, ABackupVerifiesOfflineWithAnyThreeSharesAndNoHardware) {
  EXPECT_EQ(manifest_.versions, 9U);
  EXPECT_EQ(manifest_.recovery_wrapped, 9U);
  EXPECT_EQ(manifest_.recovery_key_id, init_.info.key_id);
  for (auto which : {std::initializer_list<int>{0, 1, 2}, {4, 2, 0}, {1, 3, 4}}) {
    auto check = VerifyBackupWithShares(backup_, Opener(init_, which), Work());
    ASSERT_TRUE(check.ok()) << check.status().ToString();
    EXPECT_TRUE(check->report.ok) << (check->report.problems.empty() ? "" : check->report.problems[0].reason);
    EXPECT_EQ(check->report.versions_checked, 9U);
    EXPECT_EQ(check->manifest.head_seq, manifest_.head_seq);
  }
  // On the hardware that made it, no shares needed.
  auto on_hw = VerifyBackupOnHardware(backup_, a_.backend(), Work());
  ASSERT_TRUE(on_hw.ok()) << on_hw.status().ToString();
  EXPECT_TRUE(on_hw->report.ok);
  EXPECT_EQ(on_hw->report.versions_checked, 9U);
  // The backup file itself is untouched by verification.
  EXPECT_FALSE(std::filesystem::exists(backup_ + "-wal"));
  // The backup's writers went on: host A still takes writes.
  a_.PutText("app/db", "db-v6");
  EXPECT_EQ(a_.svc().CreateBackup(backup_).status().reason(), "backup_exists");
}

TEST_F(BackupTest, EachDamageAndEachWrongSetOfSharesIsNamed) {
  auto copy = [&](const std::string& name) {
    const std::string p = tmp_.Join(name);
    std::filesystem::copy_file(backup_, p);
    return p;
  };
  auto sql = [](const std::string& file, const std::string& statement) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, statement.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  };
  // A ciphertext edited: the copy's content no longer matches its journal.
  const std::string content = copy("content.backup");
  sql(content,
      "UPDATE versions SET ciphertext = randomblob(length(ciphertext)) WHERE path = 'app/api' AND version = "
      "1");
  auto c = VerifyBackupWithShares(content, Opener(init_, {0, 1, 2}), Work());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->report.ok);
  ASSERT_FALSE(c->report.problems.empty());
  EXPECT_EQ(c->report.problems[0].path, "app/api");
  // The last entries cut off (and the manifest left): the chain ends early.
  const std::string chain = copy("chain.backup");
  sql(chain, "DELETE FROM journal WHERE seq = (SELECT max(seq) FROM journal)");
  auto ch = VerifyBackupWithShares(chain, Opener(init_, {0, 1, 2}), Work());
  ASSERT_FALSE(ch.ok()) << "a backup cut short verified";
  EXPECT_EQ(ch.status().reason(), "replay_detected") << ch.status().ToString();
  // The manifest edited (a head further back, to hide the cut).
  const std::string manifest = copy("manifest.backup");
  BackupManifest edited = manifest_;
  edited.head_seq -= 1;
  sql(manifest, "UPDATE meta SET value = CAST('" + EncodeBackupManifest(edited) +
                    "' AS BLOB) WHERE key = 'backup_manifest'");
  EXPECT_EQ(VerifyBackupWithShares(manifest, Opener(init_, {0, 1, 2}), Work()).status().reason(),
            "backup_manifest_invalid");
  // Truncated in transit.
  const std::string truncated = copy("truncated.backup");
  std::filesystem::resize_file(truncated, std::filesystem::file_size(truncated) / 3);
  EXPECT_EQ(VerifyBackupWithShares(truncated, Opener(init_, {0, 1, 2}), Work()).status().reason(),
            "backup_unreadable");
  // Not a backup at all.
  const std::string junk = tmp_.Join("junk.backup");
  testing::WriteFile(junk, "hello");
  EXPECT_EQ(VerifyBackupWithShares(junk, Opener(init_, {0, 1, 2}), Work()).status().reason(),
            "backup_unreadable");
  // Shares of another recovery key.
  auto other_key = GenerateRecoveryKey();
  ASSERT_TRUE(other_key.ok());
  auto other = RecoveryOpener::Create(std::move(other_key->private_key));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(VerifyBackupWithShares(backup_, std::shared_ptr<RecoveryOpener>(std::move(other).value()), Work())
                .status()
                .reason(),
            "wrong_recovery_key");
  // A store that never had a recovery key cannot be restored with one. (Its token is made
  // with softhsm2-util, which needs no backend open in this process.)
  a_.CloseBackend();
  testing::ServiceHarness plain("hostD");
  ASSERT_TRUE(plain.Open().ok());
  plain.PutText("p", "v");
  const std::string plain_backup = tmp_.Join("plain.backup");
  ASSERT_TRUE(plain.svc().CreateBackup(plain_backup).ok());
  EXPECT_EQ(VerifyBackupWithShares(plain_backup, Opener(init_, {0, 1, 2}), Work()).status().reason(),
            "no_recovery_key");
}

// Host B: a fresh swtpm, provisioned, nothing stored.
struct TpmHost {
  explicit TpmHost(const std::string& dir) : swtpm(dir) {
    ::setenv("TSS2_LOG", "all+none", 1);
    config = swtpm.Config(dir + "/tpmstate");
    std::filesystem::create_directories(config.state_dir);
    auto r = hsm::tpm::ProvisionTpm(config);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    options.store_path = dir + "/store.db";
  }
  std::shared_ptr<hsm::KeyBackend> Open() {
    auto b = hsm::tpm::OpenTpmBackend(config);
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    return std::shared_ptr<hsm::KeyBackend>(std::move(b).value());
  }
  testing::Swtpm swtpm;
  hsm::TpmConfig config;
  ServiceOptions options;
};

TEST_F(BackupTest, TheMotherboardDiesAndTheBackupIsRestoredOntoANewTpmHostWithThreeShares) {
  a_.CloseBackend();
  std::filesystem::remove_all(a_.token().tokens_dir());  // host A's hardware is gone
  testing::TempDir hostb("hostB");
  TpmHost b(hostb.path());
  auto restored = RestoreOntoNewHardware(backup_, Opener(init_, {1, 3, 4}), b.Open(), b.options,
                                         Actor("uid=0 restore test"));
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_FALSE(restored->resumed);
  EXPECT_EQ(restored->restored_seq, manifest_.head_seq + 1) << "the restored entry follows the backup's head";
  EXPECT_GT(restored->rewrapped_seq, restored->restored_seq);
  EXPECT_TRUE(restored->report.ok) << (restored->report.problems.empty()
                                           ? ""
                                           : restored->report.problems[0].reason);
  EXPECT_FALSE(std::filesystem::exists(b.options.store_path + ".restoring"));

  // On host B alone (its TPM, no shares): every version of every secret, as on host A.
  auto svc = SecretService::Open(b.Open(), b.options);
  ASSERT_TRUE(svc.ok()) << svc.status().ToString();
  for (const auto& [key, value] : expected_) {
    auto v = (*svc)->Get(key.first, key.second);
    const std::string got = v.ok() ? testing::Text(v->value) : "<" + std::string(v.status().reason()) + ">";
    EXPECT_EQ(got, value) << key.first << " v" << key.second;
  }
  auto snap = (*svc)->GetSnapshot("release-1");
  EXPECT_TRUE(snap.ok());
  EXPECT_TRUE((*svc)->VerifyAll()->ok);
  EXPECT_EQ((*svc)->Report().backend.kind, "tpm");
  // It takes writes and keeps wrapping them to the recovery key.
  ASSERT_TRUE(Put(**svc, "app/db", AsBytes("db-on-b"), Actor("uid=0")).ok());
  auto rs = (*svc)->RecoveryStatus();
  ASSERT_TRUE(rs.ok());
  EXPECT_EQ(rs->key_id, init_.info.key_id);
  EXPECT_EQ(rs->wrapped, rs->versions);
  svc->reset();

  // The journal's restored entry names the old store and head.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(b.options.store_path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT entry FROM journal WHERE seq = ?1", -1, &st, nullptr),
              SQLITE_OK);
    sqlite3_bind_int64(st, 1, static_cast<sqlite3_int64>(restored->restored_seq));
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(st, 0));
    auto e = journal::DecodeEntry(ByteView(p, static_cast<std::size_t>(sqlite3_column_bytes(st, 0))));
    sqlite3_finalize(st);
    sqlite3_close(db);
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->kind, journal::Kind::kRestored);
    EXPECT_EQ(e->from_version, manifest_.head_seq);
    EXPECT_NE(e->detail.note.find("store_id=" + manifest_.store_id), std::string::npos) << e->detail.note;
    EXPECT_NE(e->detail.note.find("head_seq=" + std::to_string(manifest_.head_seq)), std::string::npos);
  }
  // Running it again on the restored host is refused: its anchor records the restore.
  std::filesystem::rename(b.options.store_path, b.options.store_path + ".aside");
  EXPECT_EQ(RestoreOntoNewHardware(backup_, Opener(init_, {0, 1, 2}), b.Open(), b.options, Actor("uid=0"))
                .status()
                .reason(),
            "restore_target_not_fresh");
  std::filesystem::rename(b.options.store_path + ".aside", b.options.store_path);
  EXPECT_EQ(RestoreOntoNewHardware(backup_, Opener(init_, {0, 1, 2}), b.Open(), b.options, Actor("uid=0"))
                .status()
                .reason(),
            "store_exists");
}

TEST_F(BackupTest, ARestoreCutShortAfterItsRestoredEntryIsFinishedByRunningItAgain) {
  testing::TempDir hostb("hostB2");
  TpmHost b(hostb.path());
  auto opener = Opener(init_, {0, 2, 4});
  // The first run got as far as journaling `restored` and anchoring it on the new TPM,
  // then the machine went down before the keys were moved under the new master key.
  {
    testing::WriteFile(b.options.store_path + ".restoring", "restoring\n");
    std::filesystem::copy_file(backup_, b.options.store_path);
    auto blobs = LoadRecoveryBlobs(backup_);
    ASSERT_TRUE(blobs.ok());
    ServiceOptions o = b.options;
    o.adopt_backup = ServiceOptions::AdoptBackup{manifest_.head_seq, manifest_.head_hash, "restored (test)",
                                                 false, "test"};
    auto backend = std::make_shared<RecoveryBackend>(b.Open(), opener, std::move(blobs).value(),
                                                     hsm::Anchor{manifest_.head_seq, manifest_.head_hash, 0});
    auto svc = SecretService::Open(backend, o);
    ASSERT_TRUE(svc.ok()) << svc.status().ToString();
  }
  // On its own, host B cannot open the store yet: its keys are under the dead token.
  EXPECT_FALSE(SecretService::Open(b.Open(), b.options).ok());
  auto again = RestoreOntoNewHardware(backup_, opener, b.Open(), b.options, Actor("uid=0"));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(again->resumed);
  EXPECT_TRUE(again->report.ok);
  auto svc = SecretService::Open(b.Open(), b.options);
  ASSERT_TRUE(svc.ok()) << svc.status().ToString();
  for (const auto& [key, value] : expected_) {
    auto v = (*svc)->Get(key.first, key.second);
    const std::string got = v.ok() ? testing::Text(v->value) : "<" + std::string(v.status().reason()) + ">";
    EXPECT_EQ(got, value) << key.first << " v" << key.second;
  }
}

// On the hardware that made it: the gap between the backup's head and the anchor is shown
// and nothing changes without accept_loss; with it the store is replaced, kept aside, and
// the anchor goes on from a `restored` entry naming both heads.
TEST_F(BackupTest, OnTheSameHardwareTheGapIsShownAndNeedsAcceptLoss) {
  a_.PutText("app/db", "db-after-backup");
  a_.PutText("app/new", "new-after-backup");
  ASSERT_TRUE(a_.svc().Rotate(a_.actor).ok());  // anchors at once: the anchor is past the backup
  a_.CloseBackend();
  ASSERT_TRUE(a_.Open().ok());
  auto anchored = a_.backend()->ReadAnchor();
  ASSERT_TRUE(anchored.ok());
  ASSERT_GT(anchored->seq, manifest_.head_seq);
  a_.Close();

  auto refused = RestoreOnSameHardware(backup_, a_.backend(), a_.options, false, a_.actor);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().reason(), "restore_needs_accept_loss");
  EXPECT_NE(refused.status().message().find("anchored changes after the backup would be lost"),
            std::string::npos)
      << refused.status().ToString();
  ASSERT_TRUE(a_.Open().ok()) << "a refused restore changed the store";
  EXPECT_EQ(*a_.GetText("app/new"), "new-after-backup");
  a_.Close();

  auto done = RestoreOnSameHardware(backup_, a_.backend(), a_.options, true, a_.actor);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->lost, anchored->seq - manifest_.head_seq);
  EXPECT_TRUE(done->report.ok);
  EXPECT_TRUE(std::filesystem::exists(done->kept_aside));
  EXPECT_EQ(done->restored_seq, manifest_.head_seq + 1);
  ASSERT_TRUE(a_.Open().ok());
  EXPECT_EQ(a_.GetText("app/new").status().code(), Code::kNotFound);
  for (const auto& [key, value] : expected_) {
    auto v = a_.GetText(key.first, key.second);
    EXPECT_EQ(v.ok() ? *v : "<" + std::string(v.status().reason()) + ">", value) << key.first << key.second;
  }
  a_.PutText("app/db", "goes-on");  // the anchor continues from the restored entry
  ASSERT_TRUE(a_.Restart().ok());
  EXPECT_EQ(*a_.GetText("app/db"), "goes-on");
  a_.Close();

  auto again = RestoreOnSameHardware(backup_, a_.backend(), a_.options, true, a_.actor);
  EXPECT_TRUE(again.ok()) << "restoring the same backup again is a restore like any other";
}

// The backup of another store, restored on this hardware: refused, naming it. (This token
// anchors a second store, accepted after the first was removed.)
TEST_F(BackupTest, ABackupOfAnotherStoreIsRefusedOnTheSameHardware) {
  a_.Close();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(a_.store_path() + suffix);
  auto accepted = SecretService::AcceptRollback(a_.backend(), a_.options, a_.actor);
  ASSERT_TRUE(accepted.ok()) << accepted.status().ToString();
  auto refused = RestoreOnSameHardware(backup_, a_.backend(), a_.options, true, a_.actor);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().reason(), "backup_other_store") << refused.status().ToString();
}

// A backup newer than the hardware anchor allows: taken on a history the hardware has since
// left (an older copy was accepted and went on), it reaches past the anchor along another
// history: named, and refused without accept_loss.
TEST_F(BackupTest, ABackupOfAHistoryTheAnchorLeftIsRefusedWithoutAcceptLoss) {
  a_.PutText("app/db", "db-late-1");
  a_.PutText("app/db", "db-late-2");
  ASSERT_TRUE(a_.svc().Rotate(a_.actor).ok());  // anchored at once
  const std::string later = tmp_.Join("later.backup");
  ASSERT_TRUE(a_.svc().CreateBackup(later).ok());
  a_.Close();
  // The older backup is put back and accepted: the anchor goes on from it (seq head+1).
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(a_.store_path() + suffix);
  std::filesystem::copy_file(backup_, a_.store_path());
  auto accepted = SecretService::AcceptRollback(a_.backend(), a_.options, a_.actor);
  ASSERT_TRUE(accepted.ok()) << accepted.status().ToString();
  auto refused = RestoreOnSameHardware(later, a_.backend(), a_.options, false, a_.actor);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().reason(), "restore_needs_accept_loss");
  EXPECT_NE(refused.status().message().find("differs from the one the hardware anchored"), std::string::npos)
      << refused.status().ToString();
  ASSERT_TRUE(a_.Open().ok()) << "a refused restore changed the store";
  EXPECT_EQ(*a_.GetText("app/db"), "db-v2");
}

// TPM to TPM: host A on a swtpm, its TPM state deleted (the motherboard died), host B a new
// swtpm; 3 of 5 shares.
TEST(TpmToTpmTest, ATpmHostsBackupIsRestoredOntoANewTpmHost) {
  testing::TempDir hosta("tpmA"), hostb("tpmB");
  const std::string backup = hosta.Join("a.backup");
  RecoveryInitResult init;
  std::map<std::pair<std::string, std::uint64_t>, std::string> expected;
  {
    auto a = std::make_unique<TpmHost>(hosta.path());
    auto svc = SecretService::Open(a->Open(), a->options);
    ASSERT_TRUE(svc.ok()) << svc.status().ToString();
    Actor actor("uid=0 test");
    for (int v = 1; v <= 3; ++v) {
      ASSERT_TRUE(Put(**svc, "tpm/db", AsBytes("db-v" + std::to_string(v)), actor).ok());
    }
    ASSERT_TRUE(Put(**svc, "tpm/api", AsBytes("api-v1"), actor).ok());
    auto r = (*svc)->InitRecovery(3, 5, false, actor);
    ASSERT_TRUE(r.ok());
    init = std::move(r).value();
    WrapAll(**svc);
    ASSERT_TRUE(Rollback(**svc, "tpm/db", 1, actor).ok());  // v4, wrapped in its transaction
    ASSERT_TRUE((*svc)->CreateBackup(backup).ok());
    for (std::uint64_t v = 1; v <= 4; ++v)
      expected[{"tpm/db", v}] = v == 4 ? "db-v1" : "db-v" + std::to_string(v);
    expected[{"tpm/api", 1}] = "api-v1";
    svc->reset();
    std::filesystem::remove_all(a->config.state_dir);
    std::filesystem::remove_all(a->swtpm.state_dir());  // A's TPM is gone
  }
  TpmHost b(hostb.path());
  auto restored =
      RestoreOntoNewHardware(backup, Opener(init, {0, 1, 3}), b.Open(), b.options, Actor("uid=0"));
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_TRUE(restored->report.ok);
  auto svc = SecretService::Open(b.Open(), b.options);
  ASSERT_TRUE(svc.ok()) << svc.status().ToString();
  for (const auto& [key, value] : expected) {
    auto v = (*svc)->Get(key.first, key.second);
    ASSERT_TRUE(v.ok()) << key.first << " v" << key.second << ": " << v.status().ToString();
    EXPECT_EQ(testing::Text(v->value), value);
  }
  EXPECT_TRUE((*svc)->VerifyAll()->ok);
}

}  // namespace
}  // namespace sk::secrets
