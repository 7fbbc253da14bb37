// The secret service end to end on a real SQLite file and a real SoftHSM2 token:
// versions and every op, transactions, idempotency, snapshots, floors, expiry, pruning,
// rotation, group commit, restarts, and the replay of an old copy of the store.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "agent/journal/journal_format.h"
#include "agent/store/fault_vfs.h"

#include "tests/agent/service_fixture.h"

namespace sk::secrets {
namespace {

using testing::PutOp;
using testing::ServiceHarness;

Op MakeOp(Op::Type t, const std::string& path, std::optional<std::uint64_t> version = std::nullopt) {
  Op op;
  op.type = t;
  op.path = path;
  op.version = version;
  return op;
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(h_.Open().ok()); }
  SecretService& svc() { return h_.svc(); }
  ServiceHarness h_{"svc"};
};

TEST_F(ServiceTest, PutCreatesVersionsAndGetReadsLatestOrGiven) {
  EXPECT_EQ(h_.PutText("db/password", "one"), 1u);
  EXPECT_EQ(h_.PutText("db/password", "two"), 2u);
  EXPECT_EQ(h_.PutText("db/password", "three"), 3u);
  EXPECT_EQ(*h_.GetText("db/password"), "three");
  EXPECT_EQ(*h_.GetText("db/password", 1), "one");
  EXPECT_EQ(h_.GetText("db/password", 4).status().code(), Code::kNotFound);
  EXPECT_EQ(h_.GetText("db/other").status().code(), Code::kNotFound);
  auto versions = svc().Versions("db/password");
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->size(), 3u);
  for (const auto& v : *versions) {
    EXPECT_TRUE(v.verifies) << v.version << " " << v.reason;
    EXPECT_EQ(v.state, "live");
    EXPECT_EQ(v.kind, "put");
  }
}

TEST_F(ServiceTest, ListShowsPathsUnderAPrefixWithoutValues) {
  h_.PutText("app/a", "1");
  h_.PutText("app/b/c", "2");
  h_.PutText("apple", "3");
  h_.PutText("zzz", "4");
  auto all = svc().List("", 100);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 4u);
  auto app = svc().List("app", 100);
  ASSERT_TRUE(app.ok());
  ASSERT_EQ(app->size(), 2u) << "a prefix matches whole segments: 'app' is not a prefix of 'apple'";
  EXPECT_EQ((*app)[0].path, "app/a");
  EXPECT_EQ((*app)[1].path, "app/b/c");
  EXPECT_EQ(svc().List("app/", 100)->size(), 2u);
  EXPECT_EQ(svc().List("", 2)->size(), 2u) << "the limit holds";
  EXPECT_EQ(svc().List("bad//prefix", 10).status().reason(), "bad_path");
}

TEST_F(ServiceTest, DeleteUndeleteAndDestroyChangeOnlyTheirVersion) {
  h_.PutText("k", "v1");
  h_.PutText("k", "v2");
  auto del = svc().Transact(
      [] {
        std::vector<Op> ops;
        ops.push_back(MakeOp(Op::Type::kDelete, "k"));
        return ops;
      }(),
      "", h_.actor);
  ASSERT_TRUE(del.ok()) << del.status().ToString();
  EXPECT_EQ(del->results[0].version, 2u);
  EXPECT_EQ(h_.GetText("k").status().reason(), "deleted") << "reads never fall back to an older version";
  EXPECT_EQ(*h_.GetText("k", 1), "v1");
  std::vector<Op> undelete;
  undelete.push_back(MakeOp(Op::Type::kUndelete, "k", 2));
  ASSERT_TRUE(svc().Transact(std::move(undelete), "", h_.actor).ok());
  EXPECT_EQ(*h_.GetText("k"), "v2");
  std::vector<Op> destroy;
  destroy.push_back(MakeOp(Op::Type::kDestroy, "k", 1));
  ASSERT_TRUE(svc().Transact(std::move(destroy), "", h_.actor).ok());
  EXPECT_EQ(h_.GetText("k", 1).status().reason(), "destroyed");
  std::vector<Op> undelete_destroyed;
  undelete_destroyed.push_back(MakeOp(Op::Type::kUndelete, "k", 1));
  EXPECT_EQ(svc().Transact(std::move(undelete_destroyed), "", h_.actor).status().reason(), "destroyed");
  // The destroyed version's bytes are gone from the store; its sealed entry stays.
  h_.Close();
  EXPECT_TRUE(h_.Blob("SELECT ciphertext FROM versions WHERE path = 'k' AND version = 1").empty());
  EXPECT_TRUE(h_.Blob("SELECT wrapped_dek FROM versions WHERE path = 'k' AND version = 1").empty());
  EXPECT_NE(h_.EntrySeqOf("k", 1), 0u);
  ASSERT_TRUE(h_.Open().ok());
  auto versions = svc().Versions("k");
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ((*versions)[0].state, "destroyed");
  EXPECT_FALSE((*versions)[0].verifies);
  EXPECT_EQ((*versions)[0].reason, "destroyed");
}

