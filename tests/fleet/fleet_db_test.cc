// The fleet journal against a real PostgreSQL 15: an admins' writer and three hosts, each
// with its own key pair and connection (db-1's key in a swtpm, both-1's in a SoftHSM2
// token, web-1's in memory), sharing one server. Transactions reach the entitled hosts and
// only them; a host outside a group cannot open the rows even reading them directly;
// forged entries, broken chains, substituted wraps and a database that went backwards are
// refused while the hosts keep what they had; concurrent writers never fork; a promoted
// standby carries on.
#include <gtest/gtest.h>

#include <thread>

#include "agent/fleet/fleet_host.h"
#include "agent/fleet/fleet_writer.h"
#include "hsm/pkcs11/ecdh_key.h"
#include "hsm/tpm/ecdh_key.h"
#include "tests/fixtures/postgres.h"
#include "tests/fixtures/softhsm.h"
#include "tests/fixtures/swtpm.h"
#include "tests/fixtures/temp_dir.h"
#include "tests/fleet/must.h"

namespace sk::fleet {
namespace {

using testing::Postgres;

std::vector<PlainOp> One(PlainOp op) {
  std::vector<PlainOp> ops;
  ops.push_back(std::move(op));
  return ops;
}

std::string Str(const SecretBytes& s) { return std::string(AsChars(s.Expose())); }
SecretBytes Secret(std::string_view s) { return SecretBytes::CopyFrom(AsBytes(s)); }

class FleetDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    password_ = Secret(pg_.superuser_password());
    db_ = Open();
    ASSERT_TRUE(db_->Migrate().ok());
    signer_ = Must(GenerateRecoveryKey());
    writer_ = Must(FleetWriter::Create(db_.get(), CopyKey(signer_)));
    // db-1 keeps its key in a TPM (swtpm), both-1 in a SoftHSM2 token, web-1 in memory.
    swtpm_ = std::make_unique<testing::Swtpm>(tpm_dir_.path());
    tpm_blob_ = Must(hsm::tpm::CreateTpmEcdhKey(TpmConfig()));
    HostRecord db1{"db-1", HostState::kAdmitted, KeyKind::kTpm, HostKey("db-1")->public_key(), {"db"}};
    ASSERT_TRUE(writer_->PutHost(db1).ok());
    Admit("web-1", {"web"});
    both_token_ = std::make_unique<testing::SoftHsmToken>(token_dir_.path());
    ASSERT_TRUE(hsm::pkcs11::OpenEcdhKey(both_token_->Config(), kHostKeyLabel, true).ok());
    HostRecord both{
        "both-1", HostState::kAdmitted, KeyKind::kPkcs11, HostKey("both-1")->public_key(), {"db", "web"}};
    ASSERT_TRUE(writer_->PutHost(both).ok());
  }

  hsm::TpmConfig TpmConfig() const { return swtpm_->Config(tpm_dir_.Join("state")); }
  // A host's ECDH key, from where that host keeps it.
  std::unique_ptr<EcdhPrivateKey> HostKey(const std::string& id) {
    if (id == "db-1") return Must(hsm::tpm::OpenTpmEcdhKey(TpmConfig(), tpm_blob_));
    if (id == "both-1") return Must(hsm::pkcs11::OpenEcdhKey(both_token_->Config(), kHostKeyLabel, false));
    return Must(SoftwareEcdhKey(CopyKey(keys_[id])));
  }

  std::unique_ptr<FleetDb> Open() { return Open(pg_); }
  std::unique_ptr<FleetDb> Open(const Postgres& pg) {
    const std::string url = "host=" + pg.socket_dir() + " port=5432 dbname=postgres user=" + pg.superuser();
    Result<std::unique_ptr<FleetDb>> db = FleetDb::Connect(url, &password_);
    EXPECT_TRUE(db.ok()) << db.status().ToString();
    return db.ok() ? std::move(*db) : nullptr;
  }
  static SecretBytes CopyKey(const RecoveryKeyPair& k) {
    return SecretBytes::CopyFrom(k.private_key.Expose());
  }

