// Power loss and storage faults at every sync and write point (issue 18,
// docs/reliability.md). For each operation (a put, a two-path transaction, a snapshot
// restore, a master-key rotation, and closing the store, which checkpoints the WAL) a dry run counts the
// SQLite syncs and writes it makes; then, for every k, a fresh store runs the operation with:
//   - the power failing at sync k (the fault VFS puts every file back to its last synced
//     image, or, torn, keeps the first half of each unsynced write), the store closed and
//     its -shm removed, as after a real power cut; or
//   - sync k failing (EIO), or write k failing (ENOSPC, then EIO), the power staying on.
// After each: reopen; every commit acknowledged before is there; the operation is there
// entirely if it was acknowledged, else entirely or not at all; the journal verifies; the
// store takes a new write. The anchor is the real SoftHSM2 token's (outside the VFS), so a
// store that lost a commit the anchor had already counted would be refused as a replay:
// that is what "the anchor is never ahead of what is durable" means here.
#include <gtest/gtest.h>
#include <unistd.h>

#include <functional>

#include "agent/store/fault_vfs.h"
#include "tests/agent/service_fixture.h"

namespace sk::secrets {
namespace {

using store::FaultVfs;
using testing::PutOp;

struct Case {
  const char* name;
  // The operation under test, on a store holding p/a=a1, p/b=b1 (and snapshot s1 of them,
  // then p/a=a2).
  std::function<Status(testing::ServiceHarness&)> run;
  // Whether the operation's effect is in the store now: 1 yes, 0 no, -1 partly (a violation).
  std::function<int(testing::ServiceHarness&)> applied;
};

// The value of `path`, or "<absent>" when it cannot be read.
std::string Text(testing::ServiceHarness& h, const std::string& path) {
  auto v = h.GetText(path);
  return v.ok() ? *v : "<absent>";
}

const Case kCases[] = {
    {"put", [](testing::ServiceHarness& h) { return Put(h.svc(), "p/c", AsBytes("c1"), h.actor).status(); },
     [](testing::ServiceHarness& h) { return Text(h, "p/c") == "c1" ? 1 : 0; }},
    {"txn",
     [](testing::ServiceHarness& h) {
       std::vector<Op> ops;
       ops.push_back(PutOp("p/a", "a3"));
       ops.push_back(PutOp("p/b", "b3"));
       return h.svc().Transact(std::move(ops), "", h.actor).status();
     },
     [](testing::ServiceHarness& h) {
       const bool a = Text(h, "p/a") == "a3", b = Text(h, "p/b") == "b3";
       return a && b ? 1 : (!a && !b ? 0 : -1);
     }},
    {"restore", [](testing::ServiceHarness& h) { return h.svc().RestoreSnapshot("s1", h.actor).status(); },
     [](testing::ServiceHarness& h) { return Text(h, "p/a") == "a1" ? 1 : 0; }},
    {"rotate", [](testing::ServiceHarness& h) { return h.svc().Rotate(h.actor).status(); },
     [](testing::ServiceHarness& h) { return h.svc().Report().backend.current_generation > 1 ? 1 : 0; }},
    // Closing the store: SQLite checkpoints the WAL into the database file (its syncs, its
    // writes to the main file, the WAL reset). Nothing new to apply; everything before stays.
    {"close",
     [](testing::ServiceHarness& h) {
       h.Close();
       return OkStatus();
     },
     [](testing::ServiceHarness&) { return 1; }},
};

// A fresh store with the operations' starting point; opened on the fault VFS.
void Prepare(testing::ServiceHarness& h) {
  FaultVfs().Clear();
  h.options.vfs = store::kFaultVfsName;
  ASSERT_TRUE(h.Open().ok());
  h.PutText("p/a", "a1");
  h.PutText("p/b", "b1");
  ASSERT_TRUE(h.svc().CreateSnapshot("s1", "p", h.actor).ok());
  h.PutText("p/a", "a2");
}

// What every run must find after reopening: the commits made before, the operation whole
// or absent (whole when acknowledged), a journal that verifies, a store that takes writes.
void Check(testing::ServiceHarness& h, const Case& c, bool acked, const std::string& what) {
  SCOPED_TRACE(what);
  Status reopened = h.Restart();
  ASSERT_TRUE(reopened.ok()) << "the store does not reopen: " << reopened.ToString();
  EXPECT_EQ(Text(h, "p/b").substr(0, 1), "b") << "an acknowledged commit was lost";
  const std::string a = Text(h, "p/a");
  EXPECT_TRUE(a == "a1" || a == "a2" || a == "a3") << "p/a is " << a;
  const int applied = c.applied(h);
  EXPECT_NE(applied, -1) << "the operation is partly applied";
  if (acked) {
    EXPECT_EQ(applied, 1) << "the operation was acknowledged, then lost";
  }
  if (std::string(c.name) != "restore" && std::string(c.name) != "txn") {
    EXPECT_EQ(a, "a2");
  }
  auto verified = h.svc().VerifyAll();
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_TRUE(verified->ok) << (verified->problems.empty() ? "" : verified->problems[0].reason);
  EXPECT_TRUE(Put(h.svc(), "p/after", AsBytes("x"), h.actor).ok()) << "the store takes no new write";
}

// The number of syncs and writes the operation makes (a dry run).
std::pair<int, int> Count(const Case& c) {
  testing::ServiceHarness h("plcount");
  Prepare(h);
  FaultVfs().ArmPowerLoss(-1, false);
  EXPECT_TRUE(c.run(h).ok());
  std::pair<int, int> n{FaultVfs().syncs.load(), FaultVfs().writes.load()};
  FaultVfs().Clear();
  return n;
}

class PowerLossTest : public ::testing::TestWithParam<Case> {
 protected:
  void TearDown() override { FaultVfs().Clear(); }
};

TEST_P(PowerLossTest, EverySyncPointDroppedOrTornLosesNothingAcknowledgedAndHalvesNothing) {
  const Case& c = GetParam();
  const auto [syncs, writes] = Count(c);
  ASSERT_GT(syncs, 0) << c.name << " made no sync";
  int runs = 0, acked_runs = 0;
  for (bool torn : {false, true}) {
    for (int k = 0; k < syncs; ++k) {
      testing::ServiceHarness h("power");
      Prepare(h);
      FaultVfs().ArmPowerLoss(k, torn);
      const bool acked = c.run(h).ok();
      ASSERT_EQ(FaultVfs().fired.load(), 1) << "the power did not fail at sync " << k;
      h.CloseBackend();
      FaultVfs().Clear();
      ::unlink((h.store_path() + "-shm").c_str());  // shared memory does not survive a power cut
      Check(h, c, acked,
            std::string(c.name) + ": power lost at sync " + std::to_string(k) + (torn ? " (torn)" : ""));
      ++runs;
      acked_runs += acked ? 1 : 0;
    }
  }
  std::printf(
      "power loss, %s: %d sync points swept, dropped and torn: %d runs (%d acknowledged before the loss)\n",
      c.name, syncs, runs, acked_runs);
}

TEST_P(PowerLossTest, EveryFailedSyncOrWriteIsANamedErrorAndTheStoreRecovers) {
  const Case& c = GetParam();
  const auto [syncs, writes] = Count(c);
  int runs = 0;
  auto one = [&](const std::string& what, const std::function<void()>& arm) {
    testing::ServiceHarness h("fault");
    Prepare(h);
    FaultVfs().ArmPowerLoss(-1, false);
    arm();
    Status st = c.run(h);
    if (!st.ok()) {
      EXPECT_FALSE(st.reason().empty()) << what << ": " << st.ToString();
      EXPECT_TRUE(st.reason() == "store_io_error" || st.reason() == "store_failed" ||
                  st.reason() == "store_full")
          << what << ": " << st.ToString();
    }
    FaultVfs().Clear();
    Check(h, c, st.ok(), what);
    ++runs;
  };
  for (int k = 0; k < syncs; ++k) {
    one(std::string(c.name) + ": sync " + std::to_string(k) + " fails", [k] { FaultVfs().fail_sync_at = k; });
  }
  for (int err : {13 /* SQLITE_FULL */, 10 /* SQLITE_IOERR */}) {
    for (int k = 0; k < writes; ++k) {
      one(std::string(c.name) + ": write " + std::to_string(k) + " fails (" + std::to_string(err) + ")",
          [k, err] {
            FaultVfs().write_error = err;
            FaultVfs().fail_write_at = k;
          });
    }
  }
  std::printf("faults, %s: %d sync points and %d write points swept (writes as ENOSPC and EIO): %d runs\n",
              c.name, syncs, writes, runs);
}

// The simulation is real: a commit whose one sync is lost is gone after the reopen (its WAL
// frames were written, and would still be read back had the power not failed), while one
// whose sync went through survives.
TEST(PowerLossSimulationTest, AnUnsyncedCommitIsGoneAndASyncedOneStays) {
  testing::ServiceHarness h("plsim");
  Prepare(h);
  FaultVfs().ArmPowerLoss(1, false);  // the second sync: the first put's is made
  ASSERT_TRUE(Put(h.svc(), "p/c", AsBytes("c1"), h.actor).ok());
  ASSERT_FALSE(Put(h.svc(), "p/d", AsBytes("d1"), h.actor).ok());
  EXPECT_EQ(FaultVfs().fired.load(), 1);
  h.CloseBackend();
  FaultVfs().Clear();
  ::unlink((h.store_path() + "-shm").c_str());
  ASSERT_TRUE(h.Restart().ok());
  EXPECT_EQ(Text(h, "p/c"), "c1");
  EXPECT_EQ(Text(h, "p/d"), "<absent>");
  EXPECT_TRUE(h.svc().VerifyAll()->ok);
  FaultVfs().Clear();
}

INSTANTIATE_TEST_SUITE_P(Ops, PowerLossTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace sk::secrets