TEST_F(ServiceTest, RollbackWritesANewVersionWithTheOldValue) {
  h_.PutText("k", "good");
  h_.PutText("k", "bad");
  auto r = Rollback(svc(), "k", 1, h_.actor);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->results[0].version, 3u);
  EXPECT_EQ(*h_.GetText("k"), "good");
  auto versions = svc().Versions("k");
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ((*versions)[2].kind, "rollback");
  EXPECT_EQ((*versions)[2].from_version, 1u);
  EXPECT_EQ(Rollback(svc(), "k", 1, h_.actor, /*cas=*/2).status().reason(), "cas_mismatch");
  EXPECT_TRUE(Rollback(svc(), "k", 2, h_.actor, /*cas=*/3).ok());
  EXPECT_EQ(*h_.GetText("k"), "bad");
}

TEST_F(ServiceTest, RollbackToADestroyedVersionIsRefused) {
  h_.PutText("k", "v1");
  h_.PutText("k", "v2");
  std::vector<Op> destroy;
  destroy.push_back(MakeOp(Op::Type::kDestroy, "k", 1));
  ASSERT_TRUE(svc().Transact(std::move(destroy), "", h_.actor).ok());
  auto r = Rollback(svc(), "k", 1, h_.actor);
  EXPECT_EQ(r.status().code(), Code::kConflict);
  EXPECT_EQ(r.status().reason(), "destroyed");
  EXPECT_EQ(*h_.GetText("k"), "v2") << "nothing changed";
}

TEST_F(ServiceTest, FloorsForbidGoingBackBelowThemAndOnlyGoUp) {
  for (int i = 1; i <= 4; ++i) h_.PutText("k", "v" + std::to_string(i));
  Op floor = MakeOp(Op::Type::kFloor, "k");
  floor.floor = 3;
  std::vector<Op> ops;
  ops.push_back(std::move(floor));
  ASSERT_TRUE(svc().Transact(std::move(ops), "", h_.actor).ok());
  EXPECT_EQ(Rollback(svc(), "k", 2, h_.actor).status().reason(), "below_floor");
  EXPECT_TRUE(Rollback(svc(), "k", 3, h_.actor).ok());
  Op lower = MakeOp(Op::Type::kFloor, "k");
  lower.floor = 2;
  std::vector<Op> l;
  l.push_back(std::move(lower));
  EXPECT_EQ(svc().Transact(std::move(l), "", h_.actor).status().reason(), "floor_decrease");
  Op above = MakeOp(Op::Type::kFloor, "k");
  above.floor = 99;
  std::vector<Op> a;
  a.push_back(std::move(above));
  EXPECT_EQ(svc().Transact(std::move(a), "", h_.actor).status().reason(), "floor_above_head");
  // Floors survive a restart (they are journaled).
  ASSERT_TRUE(h_.Restart().ok());
  EXPECT_EQ(Rollback(svc(), "k", 1, h_.actor).status().reason(), "below_floor");
}

TEST_F(ServiceTest, TransactionIsAllOrNothingWhenTheThirdOfFiveOpsFails) {
  h_.PutText("t/a", "a1");
  h_.PutText("t/b", "b1");
  std::vector<Op> ops;
  ops.push_back(PutOp("t/a", "a2"));
  ops.push_back(PutOp("t/b", "b2"));
  Op stale = PutOp("t/c", "c1");
  stale.cas = 7;  // t/c does not exist: head is 0, so this fails
  ops.push_back(std::move(stale));
  ops.push_back(PutOp("t/d", "d1"));
  ops.push_back(MakeOp(Op::Type::kDelete, "t/a", 1));
  auto before = svc().Report().head_seq;
  auto r = svc().Transact(std::move(ops), "", h_.actor);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().reason(), "cas_mismatch");
  EXPECT_NE(r.status().message().find("op 3 of 5"), std::string_view::npos) << r.status().message();
  EXPECT_EQ(*h_.GetText("t/a"), "a1");
  EXPECT_EQ(*h_.GetText("t/b"), "b1");
  EXPECT_EQ(h_.GetText("t/d").status().code(), Code::kNotFound);
  EXPECT_EQ(svc().Report().head_seq, before) << "no journal entry was written";
  ASSERT_TRUE(h_.Restart().ok());
  EXPECT_EQ(*h_.GetText("t/a"), "a1");
  EXPECT_EQ(h_.GetText("t/d").status().code(), Code::kNotFound);
  EXPECT_EQ(svc().Report().head_seq, before);
}