  void Admit(const std::string& id, std::vector<std::string> groups) {
    keys_[id] = Must(GenerateRecoveryKey());
    HostRecord h{id, HostState::kAdmitted, KeyKind::kSoftware, keys_[id].public_key, std::move(groups)};
    ASSERT_TRUE(writer_->PutHost(h).ok());
  }
  std::unique_ptr<FleetHost> Host(const std::string& id, ChainHead anchor = {}) {
    return Must(FleetHost::Create(id, HostKey(id), signer_.public_key, anchor));
  }
  static PlainOp Put(const std::string& path, std::vector<std::string> groups, std::string_view value) {
    return PlainOp{path, OpKind::kPut, std::move(groups), Secret(value)};
  }
  // Pulls and applies everything; the paths and values this host now has.
  static std::map<std::string, std::string> PullAll(FleetHost& h, FleetDb& db, Status* refusal = nullptr) {
    std::map<std::string, std::string> got;
    Result<FleetHost::Pulled> p = h.Pull(db);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    if (!p.ok()) return got;
    for (const EntryChanges& e : p->entries) {
      for (const Change& c : e.changes) got[c.path] = c.kind == OpKind::kPut ? Str(c.value) : "(deleted)";
      h.Applied(e);
    }
    if (refusal != nullptr) {
      *refusal = p->refusal;
    } else {
      EXPECT_TRUE(p->refusal.ok()) << p->refusal.ToString();
    }
    return got;
  }
  // Appends an entry by SQL, as someone with the database but not (necessarily) the key.
  void Inject(const Bytes& entry, std::uint64_t seq) {
    const std::string hex = "'\\x" + HexEncode(entry) + "'::bytea";
    const std::string hash = "'\\x" + HexEncode(EntryHash(entry)) + "'::bytea";
    ASSERT_TRUE(pg_.Exec("INSERT INTO sk_fleet_entries (seq, hash, entry) VALUES (" + std::to_string(seq) +
                         ", " + hash + ", " + hex +
                         "); UPDATE sk_fleet_head SET seq = " + std::to_string(seq) + ", hash = " + hash));
  }
  Bytes NextTxn(const RecoveryKeyPair& key, const Digest& prev) {
    TxnOp op;
    op.path = "apps/web/forged";
    op.version = 1;
    op.groups = {"web"};
    Entry e;
    e.seq = writer_->chain().head().seq + 1;
    e.prev_hash = prev;
    e.signer_id = SignerIdOf(key.public_key);
    e.kind = EntryKind::kTxn;
    e.body = *EncodeTxn({op});
    return *SignEntry(e, key.private_key);
  }

  static constexpr char kHostKeyLabel[] = "sealkeep-fleet-host";
  Postgres pg_;
  testing::TempDir token_dir_{"fleet-p11"};
  std::unique_ptr<testing::SoftHsmToken> both_token_;
  testing::TempDir tpm_dir_{"fleet-tpm"};
  std::unique_ptr<testing::Swtpm> swtpm_;
  Bytes tpm_blob_;
  SecretBytes password_;
  std::unique_ptr<FleetDb> db_;
  RecoveryKeyPair signer_;
  std::unique_ptr<FleetWriter> writer_;
  std::map<std::string, RecoveryKeyPair> keys_;
};

TEST_F(FleetDbTest, ATxnReachesTheEntitledHostsAndOnlyThem) {
  std::vector<PlainOp> ops;
  ops.push_back(Put("apps/web/token", {"web"}, "web-token-1"));
  ops.push_back(Put("apps/db/password", {"db"}, "db-password-1"));
  Result<std::uint64_t> seq = writer_->Commit(std::move(ops));
  ASSERT_TRUE(seq.ok()) << seq.status().ToString();
  EXPECT_EQ(*seq, 4U);  // three host entries, then this one

  std::map<std::string, std::map<std::string, std::string>> seen;
  for (const std::string id : {"db-1", "web-1", "both-1"}) {
    std::unique_ptr<FleetDb> db = Open();
    std::unique_ptr<FleetHost> h = Host(id);
    seen[id] = PullAll(*h, *db);
    EXPECT_EQ(h->anchor().seq, 4U) << id;
    EXPECT_EQ(h->anchor().hash, writer_->chain().head().hash) << id;
  }
  EXPECT_EQ(seen["web-1"], (std::map<std::string, std::string>{{"apps/web/token", "web-token-1"}}));
  EXPECT_EQ(seen["db-1"], (std::map<std::string, std::string>{{"apps/db/password", "db-password-1"}}));
  EXPECT_EQ(seen["both-1"], (std::map<std::string, std::string>{{"apps/db/password", "db-password-1"},
                                                                {"apps/web/token", "web-token-1"}}));
  // A second pull brings nothing new; a delete reaches the same hosts.
  std::unique_ptr<FleetHost> web = Host("web-1");
  ASSERT_EQ(PullAll(*web, *db_).size(), 1U);
  EXPECT_TRUE(PullAll(*web, *db_).empty());
  ASSERT_TRUE(writer_->Commit(One(PlainOp{"apps/web/token", OpKind::kDelete, {"web"}, {}})).ok());
  EXPECT_EQ(PullAll(*web, *db_), (std::map<std::string, std::string>{{"apps/web/token", "(deleted)"}}));
}

