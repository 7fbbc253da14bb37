// `sealkeep txn` and `sealkeep snapshot create|show|restore` against a real agent.
#include <nlohmann/json.hpp>

#include "tests/cli/cli_test_util.h"

namespace sk::testing {
namespace {

using nlohmann::json;
using CliTxn = CliTest;

TEST_F(CliTxn, TxnFromAFileAppliesEveryOp) {
  Put("t/a", "a1");
  WriteFile(
      dir_.Join("txn.json"),
      R"({"ops":[{"op":"put","path":"t/a","value":"a2","cas":1},{"op":"put","path":"t/b","value_b64":"AAEC"},)"
      R"({"op":"check","path":"t/c","version":0}]})");
  CliRun r = Run("txn " + Quote(dir_.Join("txn.json")));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("3 ops applied"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("put t/a: version 2"), std::string::npos) << r.out;
  EXPECT_EQ(Get("t/a"), "a2");
  EXPECT_EQ(Get("t/b"), std::string("\0\1\2", 3));
}

TEST_F(CliTxn, AFailingOpChangesNothing) {
  Put("t/a", "a1");
  std::string ops =
      R"({"ops":[{"op":"put","path":"t/new","value":"n"},{"op":"put","path":"t/a","value":"x"},)"
      R"({"op":"check","path":"t/a","version":7}]})";
  CliRun r = Run("txn -", ops);  // from stdin
  EXPECT_EQ(r.status, 4) << r.out << r.err;
  EXPECT_NE(r.err.find("op 3 of 3"), std::string::npos) << r.err;
  EXPECT_EQ(Run("get t/new").status, 3);
  EXPECT_EQ(Get("t/a"), "a1");
  CliRun bad = Run("txn -", "{\"ops\": [");
  EXPECT_EQ(bad.status, 2) << bad.err;
  EXPECT_EQ(Run("txn " + Quote(dir_.Join("missing.json"))).status, 2);
}

TEST_F(CliTxn, AnIdempotencyKeyRetryAppliesNothingTwice) {
  std::string ops = R"({"ops":[{"op":"put","path":"idem/x","value":"once"}]})";
  CliRun first = Run("txn - --idempotency-key deploy-42", ops);
  ASSERT_EQ(first.status, 0) << first.err;
  CliRun retry = Run("txn - --idempotency-key deploy-42", ops);
  ASSERT_EQ(retry.status, 0) << retry.err;
  EXPECT_NE(retry.out.find("replayed"), std::string::npos) << retry.out;
  json j = json::parse(Run("--json txn - --idempotency-key deploy-42", ops).out);
  EXPECT_EQ(j["replayed"], true);
  json v = json::parse(Run("--json versions idem/x").out);
  EXPECT_EQ(v["versions"].size(), 1u);
  CliRun reused =
      Run("txn - --idempotency-key deploy-42", R"({"ops":[{"op":"put","path":"idem/x","value":"2"}]})");
  EXPECT_EQ(reused.status, 4);
  EXPECT_NE(reused.err.find("idempotency_key_reused"), std::string::npos) << reused.err;
}

TEST_F(CliTxn, SnapshotCreateShowAndRestore) {
  Put("rel/a", "a1");
  Put("rel/b", "b1");
  Put("unrelated/c", "c1");
  CliRun create = Run("snapshot create r1 --prefix rel");
  ASSERT_EQ(create.status, 0) << create.err;
  EXPECT_NE(create.out.find("snapshot r1: 2 paths"), std::string::npos) << create.out;
  Put("rel/a", "a2");
  Put("rel/b", "b2");

  CliRun show = Run("snapshot show r1");
  ASSERT_EQ(show.status, 0) << show.err;
  EXPECT_NE(show.out.find("verifies"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("rel/a"), std::string::npos) << show.out;
  EXPECT_EQ(show.out.find("unrelated"), std::string::npos) << show.out;
  EXPECT_EQ(json::parse(Run("--json snapshot show r1").out)["versions"]["rel/b"], 1);

  CliRun restore = Run("snapshot restore r1");
  ASSERT_EQ(restore.status, 0) << restore.err;
  EXPECT_NE(restore.out.find("snapshot r1 restored: 2 paths"), std::string::npos) << restore.out;
  EXPECT_EQ(Get("rel/a"), "a1");
  EXPECT_EQ(Get("rel/b"), "b1");
  EXPECT_EQ(Run("snapshot show nope").status, 3);
  EXPECT_EQ(Run("snapshot create r1 --prefix rel").status, 4);  // snapshot_exists
  EXPECT_EQ(Run("snapshot create 'bad name'").status, 2);
}

TEST_F(CliTxn, ARefusedRestoreListsEveryFailingPathAndChangesNothing) {
  Put("rel/a", "a1");
  Put("rel/b", "b1");
  ASSERT_EQ(Run("snapshot create r2 --prefix rel").status, 0);
  Put("rel/a", "a2");
  Put("rel/b", "b2");
  ASSERT_EQ(Run("destroy rel/a --version 1").status, 0);
  ASSERT_EQ(Run("floor rel/b 2").status, 0);
  CliRun r = Run("snapshot restore r2");
  EXPECT_EQ(r.status, 4) << r.out << r.err;
  EXPECT_NE(r.err.find("restore_refused"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("rel/a"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("destroyed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("rel/b"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("below_floor"), std::string::npos) << r.err;
  EXPECT_EQ(Get("rel/a"), "a2");
  EXPECT_EQ(Get("rel/b"), "b2");
  CliRun j = Run("--json snapshot restore r2");
  EXPECT_EQ(j.status, 4);
  EXPECT_EQ(json::parse(j.out)["error"]["failures"].size(), 2u) << j.out;
}

}  // namespace
}  // namespace sk::testing