TEST_F(ServiceTest, IdempotentRetryReturnsTheFirstResultAndAppliesNothingTwice) {
  auto make = [] {
    std::vector<Op> ops;
    ops.push_back(PutOp("i/a", "x"));
    ops.push_back(PutOp("i/b", "y"));
    return ops;
  };
  auto first = svc().Transact(make(), "deploy-42", h_.actor);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_FALSE(first->replayed);
  auto second = svc().Transact(make(), "deploy-42", h_.actor);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->replayed);
  EXPECT_EQ(second->txn_id, first->txn_id);
  EXPECT_EQ(second->results.size(), 2u);
  EXPECT_EQ(second->results[1].version, 1u);
  // Also across a restart (the key is stored in the same store transaction).
  ASSERT_TRUE(h_.Restart().ok());
  auto third = svc().Transact(make(), "deploy-42", h_.actor);
  ASSERT_TRUE(third.ok());
  EXPECT_TRUE(third->replayed);
  auto versions = svc().Versions("i/a");
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ(versions->size(), 1u) << "applied once";
  std::vector<Op> different;
  different.push_back(PutOp("i/a", "other"));
  EXPECT_EQ(svc().Transact(std::move(different), "deploy-42", h_.actor).status().reason(),
            "idempotency_key_reused");
}

TEST_F(ServiceTest, ConcurrentIdenticalIdempotentRequestsApplyOnce) {
  std::atomic<int> applied{0}, replayed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      std::vector<Op> ops;
      ops.push_back(PutOp("same/key", "v"));
      auto r = svc().Transact(std::move(ops), "once", h_.actor);
      if (r.ok()) (r->replayed ? replayed : applied)++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(applied.load(), 1);
  EXPECT_EQ(svc().Versions("same/key")->size(), 1u);
}

TEST_F(ServiceTest, SnapshotCapturesLiveHeadsAndRestoresThemAtomically) {
  h_.PutText("rel/a", "a1");
  h_.PutText("rel/b", "b1");
  h_.PutText("other/x", "x1");
  auto snap = svc().CreateSnapshot("v1.0", "rel/", h_.actor);
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(svc().CreateSnapshot("v1.0", "rel/", h_.actor).status().reason(), "snapshot_exists");
  h_.PutText("rel/a", "a2");
  h_.PutText("rel/b", "b2");
  h_.PutText("other/x", "x2");
  auto info = svc().GetSnapshot("v1.0");
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->verifies);
  EXPECT_EQ(info->versions.size(), 2u);
  EXPECT_EQ(info->versions.at("rel/a"), 1u);
  auto restored = svc().RestoreSnapshot("v1.0", h_.actor);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_TRUE(restored->applied);
  EXPECT_EQ(*h_.GetText("rel/a"), "a1");
  EXPECT_EQ(*h_.GetText("rel/b"), "b1");
  EXPECT_EQ(*h_.GetText("other/x"), "x2") << "outside the prefix: untouched";
  EXPECT_EQ(svc().Versions("rel/a")->back().kind, "restore");
  // Restoring again changes nothing: each head is already a copy of its target.
  const std::size_t versions_before = svc().Versions("rel/a")->size();
  auto again = svc().RestoreSnapshot("v1.0", h_.actor);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(again->result.results.empty());
  EXPECT_EQ(svc().Versions("rel/a")->size(), versions_before);
  EXPECT_EQ(svc().GetSnapshot("missing").status().code(), Code::kNotFound);
}

TEST_F(ServiceTest, ExpiredVersionsAreRefusedWithTheirOwnError) {
  std::vector<Op> ops;
  Op op = PutOp("temp/token", "t");
  op.expires_in_s = 1;
  ops.push_back(std::move(op));
  ASSERT_TRUE(svc().Transact(std::move(ops), "", h_.actor).ok());
  EXPECT_EQ(*h_.GetText("temp/token"), "t");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  auto r = h_.GetText("temp/token");
  EXPECT_EQ(r.status().code(), Code::kExpired);
  EXPECT_EQ(r.status().reason(), "expired");
  h_.PutText("temp/token", "fresh");
  EXPECT_EQ(Rollback(svc(), "temp/token", 1, h_.actor).status().reason(), "expired");
}

TEST_F(ServiceTest, MaxVersionsDestroysTheOldestAndJournalsIt) {
  std::vector<Op> ops;
  Op op = PutOp("rot/key", "v1");
  op.max_versions = 2;
  ops.push_back(std::move(op));
  ASSERT_TRUE(svc().Transact(std::move(ops), "", h_.actor).ok());
  h_.PutText("rot/key", "v2");
  h_.PutText("rot/key", "v3");
  h_.PutText("rot/key", "v4");
  auto versions = svc().Versions("rot/key");
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->size(), 4u);
  EXPECT_EQ((*versions)[0].state, "destroyed");
  EXPECT_EQ((*versions)[1].state, "destroyed");
  EXPECT_EQ((*versions)[2].state, "live");
  EXPECT_EQ((*versions)[3].state, "live");
  EXPECT_EQ(*h_.GetText("rot/key", 3), "v3");
  ASSERT_TRUE(h_.Restart().ok());
  EXPECT_EQ(svc().Versions("rot/key")->at(0).state, "destroyed") << "the prune is in the journal";
  EXPECT_EQ(*h_.GetText("rot/key"), "v4");
}