TEST_F(FleetDbTest, AHostOutsideTheGroupCannotOpenTheRowsEvenWithTheDatabase) {
  ASSERT_TRUE(writer_->Commit(One(Put("apps/web/token", {"web"}, "only-for-web"))).ok());
  // What PostgreSQL holds: wraps for web's hosts only, and nowhere the value in clear.
  // (and the admins' escrow, fleet_writer.h, which no host can open either).
  auto rows = pg_.Query("SELECT host_id, encode(wrap, 'hex') FROM sk_fleet_wraps ORDER BY host_id");
  ASSERT_EQ(rows.size(), 3U);
  EXPECT_EQ(rows[0][0], "@escrow");
  EXPECT_EQ(rows[1][0], "both-1");
  EXPECT_EQ(rows[2][0], "web-1");
  for (const auto& table : {"sk_fleet_entries", "sk_fleet_wraps"}) {
    auto clear = pg_.Query(std::string("SELECT count(*) FROM ") + table +
                           " t WHERE position('only-for-web'::bytea in " +
                           (std::string(table) == "sk_fleet_entries" ? "t.entry" : "t.wrap") + ") > 0");
    ASSERT_EQ(clear.size(), 1U);
    EXPECT_EQ(clear[0][0], "0") << table;
  }
  // db-1, with its own private key and every row, opens none of the wraps.
  std::unique_ptr<RecoveryOpener> db1 = RecoveryOpener::Create(HostKey("db-1"));  // its key, in its TPM
  for (const auto& row : rows) {
    Bytes wrap = *HexDecode(row[1]);
    for (const std::string& as : std::vector<std::string>{"db-1", row[0]}) {
      EXPECT_FALSE(db1->Open(wrap, WrapAad(as, "apps/web/token", 1)).ok()) << row[0];
    }
  }
  // And its pull carries nothing of it.
  std::unique_ptr<FleetHost> h = Host("db-1");
  EXPECT_TRUE(PullAll(*h, *db_).empty());
}

TEST_F(FleetDbTest, AForgedEntryIsRefusedByHostsAndWritersAndTheHostKeepsWhatItHad) {
  ASSERT_TRUE(writer_->Commit(One(Put("apps/web/token", {"web"}, "good"))).ok());
  std::unique_ptr<FleetHost> h = Host("web-1");
  ASSERT_EQ(PullAll(*h, *db_).size(), 1U);
  const ChainHead good = h->anchor();
  RecoveryKeyPair mallory = Must(GenerateRecoveryKey());
  Inject(NextTxn(mallory, writer_->chain().head().hash), good.seq + 1);

  Status refusal;
  EXPECT_TRUE(PullAll(*h, *db_, &refusal).empty());
  EXPECT_EQ(refusal.reason(), "bad_signature") << refusal.ToString();
  EXPECT_EQ(h->anchor().seq, good.seq);
  // A new host verifying from seq 1 takes everything up to the forgery, then stops.
  std::unique_ptr<FleetHost> fresh = Host("web-1");
  EXPECT_EQ(PullAll(*fresh, *db_, &refusal).size(), 1U);
  EXPECT_EQ(refusal.reason(), "bad_signature");
  EXPECT_EQ(fresh->anchor().seq, good.seq);
  // The writer will not build on it either.
  std::unique_ptr<FleetWriter> w2 = Must(FleetWriter::Create(db_.get(), CopyKey(signer_)));
  EXPECT_EQ(w2->Commit(One(Put("apps/web/other", {"web"}, "x"))).status().reason(), "bad_signature");
}

TEST_F(FleetDbTest, AnEntrySignedByTheFleetKeyButOffTheChainIsRefused) {
  std::unique_ptr<FleetHost> h = Host("web-1");
  EXPECT_TRUE(PullAll(*h, *db_).empty());
  Digest wrong = writer_->chain().head().hash;
  wrong[0] ^= 1;
  Inject(NextTxn(signer_, wrong), writer_->chain().head().seq + 1);
  Status refusal;
  EXPECT_TRUE(PullAll(*h, *db_, &refusal).empty());
  EXPECT_EQ(refusal.reason(), "fleet_chain_broken") << refusal.ToString();
}

