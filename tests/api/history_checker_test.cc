// The kill loop's history checker (history_checker.h) finds each kind of violation planted
// in a small history, and passes a correct one: so a clean run of the loop means something.
#include "tests/api/history_checker.h"

#include <gtest/gtest.h>

namespace sk::testing {
namespace {

using Kind = HistoryOp::Kind;
using Outcome = HistoryOp::Outcome;

HistoryOp Put(const std::string& label, const std::string& path, const std::string& value,
              std::uint64_t version, std::int64_t t0, std::int64_t t1, Outcome outcome = Outcome::kOk,
              std::optional<std::uint64_t> cas = std::nullopt) {
  HistoryOp op;
  op.label = label;
  op.kind = Kind::kPut;
  op.outcome = outcome;
  op.invoke_ns = t0;
  op.complete_ns = t1;
  op.writes.push_back({path, value, cas, version});
  return op;
}

HistoryOp Txn(const std::string& label, std::vector<HistoryWrite> writes, std::int64_t t0, std::int64_t t1,
              Outcome outcome = Outcome::kOk) {
  HistoryOp op;
  op.label = label;
  op.kind = Kind::kTxn;
  op.outcome = outcome;
  op.invoke_ns = t0;
  op.complete_ns = t1;
  op.writes = std::move(writes);
  return op;
}

HistoryOp Get(const std::string& label, const std::string& path, std::uint64_t version,
              const std::string& value, std::int64_t t0, std::int64_t t1) {
  HistoryOp op;
  op.label = label;
  op.kind = Kind::kGet;
  op.outcome = Outcome::kOk;
  op.invoke_ns = t0;
  op.complete_ns = t1;
  op.read_path = path;
  op.read_version = version;
  op.read_value = value;
  op.read_none = version == 0;
  return op;
}

// A correct history: two puts, a cas put, a txn, an unknown put that did apply, an unknown
// one that did not, a failed cas, and reads in between.
struct Good {
  std::vector<HistoryOp> ops = {
      Put("p1", "a", "a1", 1, 0, 10),
      Put("p2", "a", "a2", 2, 20, 30),
      Put("p3", "a", "a3", 3, 40, 50, Outcome::kOk, 2),
      Txn("t1", {{"a", "a4", std::nullopt, 4}, {"b", "b1", std::nullopt, 1}}, 60, 70),
      Put("u1", "b", "b2", 0, 80, 0, Outcome::kUnknown),
      Put("u2", "b", "bx", 0, 85, 0, Outcome::kUnknown),
      Put("f1", "a", "ax", 0, 90, 95, Outcome::kFailed, 1),
      Get("g1", "a", 2, "a2", 31, 35),
      Get("g2", "b", 1, "b1", 71, 75),
      Get("g3", "c", 0, "", 0, 100),
  };
  FinalState state = {
      {"a", {{1, "a1"}, {2, "a2"}, {3, "a3"}, {4, "a4"}}},
      {"b", {{1, "b1"}, {2, "b2"}}},
  };
};

std::vector<std::string> Kinds(const std::vector<Violation>& v) {
  std::vector<std::string> out;
  for (const Violation& x : v) out.push_back(x.kind);
  return out;
}

void ExpectOnly(const std::vector<Violation>& found, const std::string& kind) {
  ASSERT_FALSE(found.empty()) << "the checker missed a planted " << kind;
  for (const Violation& v : found) EXPECT_EQ(v.kind, kind) << v.detail;
}

TEST(HistoryCheckerTest, ACorrectHistoryPasses) {
  Good g;
  std::vector<Violation> found = CheckHistory(g.ops, g.state);
  EXPECT_TRUE(found.empty()) << found.front().kind << ": " << found.front().detail;
}

TEST(HistoryCheckerTest, ALostAcknowledgedWrite) {
  Good g;
  g.state["a"].pop_back();  // t1's write to a is gone, b's stays: lost and partial
  auto k = Kinds(CheckHistory(g.ops, g.state));
  EXPECT_NE(std::find(k.begin(), k.end(), "lost_write"), k.end());
  EXPECT_NE(std::find(k.begin(), k.end(), "partial_txn"), k.end());
}

TEST(HistoryCheckerTest, AnIdempotentRetryAppliedTwice) {
  Good g;
  g.state["a"].push_back({5, "a3"});
  ExpectOnly(CheckHistory(g.ops, g.state), "duplicate_value");
}

TEST(HistoryCheckerTest, AnUnacknowledgedTransactionHalfApplied) {
  Good g;
  g.ops.push_back(
      Txn("t2", {{"c", "c1", std::nullopt, 0}, {"d", "d1", std::nullopt, 0}}, 200, 0, Outcome::kUnknown));
  g.state["c"] = {{1, "c1"}};
  ExpectOnly(CheckHistory(g.ops, g.state), "partial_txn");
}

TEST(HistoryCheckerTest, AFailedWriteThatWasApplied) {
  Good g;
  g.state["a"].push_back({5, "ax"});
  auto k = Kinds(CheckHistory(g.ops, g.state));
  EXPECT_NE(std::find(k.begin(), k.end(), "failed_write_applied"), k.end());
  EXPECT_NE(std::find(k.begin(), k.end(), "cas_violation"), k.end());  // it expected v1
}

TEST(HistoryCheckerTest, ACompareAndSetAboveTheWrongVersion) {
  Good g;
  g.ops[2].writes[0].cas = 1;  // p3 said "only if the head is v1", yet it is v3
  ExpectOnly(CheckHistory(g.ops, g.state), "cas_violation");
}

TEST(HistoryCheckerTest, VersionsThatContradictRealTimeOrder) {
  Good g;
  // p2 was acknowledged (t=30) before p3 was invoked (t=40), yet stored below... swap them.
  g.state["a"] = {{1, "a1"}, {2, "a3"}, {3, "a2"}, {4, "a4"}};
  g.ops[1].writes[0].version = 3;
  g.ops[2].writes[0].version = 2;
  g.ops[2].writes[0].cas = 1;
  g.ops[6].writes[0].cas = 0;  // keep f1's expectation out of it
  g.ops[7] = Get("g1", "a", 3, "a2", 31, 35);
  auto found = CheckHistory(g.ops, g.state);
  ExpectOnly(found, "order_violation");
}

TEST(HistoryCheckerTest, AStaleRead) {
  Good g;
  g.ops.push_back(Get("g4", "a", 1, "a1", 51, 55));  // after p3 (v3) was acknowledged
  ExpectOnly(CheckHistory(g.ops, g.state), "stale_read");
}

TEST(HistoryCheckerTest, AReadOfAbsenceAfterAnAcknowledgedWrite) {
  Good g;
  g.ops.push_back(Get("g5", "b", 0, "", 76, 78));
  ExpectOnly(CheckHistory(g.ops, g.state), "stale_read");
}

TEST(HistoryCheckerTest, AReadOfAValueTheVersionDoesNotHold) {
  Good g;
  g.ops.push_back(Get("g6", "a", 2, "a9", 31, 35));
  ExpectOnly(CheckHistory(g.ops, g.state), "phantom_read");
}

TEST(HistoryCheckerTest, AReadOfAWriteNotYetInvoked) {
  Good g;
  g.ops.push_back(Get("g7", "a", 4, "a4", 51, 55));  // t1 was invoked at 60
  ExpectOnly(CheckHistory(g.ops, g.state), "read_from_future");
}

TEST(HistoryCheckerTest, AStoredValueNobodyWroteAndAGap) {
  Good g;
  g.state["b"].push_back({4, "zz"});
  auto k = Kinds(CheckHistory(g.ops, g.state));
  EXPECT_NE(std::find(k.begin(), k.end(), "phantom_value"), k.end());
  EXPECT_NE(std::find(k.begin(), k.end(), "version_gap"), k.end());
}

TEST(HistoryCheckerTest, AnAcknowledgementThatNamedAnotherVersion) {
  Good g;
  g.ops[0].writes[0].version = 2;
  ExpectOnly(CheckHistory(g.ops, g.state), "wrong_version");
}

}  // namespace
}  // namespace sk::testing