TEST_F(ServiceTest, LoweringMaxVersionsPrunesPastAnExplicitlyDestroyedVersion) {
  std::vector<Op> first;
  Op op = PutOp("mv/key", "v1");
  op.max_versions = 3;
  first.push_back(std::move(op));
  ASSERT_TRUE(svc().Transact(std::move(first), "", h_.actor).ok());
  h_.PutText("mv/key", "v2");
  h_.PutText("mv/key", "v3");
  std::vector<Op> destroy;
  destroy.push_back(MakeOp(Op::Type::kDestroy, "mv/key", 2));
  ASSERT_TRUE(svc().Transact(std::move(destroy), "", h_.actor).ok());
  h_.PutText("mv/key", "v4");  // live: 1, 3, 4 (three, the limit)
  std::vector<Op> lower;
  Op op5 = PutOp("mv/key", "v5");
  op5.max_versions = 2;  // keep 4 and 5: 3 and 1 go, the destroyed 2 between them notwithstanding
  lower.push_back(std::move(op5));
  ASSERT_TRUE(svc().Transact(std::move(lower), "", h_.actor).ok());
  auto versions = svc().Versions("mv/key");
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->size(), 5u);
  const char* want[] = {"destroyed", "destroyed", "destroyed", "live", "live"};
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ((*versions)[i].state, want[i]) << "version " << i + 1;
  ASSERT_TRUE(h_.Restart().ok());
  EXPECT_EQ(svc().Versions("mv/key")->at(0).state, "destroyed") << "the prune is in the journal";
  EXPECT_TRUE(svc().VerifyAll()->ok);
}

TEST_F(ServiceTest, AGuardWithoutDestroyRefusesAPruneInsideTheBatchAndChangesNothing) {
  std::vector<Op> first;
  Op op = PutOp("g/key", "v1");
  op.max_versions = 2;
  first.push_back(std::move(op));
  ASSERT_TRUE(svc().Transact(std::move(first), "", h_.actor).ok());
  h_.PutText("g/key", "v2");
  const std::uint64_t head = svc().Report().head_seq;
  std::vector<Op> third;
  Op put = PutOp("g/key", "v3");
  put.guard.may_prune = false;  // the writer has no destroy
  third.push_back(std::move(put));
  auto refused = svc().Transact(std::move(third), "", h_.actor);
  EXPECT_EQ(refused.status().code(), Code::kForbidden);
  EXPECT_NE(std::string(refused.status().message()).find("needs destroy on g/key"), std::string::npos)
      << refused.status().ToString();
  EXPECT_EQ(svc().Report().head_seq, head) << "nothing was written";
  EXPECT_EQ(*h_.GetText("g/key", 1), "v1");

  std::vector<Op> lower;
  Op put4 = PutOp("g/key", "v3");
  put4.max_versions = 1;
  put4.guard.may_lower_retention = false;  // the writer has no admin
  lower.push_back(std::move(put4));
  EXPECT_EQ(svc().Transact(std::move(lower), "", h_.actor).status().code(), Code::kForbidden);

  // The labels the guard sees are the head's and the written version's, in the batch.
  std::vector<Op> labelled;
  Op put5 = PutOp("g/key", "v3");
  put5.labels = {{"env", "prod"}};
  put5.guard.may_prune = true;
  put5.guard.labels = [](const Labels* current, const Labels& written) {
    if (current == nullptr || !current->empty())
      return Status(Code::kInternal, "x", "the head has no labels");
    return written.at("env") == "prod" ? Status(Code::kForbidden, "forbidden", "prod") : OkStatus();
  };
  labelled.push_back(std::move(put5));
  EXPECT_EQ(svc().Transact(std::move(labelled), "", h_.actor).status().code(), Code::kForbidden);
  EXPECT_EQ(svc().Report().head_seq, head);
}

TEST_F(ServiceTest, APruneMovesTheAnchorAtOnceLikeADestroy) {
  std::vector<Op> first;
  Op op = PutOp("p/key", "v1");
  op.max_versions = 1;
  first.push_back(std::move(op));
  ASSERT_TRUE(svc().Transact(std::move(first), "", h_.actor).ok());
  h_.PutText("p/other", "x");  // an ordinary put waits for the epoch (60 s)
  ServiceStatus before = svc().Report();
  ASSERT_LT(before.anchor.seq, before.head_seq);
  h_.PutText("p/key", "v2");  // prunes version 1
  ServiceStatus after = svc().Report();
  EXPECT_EQ(after.anchor.seq, after.head_seq) << "the prune is anchored with its commit";
}

TEST_F(ServiceTest, IdempotencyKeysAreScopedByTheActor) {
  Actor alice("uid=1 alice", "uid=1 unit=");
  Actor bob("uid=2 bob", "uid=2 unit=");
  auto ops = [](const std::string& value) {
    std::vector<Op> v;
    v.push_back(PutOp("idem/k", value));
    return v;
  };
  auto a1 = svc().Transact(ops("a"), "k1", alice);
  ASSERT_TRUE(a1.ok());
  auto b1 = svc().Transact(ops("b"), "k1", bob);
  ASSERT_TRUE(b1.ok()) << "another scope's key: " << b1.status().ToString();
  EXPECT_FALSE(b1->replayed);
  auto b2 = svc().Transact(ops("a"), "k1", bob);
  EXPECT_EQ(b2.status().reason(), "idempotency_key_reused") << "bob's own key now";
  auto a2 = svc().Transact(ops("a"), "k1", alice);
  ASSERT_TRUE(a2.ok());
  EXPECT_TRUE(a2->replayed);
  EXPECT_EQ(a2->txn_id, a1->txn_id);
}