TEST_F(FleetDbTest, ASubstitutedWrapIsRefused) {
  ASSERT_TRUE(writer_->Commit(One(Put("apps/web/token", {"web"}, "real"))).ok());
  // Someone with the database wraps a key of their own to web-1's public key.
  std::unique_ptr<RecoverySealer> sealer = Must(RecoverySealer::Create(keys_["web-1"].public_key));
  Bytes forged = *sealer->Seal(SecretBytes(32), WrapAad("web-1", "apps/web/token", 1));
  ASSERT_TRUE(pg_.Exec("UPDATE sk_fleet_wraps SET wrap = '\\x" + HexEncode(forged) +
                       "'::bytea WHERE host_id = 'web-1'"));
  std::unique_ptr<FleetHost> h = Host("web-1");
  Status refusal;
  EXPECT_TRUE(PullAll(*h, *db_, &refusal).empty());
  EXPECT_EQ(refusal.reason(), "fleet_wrap_invalid") << refusal.ToString();
  EXPECT_EQ(h->anchor().seq, 3U);  // the three host entries before it applied; the txn did not
  // both-1's wrap was left alone: it applies.
  std::unique_ptr<FleetHost> both = Host("both-1");
  EXPECT_EQ(PullAll(*both, *db_), (std::map<std::string, std::string>{{"apps/web/token", "real"}}));
}

TEST_F(FleetDbTest, ADatabaseThatWentBackwardsIsRefusedByEveryHostAhead) {
  ASSERT_TRUE(writer_->Commit(One(Put("apps/web/token", {"web"}, "v1"))).ok());
  const std::uint64_t old_seq = writer_->chain().head().seq;
  // The "older backup": a copy of the tables as they are now.
  ASSERT_TRUE(
      pg_.Exec("CREATE TABLE old_entries AS SELECT * FROM sk_fleet_entries; "
               "CREATE TABLE old_wraps AS SELECT * FROM sk_fleet_wraps; "
               "CREATE TABLE old_head AS SELECT * FROM sk_fleet_head"));
  ASSERT_TRUE(writer_->Commit(One(Put("apps/web/token", {"web"}, "v2"))).ok());
  std::unique_ptr<FleetHost> web = Host("web-1");
  std::unique_ptr<FleetHost> both = Host("both-1");
  EXPECT_EQ(PullAll(*web, *db_)["apps/web/token"], "v2");
  EXPECT_EQ(PullAll(*both, *db_)["apps/web/token"], "v2");
  const ChainHead applied = web->anchor();

  // Restore the backup.
  ASSERT_TRUE(
      pg_.Exec("BEGIN; DELETE FROM sk_fleet_wraps; DELETE FROM sk_fleet_entries; DELETE FROM sk_fleet_head; "
               "INSERT INTO sk_fleet_entries SELECT * FROM old_entries; "
               "INSERT INTO sk_fleet_wraps SELECT * FROM old_wraps; "
               "INSERT INTO sk_fleet_head SELECT * FROM old_head; COMMIT"));
  for (FleetHost* h : {web.get(), both.get()}) {
    Status refusal;
    EXPECT_TRUE(PullAll(*h, *db_, &refusal).empty());
    EXPECT_EQ(refusal.reason(), "fleet_db_behind") << refusal.ToString();
    EXPECT_EQ(h->anchor().seq, applied.seq);
  }
  // A host restarted from its hardware anchor refuses it the same way.
  std::unique_ptr<FleetHost> restarted = Host("web-1", applied);
  Status refusal;
  EXPECT_TRUE(PullAll(*restarted, *db_, &refusal).empty());
  EXPECT_EQ(refusal.reason(), "fleet_db_behind");

  // A writer working on the restored copy grows another history past the hosts' anchor:
  // it is refused as one, not taken for progress.
  std::unique_ptr<FleetDb> db2 = Open();
  std::unique_ptr<FleetWriter> w2 = Must(FleetWriter::Create(db2.get(), CopyKey(signer_)));
  ASSERT_TRUE(w2->Commit(One(Put("apps/web/token", {"web"}, "v2-elsewhere"))).ok());
  ASSERT_TRUE(w2->Commit(One(Put("apps/web/token", {"web"}, "v3-elsewhere"))).ok());
  ASSERT_GT(w2->chain().head().seq, applied.seq);
  EXPECT_EQ(old_seq + 2, w2->chain().head().seq);
  for (FleetHost* h : {web.get(), both.get(), restarted.get()}) {
    EXPECT_TRUE(PullAll(*h, *db_, &refusal).empty());
    EXPECT_EQ(refusal.reason(), "fleet_chain_broken") << refusal.ToString();
    EXPECT_EQ(h->anchor().seq, applied.seq);
  }
}

TEST_F(FleetDbTest, TwoWritersAtOnceNeverForkTheChain) {
  constexpr int kEach = 15;
  auto write = [&](const std::string& who) {
    std::unique_ptr<FleetDb> db = Open();
    std::unique_ptr<FleetWriter> w = Must(FleetWriter::Create(db.get(), CopyKey(signer_)));
    for (int i = 0; i < kEach; ++i) {
      std::vector<PlainOp> ops;
      ops.push_back(Put("apps/web/shared", {"web"}, who + "-" + std::to_string(i)));
      ops.push_back(Put("apps/web/" + who, {"web"}, std::to_string(i)));
      Result<std::uint64_t> seq = w->Commit(std::move(ops));
      EXPECT_TRUE(seq.ok()) << seq.status().ToString();
    }
  };
  std::thread a(write, "a");
  std::thread b(write, "b");
  a.join();
  b.join();
  std::unique_ptr<FleetHost> h = Host("web-1");
  Result<FleetHost::Pulled> p = h->Pull(*db_);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->refusal.ok()) << p->refusal.ToString();
  ASSERT_EQ(p->entries.size(), 3U + 2U * kEach);  // the host entries, then every commit
  std::uint64_t shared_version = 0;
  for (const EntryChanges& e : p->entries) {
    for (const Change& c : e.changes) {
      if (c.path == "apps/web/shared") {
        EXPECT_EQ(c.version, ++shared_version);
      }
    }
  }
  EXPECT_EQ(shared_version, 2U * kEach);
  auto rows = pg_.Query("SELECT count(*), max(seq) FROM sk_fleet_entries");
  EXPECT_EQ(rows[0][0], std::to_string(3 + 2 * kEach));
  EXPECT_EQ(rows[0][1], std::to_string(3 + 2 * kEach));
}

TEST_F(FleetDbTest, WithTheDatabaseDownAHostKeepsWhatItHasAndCatchesUpAfter) {
  ASSERT_TRUE(writer_->Commit(One(Put("apps/web/token", {"web"}, "before"))).ok());
  std::unique_ptr<FleetHost> h = Host("web-1");
  ASSERT_EQ(PullAll(*h, *db_).size(), 1U);
  const ChainHead had = h->anchor();
  pg_.Stop();
  Result<FleetHost::Pulled> down = h->Pull(*db_);
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().reason(), "fleet_unavailable");
  EXPECT_EQ(h->anchor().seq, had.seq);
  EXPECT_EQ(FleetDb::Connect(
                "host=" + pg_.socket_dir() + " port=5432 dbname=postgres user=" + pg_.superuser(), &password_)
                .status()
                .reason(),
            "fleet_unavailable");
  pg_.Start();
  db_ = Open();
  writer_ = Must(FleetWriter::Create(db_.get(), CopyKey(signer_)));
  ASSERT_TRUE(writer_->Commit(One(Put("apps/web/token", {"web"}, "after"))).ok());
  EXPECT_EQ(PullAll(*h, *db_), (std::map<std::string, std::string>{{"apps/web/token", "after"}}));
}

TEST_F(FleetDbTest, ACommitWakesAListeningHost) {
  std::unique_ptr<FleetDb> listener = Open();
  ASSERT_TRUE(listener->Listen().ok());
  Result<bool> quiet = listener->WaitForNotify(std::chrono::milliseconds(0));
  ASSERT_TRUE(quiet.ok());
  EXPECT_FALSE(*quiet);
  ASSERT_TRUE(writer_->Commit(One(Put("apps/web/token", {"web"}, "x"))).ok());
  Result<bool> woke = listener->WaitForNotify(std::chrono::seconds(30));
  ASSERT_TRUE(woke.ok()) << woke.status().ToString();
  EXPECT_TRUE(*woke);
}

TEST_F(FleetDbTest, APutNobodyMayReadIsRefusedAndWritesNothing) {
  const std::uint64_t before = writer_->chain().head().seq;
  EXPECT_EQ(writer_->Commit(One(Put("apps/ops/key", {"ops"}, "x"))).status().reason(), "no_entitled_host");
  EXPECT_EQ(db_->Head()->seq, before);
}