TEST_F(ServiceTest, ListContinuesAfterAPathAndVersionLabelsAreKeptPerVersion) {
  for (const char* p : {"l/a", "l/b", "l/c", "m/a"}) h_.PutText(p, "x");
  auto page = svc().List("l", 2, "");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 2u);
  auto rest = svc().List("l", 10, page->back().path);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->size(), 1u);
  EXPECT_EQ(rest->at(0).path, "l/c");
  EXPECT_TRUE(svc().List("l", 10, "l/c")->empty());
  EXPECT_TRUE(svc().List("l", 10, "z")->empty()) << "after the prefix's range";
  EXPECT_EQ(svc().List("l", 10, "a")->size(), 3u) << "before the prefix's range";

  std::vector<Op> labelled;
  Op op = PutOp("l/a", "y");
  op.labels = {{"env", "dev"}};
  labelled.push_back(std::move(op));
  ASSERT_TRUE(svc().Transact(std::move(labelled), "", h_.actor).ok());
  h_.PutText("l/a", "z");  // inherits env=dev
  auto labels = svc().VersionLabels("l/a");
  ASSERT_TRUE(labels.ok());
  ASSERT_EQ(labels->size(), 3u);
  EXPECT_TRUE(labels->at(0).empty());
  EXPECT_EQ(labels->at(1).at("env"), "dev");
  EXPECT_EQ(labels->at(2).at("env"), "dev");
  ASSERT_TRUE(h_.Restart().ok());
  EXPECT_EQ(svc().VersionLabels("l/a")->at(1).at("env"), "dev") << "rebuilt from the journal";
  EXPECT_EQ(svc().VersionLabels("missing").status().code(), Code::kNotFound);
}

TEST_F(ServiceTest, VerifyAllWhileCommitsLandReportsNoProblem) {
  h_.Close();
  h_.options.anchor_mode = AnchorMode::kStrict;  // the anchor moves with every batch
  ASSERT_TRUE(h_.Open().ok());
  for (int i = 0; i < 8; ++i) h_.PutText("cv/" + std::to_string(i), "0");
  ASSERT_TRUE(svc().CreateSnapshot("cv", "cv", h_.actor).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> writes{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int n = 1; !stop; ++n) {
        std::string path = "cv/" + std::to_string((t * 2 + n) % 8);
        if (n % 7 == 0) {
          (void)Rollback(svc(), path, 1, h_.actor);
        } else if (secrets::Put(svc(), path, AsBytes(std::to_string(n)), h_.actor).ok()) {
          ++writes;
        }
      }
    });
  }
  int runs = 0;
  for (; runs < 15; ++runs) {
    auto report = svc().VerifyAll();
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->ok) << "run " << runs << ": "
                            << (report->problems.empty()
                                    ? ""
                                    : report->problems[0].reason + " " + report->problems[0].detail);
    EXPECT_NE(report->anchor_state, "replay");
    if (!report->ok) break;
  }
  stop = true;
  for (auto& w : writers) w.join();
  EXPECT_GT(writes.load(), runs) << "commits landed while verification ran";
}

TEST_F(ServiceTest, BadInputIsRefusedWithClearReasons) {
  EXPECT_EQ(secrets::Put(svc(), "../etc/passwd", AsBytes("x"), h_.actor).status().reason(), "bad_path");
  EXPECT_EQ(secrets::Put(svc(), std::string(300, 'a'), AsBytes("x"), h_.actor).status().reason(), "bad_path");
  std::string big(64 * 1024 + 1, 'x');
  auto r = secrets::Put(svc(), "big", AsBytes(big), h_.actor);
  EXPECT_EQ(r.status().code(), Code::kTooLarge);
  EXPECT_EQ(svc().Transact({}, "", h_.actor).status().reason(), "bad_request");
  std::vector<Op> labels;
  Op op = PutOp("l", "x");
  op.labels["bad key!"] = "v";
  labels.push_back(std::move(op));
  EXPECT_EQ(svc().Transact(std::move(labels), "", h_.actor).status().reason(), "bad_labels");
}

TEST_F(ServiceTest, LabelsStayWithTheSecretUntilReplaced) {
  std::vector<Op> ops;
  Op op = PutOp("lab/k", "1");
  op.labels = {{"env", "prod"}, {"team", "db"}};
  ops.push_back(std::move(op));
  ASSERT_TRUE(svc().Transact(std::move(ops), "", h_.actor).ok());
  h_.PutText("lab/k", "2");
  auto labels = svc().PathLabels("lab/k");
  ASSERT_TRUE(labels.ok());
  EXPECT_EQ(labels->at("env"), "prod");
  EXPECT_EQ(svc().Get("lab/k", std::nullopt)->labels.at("team"), "db");
}