// Streaming replication with a synchronous standby (as Patroni's synchronous mode runs it):
// the primary stops, the standby is promoted, the writer goes on there and every host catches
// up from it, its chain unbroken.
TEST_F(FleetDbTest, WhenThePrimaryStopsAndTheStandbyIsPromotedWritesGoOnAndHostsCatchUp) {
  Postgres standby(pg_, Postgres::Copy::kStandby);
  pg_.MakeSynchronous();
  ASSERT_TRUE(writer_->Commit(One(Put("apps/web/token", {"web"}, "on-the-primary"))).ok());
  std::unique_ptr<FleetHost> web = Host("web-1");
  std::unique_ptr<FleetHost> both = Host("both-1");
  EXPECT_EQ(PullAll(*web, *db_)["apps/web/token"], "on-the-primary");
  EXPECT_EQ(PullAll(*both, *db_)["apps/web/token"], "on-the-primary");
  // The standby already serves the same chain, read-only.
  std::unique_ptr<FleetDb> replica = Open(standby);
  EXPECT_EQ(replica->Head()->seq, writer_->chain().head().seq);

  db_.reset();
  pg_.Stop();
  standby.Promote();
  std::unique_ptr<FleetDb> promoted = Open(standby);
  std::unique_ptr<FleetWriter> w2 = Must(FleetWriter::Create(promoted.get(), CopyKey(signer_)));
  ASSERT_TRUE(w2->Commit(One(Put("apps/web/token", {"web"}, "on-the-promoted-standby"))).ok());
  ASSERT_TRUE(w2->Commit(One(Put("apps/db/password", {"db"}, "db-after-failover"))).ok());
  EXPECT_EQ(PullAll(*web, *promoted),
            (std::map<std::string, std::string>{{"apps/web/token", "on-the-promoted-standby"}}));
  EXPECT_EQ(PullAll(*both, *promoted),
            (std::map<std::string, std::string>{{"apps/db/password", "db-after-failover"},
                                                {"apps/web/token", "on-the-promoted-standby"}}));
  EXPECT_EQ(web->anchor().hash, w2->chain().head().hash);
}

// The database restored from a real, older base backup (pg_basebackup, then started on its
// own): every host that applied more refuses it and keeps what it has.
TEST_F(FleetDbTest, APostgresRestoredFromAnOlderBaseBackupIsRefusedByEveryHostAhead) {
  ASSERT_TRUE(writer_->Commit(One(Put("apps/web/token", {"web"}, "v1"))).ok());
  Postgres old_backup(pg_, Postgres::Copy::kOldBackup);
  ASSERT_TRUE(writer_->Commit(One(Put("apps/web/token", {"web"}, "v2"))).ok());
  ASSERT_TRUE(writer_->Commit(One(Put("apps/db/password", {"db"}, "db-v1"))).ok());
  std::vector<std::unique_ptr<FleetHost>> hosts;
  for (const std::string id : {"db-1", "web-1", "both-1"}) {
    hosts.push_back(Host(id));
    PullAll(*hosts.back(), *db_);
    EXPECT_EQ(hosts.back()->anchor().seq, writer_->chain().head().seq) << id;
  }
  db_.reset();
  pg_.Stop();
  std::unique_ptr<FleetDb> restored = Open(old_backup);
  for (auto& h : hosts) {
    Status refusal;
    EXPECT_TRUE(PullAll(*h, *restored, &refusal).empty()) << h->host_id();
    EXPECT_EQ(refusal.reason(), "fleet_db_behind") << h->host_id() << ": " << refusal.ToString();
    EXPECT_EQ(h->anchor().hash, writer_->chain().head().hash) << h->host_id();
  }
}

// Enrolment requests and hosts' reports: rows anyone with the database may write, which is
// why admission is a signed entry and a report is only ever shown, never trusted.
TEST_F(FleetDbTest, PendingHostsAndAppliedReportsAreKeptOnePerHost) {
  Result<RecoveryKeyPair> k = GenerateRecoveryKey();
  ASSERT_TRUE(k.ok());
  ASSERT_TRUE(db_->PublishPending(PendingHost{"new-1", KeyKind::kTpm, k->public_key, {"db", "web"}}).ok());
  ASSERT_TRUE(db_->PublishPending(PendingHost{"new-1", KeyKind::kPkcs11, k->public_key, {"web"}})
                  .ok());  // asks again
  Result<std::vector<PendingHost>> pending = db_->Pending();
  ASSERT_TRUE(pending.ok()) << pending.status().ToString();
  ASSERT_EQ(pending->size(), 1U);
  EXPECT_EQ(pending->front().host_id, "new-1");
  EXPECT_EQ(pending->front().key_kind, KeyKind::kPkcs11);
  EXPECT_EQ(pending->front().public_key, k->public_key);
  EXPECT_EQ(pending->front().groups, (std::vector<std::string>{"web"}));

  ASSERT_TRUE(db_->ReportApplied(AppliedReport{"web-1", 3, ""}).ok());
  ASSERT_TRUE(db_->ReportApplied(AppliedReport{"db-1", 2, "fleet_db_behind: the head is behind"}).ok());
  ASSERT_TRUE(db_->ReportApplied(AppliedReport{"web-1", 4, ""}).ok());
  Result<std::vector<AppliedReport>> applied = db_->Applied();
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  ASSERT_EQ(applied->size(), 2U);
  EXPECT_EQ(applied->at(0).host_id, "db-1");
  EXPECT_EQ(applied->at(0).seq, 2U);
  EXPECT_EQ(applied->at(0).refusal, "fleet_db_behind: the head is behind");
  EXPECT_EQ(applied->at(1).host_id, "web-1");
  EXPECT_EQ(applied->at(1).seq, 4U);
  EXPECT_EQ(applied->at(1).refusal, "");
}

// Whoever can write the tables must not make a host allocate what they like, nor wedge the
// chain with an entry the writer signed but no host can take.
TEST_F(FleetDbTest, AnOversizedRowIsRefusedUnreadAndTheWriterSignsNothingHostsWouldRefuse) {
  std::unique_ptr<FleetHost> h = Host("web-1");
  EXPECT_TRUE(PullAll(*h, *db_).empty());
  const std::uint64_t next = writer_->chain().head().seq + 1;
  ASSERT_TRUE(pg_.Exec("INSERT INTO sk_fleet_entries (seq, hash, entry) VALUES (" + std::to_string(next) +
                       ", '\\x00'::bytea, decode(repeat('ab', " + std::to_string(kMaxEntryBytes + 1) +
                       "), 'hex')); UPDATE sk_fleet_head SET seq = " + std::to_string(next)));
  // The server sends nothing of it: the row comes back empty.
  Result<std::vector<Bytes>> rows = db_->EntriesAfter(next - 1, 32);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 1U);
  EXPECT_TRUE(rows->front().empty());
  Status refusal;
  EXPECT_TRUE(PullAll(*h, *db_, &refusal).empty());
  EXPECT_EQ(refusal.reason(), "malformed_fleet_entry") << refusal.ToString();
  EXPECT_EQ(h->anchor().seq, next - 1);
  ASSERT_TRUE(pg_.Exec("DELETE FROM sk_fleet_entries WHERE seq = " + std::to_string(next) +
                       "; UPDATE sk_fleet_head SET seq = " + std::to_string(next - 1)));

  // A host record the format cannot carry, or a key that is not a P-256 point, is refused
  // before anything is signed or written.
  const std::uint64_t before = Must(db_->Head()).seq;
  HostRecord bad{"new-1", HostState::kAdmitted, static_cast<KeyKind>(7), keys_["web-1"].public_key, {"web"}};
  EXPECT_EQ(writer_->PutHost(bad).status().reason(), "bad_host_record");
  Bytes off_curve = keys_["web-1"].public_key;
  off_curve[64] ^= 1;
  bad = HostRecord{"new-1", HostState::kAdmitted, KeyKind::kSoftware, off_curve, {"web"}};
  EXPECT_EQ(writer_->PutHost(bad).status().reason(), "bad_recovery_key");
  EXPECT_EQ(Must(db_->Head()).seq, before);
}

// The escrow: the writer reads back what it wrote, only the committed value; a host
// admitted after a path was written, or regrouped into its group, receives it re-issued.
TEST_F(FleetDbTest, AHostThatJoinsAGroupLaterReceivesWhatTheGroupMayRead) {
  std::vector<PlainOp> ops;
  ops.push_back(Put("apps/web/token", {"web"}, "web-token-1"));
  ops.push_back(Put("apps/db/password", {"db"}, "db-password-1"));
  const std::uint64_t seq = Must(writer_->Commit(std::move(ops)));
  EXPECT_EQ(Str(Must(writer_->ReadValue("apps/web/token", 1, seq))), "web-token-1");
  EXPECT_EQ(Must(writer_->Commit(One(Put("apps/web/token", {"web"}, "web-token-2")))), seq + 1);
  EXPECT_EQ(Str(Must(writer_->ReadValue("apps/web/token", 2, seq + 1))), "web-token-2");
  EXPECT_EQ(writer_->ReadValue("apps/web/token", 2, seq).status().reason(), "not_found");

  // late-1 joins web after both were written: its own pull of the chain brings nothing...
  Admit("late-1", {"web"});
  std::unique_ptr<FleetHost> late = Host("late-1");
  EXPECT_TRUE(PullAll(*late, *db_).empty());
  // ...until the writer re-issues what web may read (one path; two batches of one would do too).
  std::vector<std::pair<std::size_t, std::size_t>> progress;
  EXPECT_EQ(
      Must(writer_->Reissue(
          "late-1", {}, 1, [&](std::size_t done, std::size_t total) { progress.emplace_back(done, total); })),
      1U);
  EXPECT_EQ(progress, (std::vector<std::pair<std::size_t, std::size_t>>{{1, 1}}));
  EXPECT_EQ(PullAll(*late, *db_), (std::map<std::string, std::string>{{"apps/web/token", "web-token-2"}}));
  // Regrouped into db too, it receives db's path, and nothing of web's again.
  HostRecord regrouped = writer_->chain().hosts().at("late-1");
  regrouped.groups = {"db", "web"};
  ASSERT_TRUE(writer_->PutHost(regrouped).ok());
  EXPECT_EQ(Must(writer_->Reissue("late-1", {"web"}, 256, nullptr)), 1U);
  EXPECT_EQ(PullAll(*late, *db_),
            (std::map<std::string, std::string>{{"apps/db/password", "db-password-1"}}));

  // An escrow wrap someone substituted in the database opens to no committed key.
  std::unique_ptr<RecoverySealer> sealer =
      Must(RecoverySealer::Create(Must(RecoveryPublicKey(Must(EscrowKeyOf(CopyKey(signer_)))))));
  Bytes forged = *sealer->Seal(SecretBytes(32), WrapAad(kEscrowHost, "apps/db/password", 1));
  ASSERT_TRUE(pg_.Exec("UPDATE sk_fleet_wraps SET wrap = '\\x" + HexEncode(forged) +
                       "'::bytea WHERE host_id = '@escrow' AND path = 'apps/db/password' AND version = 1"));
  EXPECT_EQ(writer_->ReadValue("apps/db/password", 1, seq).status().reason(), "fleet_wrap_invalid");
}