TEST_F(ServiceTest, RestartKeepsEverythingAndVerifies) {
  for (int i = 0; i < 20; ++i) h_.PutText("r/" + std::to_string(i % 5), "v" + std::to_string(i));
  ASSERT_TRUE(Rollback(svc(), "r/1", 1, h_.actor).ok());
  auto before = svc().Report();
  ASSERT_TRUE(h_.Restart().ok());
  auto after = svc().Report();
  EXPECT_EQ(after.head_seq, before.head_seq);
  EXPECT_EQ(after.head_hash, before.head_hash);
  EXPECT_EQ(after.anchor.seq, after.head_seq) << "a restart anchors the head";
  EXPECT_EQ(*h_.GetText("r/1"), "v1");
  auto report = svc().VerifyAll();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok) << (report->problems.empty() ? "" : report->problems[0].reason);
  EXPECT_EQ(report->anchor_state, "in_sync");
  EXPECT_EQ(report->versions_checked, 21u);
}

TEST_F(ServiceTest, ConcurrentWritersShareCommits) {
  constexpr int kThreads = 16, kEach = 20;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        auto r = secrets::Put(svc(), "w/" + std::to_string(t), AsBytes(std::to_string(i)), h_.actor);
        if (!r.ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  ServiceStatus s = svc().Report();
  EXPECT_EQ(s.commits, static_cast<std::uint64_t>(kThreads * kEach));
  EXPECT_LT(s.batches, s.commits) << "group commit: concurrent writers share store transactions";
  for (int t = 0; t < kThreads; ++t)
    EXPECT_EQ(svc().Versions("w/" + std::to_string(t))->size(), std::size_t{kEach});
}

TEST_F(ServiceTest, StrictModeAnchorsEveryCommit) {
  h_.Close();
  h_.options.anchor_mode = AnchorMode::kStrict;
  ASSERT_TRUE(h_.Open().ok());
  for (int i = 0; i < 3; ++i) {
    h_.PutText("s", std::to_string(i));
    ServiceStatus s = svc().Report();
    EXPECT_EQ(s.anchor.seq, s.head_seq);
  }
}

TEST_F(ServiceTest, EpochModeAnchorsRollbacksAtOnceAndPutsWithinTheEpoch) {
  h_.Close();
  h_.options.anchor_mode = AnchorMode::kEpoch;
  h_.options.epoch_interval = std::chrono::milliseconds(300);
  ASSERT_TRUE(h_.Open().ok());
  std::uint64_t anchored = svc().Report().anchor.seq;
  h_.PutText("e", "1");
  h_.PutText("e", "2");
  EXPECT_EQ(svc().Report().anchor.seq, anchored) << "puts wait for the epoch";
  ASSERT_TRUE(Rollback(svc(), "e", 1, h_.actor).ok());
  EXPECT_EQ(svc().Report().anchor.seq, svc().Report().head_seq) << "a rollback is anchored at once";
  h_.PutText("e", "4");
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  EXPECT_EQ(svc().Report().anchor.seq, svc().Report().head_seq) << "an idle epoch with writes is anchored";
}

TEST_F(ServiceTest, RotationRewrapsEverythingAndOldGenerationCanBeRetired) {
  h_.PutText("g/a", "a");
  h_.PutText("g/b", "b");
  auto r = svc().Rotate(h_.actor);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->results[0].version, 2u);
  ASSERT_TRUE(h_.backend()->Retire(1).ok());
  EXPECT_EQ(*h_.GetText("g/a"), "a") << "every data key was re-wrapped under generation 2";
  ASSERT_TRUE(h_.Restart().ok());
  EXPECT_EQ(*h_.GetText("g/b"), "b") << "and the journal and audit keys too";
  EXPECT_TRUE(svc().VerifyAll()->ok);
}

TEST_F(ServiceTest, AReplayedOldCopyOfTheStoreIsDetectedAndOnlyRecoverGoesOn) {
  h_.PutText("rp/a", "1");
  h_.Close();
  h_.SaveStoreCopy("t1");  // an attacker's copy at T1
  ASSERT_TRUE(h_.Open().ok());
  h_.PutText("rp/a", "2");
  std::vector<Op> destroy;
  destroy.push_back(MakeOp(Op::Type::kDestroy, "rp/a", 1));  // anchored at once
  ASSERT_TRUE(svc().Transact(std::move(destroy), "", h_.actor).ok());
  h_.Close();
  h_.RestoreStoreCopy("t1");
  Status st = h_.Restart();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kSealed);
  EXPECT_EQ(st.reason(), "replay_detected") << st.ToString();
  EXPECT_NE(st.message().find("recover --accept-rollback"), std::string_view::npos);
  // Only an explicit, journaled acceptance goes on.
  auto recovered = SecretService::AcceptRollback(h_.backend(), h_.options, secrets::Actor{"uid=0 admin"});
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  ASSERT_TRUE(h_.Open().ok());
  EXPECT_EQ(*h_.GetText("rp/a", 1), "1") << "the accepted store is the T1 copy";
  h_.Close();
  EXPECT_EQ(h_.Blob("SELECT entry FROM journal ORDER BY seq DESC LIMIT 1")[9],
            static_cast<std::uint8_t>(journal::Kind::kRecover));
  ASSERT_TRUE(h_.Open().ok());
  EXPECT_EQ(SecretService::AcceptRollback(h_.backend(), h_.options, h_.actor).status().code(),
            Code::kUnavailable)
      << "the store is locked while the service runs";
  h_.Close();
  EXPECT_EQ(SecretService::AcceptRollback(h_.backend(), h_.options, h_.actor).status().reason(),
            "nothing_to_recover");
}

TEST_F(ServiceTest, StrictModeDetectsAReplayOfACopyTakenBeforeOnePlainPut) {
  h_.Close();
  h_.options.anchor_mode = AnchorMode::kStrict;
  ASSERT_TRUE(h_.Open().ok());
  h_.PutText("sr/a", "1");
  h_.Close();
  h_.SaveStoreCopy("t1");
  ASSERT_TRUE(h_.Open().ok());
  h_.PutText("sr/a", "2");  // strict: this plain put moves the anchor (epoch mode would wait)
  h_.Close();
  h_.RestoreStoreCopy("t1");
  Status st = h_.Restart();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kSealed);
  EXPECT_EQ(st.reason(), "replay_detected") << st.ToString();
  auto recovered = SecretService::AcceptRollback(h_.backend(), h_.options, secrets::Actor{"uid=0 admin"});
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  ASSERT_TRUE(h_.Open().ok());
  EXPECT_EQ(*h_.GetText("sr/a"), "1") << "the accepted store is the T1 copy";
  EXPECT_TRUE(svc().VerifyAll()->ok);
}

TEST_F(ServiceTest, AStoreFromAnotherTokenDoesNotOpen) {
  h_.PutText("x", "1");
  h_.CloseBackend();  // a process with the module loaded does not see tokens made later
  testing::SoftHsmToken other(h_.dir().path(), "other");
  auto b = other.Open();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  auto svc2 = SecretService::Open(std::shared_ptr<hsm::KeyBackend>(std::move(b).value()), h_.options);
  ASSERT_FALSE(svc2.ok());
  EXPECT_EQ(svc2.status().reason(), "store_key_invalid") << svc2.status().ToString();
}

TEST_F(ServiceTest, ADeletedStoreIsNotSilentlyReplacedByAnEmptyOne) {
  h_.PutText("x", "1");
  h_.Close();
  std::filesystem::remove(h_.store_path());
  std::filesystem::remove(h_.store_path() + "-wal");
  std::filesystem::remove(h_.store_path() + "-shm");
  Status st = h_.Open();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.reason(), "replay_detected") << st.ToString();
  EXPECT_NE(st.message().find("store is new"), std::string_view::npos) << st.message();
}

}  // namespace
}  // namespace sk::secrets

namespace sk::secrets {
namespace {

// Storage faults through the VFS seam: the commit is reported failed, nothing
// half-written is ever visible, and after a restart the journal verifies.
class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store::FaultVfs().Clear();
    h_.options.vfs = store::kFaultVfsName;
    ASSERT_TRUE(h_.Open().ok());
    h_.PutText("f/a", "a1");
  }
  void TearDown() override { store::FaultVfs().Clear(); }
  testing::ServiceHarness h_{"fault"};
};

Result<TxnResult> TwoPathTxn(SecretService& s, const std::string& value, const Actor& actor) {
  std::vector<Op> ops;
  ops.push_back(PutOp("f/a", value));
  ops.push_back(PutOp("f/b", value));
  return s.Transact(std::move(ops), "", actor);
}

TEST_F(FaultTest, FailedFsyncReportsTheCommitFailedAndShowsNothingHalfWritten) {
  store::FaultVfs().fail_syncs = 1;
  auto r = TwoPathTxn(h_.svc(), "a2", h_.actor);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().reason(), "store_io_error") << r.status().ToString();
  EXPECT_EQ(*h_.GetText("f/a"), "a1") << "readers never see a failed commit";
  EXPECT_EQ(h_.GetText("f/b").status().code(), Code::kNotFound);
  auto again = secrets::Put(h_.svc(), "f/c", AsBytes("x"), h_.actor);
  EXPECT_EQ(again.status().reason(), "store_failed")
      << "after an fsync error writes are fenced until restart";
  store::FaultVfs().Clear();
  ASSERT_TRUE(h_.Restart().ok());
  // Whether the bytes reached the disk is unknowable after a failed fsync: the whole
  // transaction or none of it, never a part.
  auto a = h_.GetText("f/a");
  auto b = h_.GetText("f/b");
  ASSERT_TRUE(a.ok());
  if (*a == "a2") {
    EXPECT_EQ(*b, "a2");
  } else {
    EXPECT_EQ(*a, "a1");
    EXPECT_FALSE(b.ok());
  }
  EXPECT_TRUE(h_.svc().VerifyAll()->ok);
  EXPECT_TRUE(secrets::Put(h_.svc(), "f/c", AsBytes("x"), h_.actor).ok());
}