TEST_F(FleetDbTest, ARestoredSnapshotPutsItsPathsBackAsOneEntryEveryHostApplies) {
  ASSERT_TRUE(writer_->Commit(One(Put("apps/web/token", {"web"}, "release-1"))).ok());
  ASSERT_TRUE(writer_->Commit(One(Put("apps/db/password", {"db"}, "db-1"))).ok());
  FleetSnapshot snap = Must(writer_->Snapshot("rel-1", "apps/web"));
  ASSERT_EQ(snap.paths.size(), 1U);
  EXPECT_EQ(writer_->Snapshot("rel-1", "apps").status().reason(), "snapshot_exists");
  std::vector<PlainOp> release2;
  release2.push_back(Put("apps/web/token", {"web"}, "release-2"));
  release2.push_back(Put("apps/web/new", {"web"}, "only-in-2"));
  release2.push_back(Put("apps/db/password", {"db"}, "db-2"));
  ASSERT_TRUE(writer_->Commit(std::move(release2)).ok());
  std::unique_ptr<FleetHost> web = Host("web-1");
  ASSERT_EQ(PullAll(*web, *db_)["apps/web/token"], "release-2");

  FleetWriter::Restored r = Must(writer_->Restore("rel-1"));
  EXPECT_EQ(r.put, 1U);
  EXPECT_EQ(r.deleted, 1U);
  EXPECT_EQ(r.unchanged, 0U);
  EXPECT_EQ(PullAll(*web, *db_), (std::map<std::string, std::string>{{"apps/web/new", "(deleted)"},
                                                                     {"apps/web/token", "release-1"}}));
  // Outside the prefix nothing moved; a second restore has nothing to do.
  std::unique_ptr<FleetHost> db1 = Host("db-1");
  EXPECT_EQ(PullAll(*db1, *db_)["apps/db/password"], "db-2");
  EXPECT_EQ(Must(writer_->Restore("rel-1")).seq, 0U);

  // A snapshot changed in the database no longer verifies: nothing is written.
  const std::uint64_t head = writer_->chain().head().seq;
  ASSERT_TRUE(
      pg_.Exec("UPDATE sk_fleet_snapshots SET body = overlay(body placing '\\x00'::bytea from "
               "octet_length(body) for 1) WHERE name = 'rel-1'"));
  EXPECT_EQ(writer_->Restore("rel-1").status().reason(), "bad_signature");
  EXPECT_EQ(writer_->Restore("no-such").status().reason(), "not_found");
  EXPECT_EQ(Must(db_->Head()).seq, head);
}

TEST_F(FleetDbTest, ASchemaVersionOneIsUpgradedAndAnUnknownOneRefused) {
  ASSERT_TRUE(pg_.Exec("UPDATE sk_fleet_meta SET value = '1' WHERE key = 'schema_version'"));
  ASSERT_TRUE(db_->Migrate().ok());
  EXPECT_EQ(pg_.Query("SELECT value FROM sk_fleet_meta WHERE key = 'schema_version'"),
            (std::vector<std::vector<std::string>>{{"2"}}));
  ASSERT_TRUE(pg_.Exec("UPDATE sk_fleet_meta SET value = '3' WHERE key = 'schema_version'"));
  EXPECT_EQ(db_->Migrate().reason(), "fleet_schema_unknown");
}

}  // namespace
}  // namespace sk::fleet