TEST_F(FaultTest, ShortWriteReportsTheCommitFailedAndRecoveryDropsIt) {
  store::FaultVfs().short_writes = 1;
  auto r = TwoPathTxn(h_.svc(), "a2", h_.actor);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(*h_.GetText("f/a"), "a1");
  store::FaultVfs().Clear();
  ASSERT_TRUE(h_.Restart().ok());
  EXPECT_EQ(*h_.GetText("f/a"), "a1") << "a torn commit never becomes visible";
  EXPECT_EQ(h_.GetText("f/b").status().code(), Code::kNotFound);
  EXPECT_TRUE(h_.svc().VerifyAll()->ok);
}

TEST_F(FaultTest, FullDiskReportsTheCommitFailed) {
  store::FaultVfs().fail_writes = 100000;
  auto r = TwoPathTxn(h_.svc(), "a2", h_.actor);
  store::FaultVfs().Clear();
  ASSERT_FALSE(r.ok());
  ASSERT_TRUE(h_.Restart().ok());
  EXPECT_EQ(*h_.GetText("f/a"), "a1");
  EXPECT_TRUE(h_.svc().VerifyAll()->ok);
}

}  // namespace
}  // namespace sk::secrets

namespace sk::secrets {
namespace {

// The real SoftHSM2 backend with one fault-injection seam: AdvanceAnchor can be made to
// fail (the token unreachable for a moment), everything else goes straight through.
class FlakyAnchor final : public hsm::KeyBackend {
 public:
  explicit FlakyAnchor(std::shared_ptr<hsm::KeyBackend> real) : real_(std::move(real)) {}
  Result<Bytes> Wrap(const SecretBytes& key, ByteView aad) override { return real_->Wrap(key, aad); }
  Result<SecretBytes> Unwrap(ByteView blob, ByteView aad) override { return real_->Unwrap(blob, aad); }
  Result<hsm::Anchor> ReadAnchor() override { return real_->ReadAnchor(); }
  Result<hsm::Anchor> AdvanceAnchor(std::uint64_t seq, const Digest& hash) override {
    if (fail) return Status(Code::kUnavailable, "backend_unavailable", "injected: the token is unreachable");
    return real_->AdvanceAnchor(seq, hash);
  }
  hsm::BackendInfo Info() const override { return real_->Info(); }
  Result<std::uint32_t> Rotate() override { return real_->Rotate(); }
  Status Retire(std::uint32_t generation) override { return real_->Retire(generation); }
  std::atomic<bool> fail{false};

 private:
  std::shared_ptr<hsm::KeyBackend> real_;
};

class AnchorFaultTest : public ::testing::TestWithParam<AnchorMode> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(h_.Open().ok());  // creates the store and opens the real backend
    h_.Close();
    flaky_ = std::make_shared<FlakyAnchor>(h_.backend());
    ServiceOptions o = h_.options;
    o.anchor_mode = GetParam();
    o.epoch_interval = std::chrono::milliseconds(600'000);  // the epoch timer never fires here
    auto svc = SecretService::Open(flaky_, o);
    ASSERT_TRUE(svc.ok()) << svc.status().ToString();
    svc_ = std::move(svc).value();
  }
  testing::ServiceHarness h_{"anchorfault"};
  std::shared_ptr<FlakyAnchor> flaky_;
  std::unique_ptr<SecretService> svc_;
};

TEST_P(AnchorFaultTest, AFailedAnchorAdvanceIsRetriedByTheNextCommit) {
  ASSERT_TRUE(secrets::Put(*svc_, "af/k", AsBytes("1"), h_.actor).ok());
  flaky_->fail = true;
  auto r = Rollback(*svc_, "af/k", 1, h_.actor);  // anchored at once in either mode
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(r.status().reason(), "anchor_unavailable");
  EXPECT_NE(r.status().message().find("next commit"), std::string_view::npos) << r.status().message();
  ServiceStatus behind = svc_->Report();
  EXPECT_LT(behind.anchor.seq, behind.head_seq) << "the rollback is durable, its anchor is not";
  flaky_->fail = false;
  ASSERT_TRUE(secrets::Put(*svc_, "af/k", AsBytes("3"), h_.actor).ok());
  ServiceStatus after = svc_->Report();
  EXPECT_EQ(after.anchor.seq, after.head_seq) << "the next commit anchors what the failed one could not";
  auto hw = flaky_->ReadAnchor();
  ASSERT_TRUE(hw.ok());
  EXPECT_EQ(hw->seq, after.head_seq);
}

INSTANTIATE_TEST_SUITE_P(Modes, AnchorFaultTest, ::testing::Values(AnchorMode::kStrict, AnchorMode::kEpoch),
                         [](const ::testing::TestParamInfo<AnchorMode>& i) {
                           return std::string(AnchorModeName(i.param));
                         });

}  // namespace
}  // namespace sk::secrets
