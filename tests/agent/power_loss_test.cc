// Power loss and storage faults at every sync and write point (issue 18,
// docs/reliability.md). For each operation (a put, a two-path transaction, a snapshot
// restore, a master-key rotation, and closing the store, which checkpoints the WAL) a dry run counts the
// SQLite syncs and writes it makes; then, for every k, a fresh store runs the operation with:
//   - the power failing at sync k (the fault VFS puts every file back to its last synced
//     image, or, torn, keeps the first half of each unsynced write), the store closed and
//     its -shm removed, as after a real power cut; or
//   - sync k failing (EIO), or write k failing (ENOSPC, then EIO), the power staying on.
// The SoftHSM2 token's folder has sync points of its own (SyncTree after an anchor advance
// or a new master-key generation): the power may fail at one of those too, and whenever it
// fails the token's folder goes back to what its last SyncTree made durable, as the store
// files go back to their last synced image. Both anchor modes are swept (strict advances
// the anchor, on the token, after every commit).
// After each: reopen; every commit acknowledged before is there; the operation is there
// entirely if it was acknowledged, else entirely or not at all; the journal verifies; the
// store takes a new write. The anchor is the real SoftHSM2 token's (outside the VFS), so a
// store that lost a commit the anchor had already counted would be refused as a replay:
// that is what "the anchor is never ahead of what is durable" means here.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>

#include "agent/store/fault_vfs.h"
#include "hsm/pkcs11/sync_dir.h"
#include "hsm/tpm/provision.h"
#include "hsm/tpm/state_dir.h"
#include "hsm/tpm/tpm_backend.h"
#include "tests/agent/service_fixture.h"
#include "tests/fixtures/swtpm.h"

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

// The token folder's durable image: its files (path -> bytes) as of the last SyncTree
// that went through. Power-loss runs install it as the SyncTree hook.
class TokenPower {
 public:
  // Starts tracking `dir` (its present state is durable: every earlier step synced it);
  // the power fails at token sync point `fail_at` (-1: never; only count).
  void Arm(const std::string& dir, int fail_at) {
    dir_ = dir;
    image_ = Take(dir);
    fail_at_ = fail_at;
    syncs_ = 0;
    fired_ = false;
    hsm::pkcs11::SetSyncHookForTesting([this](const std::string& d) { return OnSync(d); });
  }
  // Puts the folder back to its durable image (call with every backend closed).
  void RestoreImage() {
    hsm::pkcs11::SetSyncHookForTesting(nullptr);
    std::error_code ec;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir_)) {
      if (e.is_regular_file() && !image_.count(e.path().string())) std::filesystem::remove(e.path(), ec);
    }
    for (const auto& [path, bytes] : image_) {
      std::filesystem::create_directories(std::filesystem::path(path).parent_path());
      testing::WriteFile(path, bytes);
    }
  }
  void Disarm() { hsm::pkcs11::SetSyncHookForTesting(nullptr); }
  int syncs() const { return syncs_; }
  bool fired() const { return fired_; }

 private:
  static std::map<std::string, std::string> Take(const std::string& dir) {
    std::map<std::string, std::string> out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
      if (e.is_regular_file()) out[e.path().string()] = testing::ReadFile(e.path().string());
    }
    return out;
  }
  Status OnSync(const std::string& d) {
    if (FaultVfs().powered_off) return Status(Code::kUnavailable, "sync_failed", "the machine is off");
    if (syncs_++ == fail_at_) {
      fired_ = true;
      FaultVfs().PowerOffNow();  // the store's files go back with the token's
      return Status(Code::kUnavailable, "sync_failed", "power lost at this sync");
    }
    image_ = Take(d);  // what this sync makes durable
    return OkStatus();
  }

  std::string dir_;
  std::map<std::string, std::string> image_;
  int fail_at_ = -1;
  int syncs_ = 0;
  bool fired_ = false;
};

// A fresh store with the operations' starting point; opened on the fault VFS.
void Prepare(testing::ServiceHarness& h, AnchorMode mode = AnchorMode::kEpoch) {
  FaultVfs().Clear();
  h.options.vfs = store::kFaultVfsName;
  h.options.anchor_mode = mode;
  ASSERT_TRUE(h.Open().ok());
  h.PutText("p/a", "a1");
  h.PutText("p/b", "b1");
  ASSERT_TRUE(h.svc().CreateSnapshot("s1", "p", h.actor).ok());
  h.PutText("p/a", "a2");
}

// What every run must find after reopening: the commits made before, the operation whole
// or absent (whole when acknowledged), a journal that verifies, a store that takes writes.
void Check(testing::ServiceHarness& h, const Case& c, bool acked, const std::string& what,
           const std::function<Status()>& reopen = nullptr) {
  SCOPED_TRACE(what);
  Status reopened = reopen ? reopen() : h.Restart();
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

// The store's and the token's sync points of the operation under `mode` (a dry run).
std::pair<int, int> CountSyncPoints(const Case& c, AnchorMode mode) {
  testing::ServiceHarness h("plcount");
  Prepare(h, mode);
  TokenPower token;
  token.Arm(h.token().tokens_dir(), -1);
  FaultVfs().ArmPowerLoss(-1, false);
  EXPECT_TRUE(c.run(h).ok());
  std::pair<int, int> n{FaultVfs().syncs.load(), token.syncs()};
  token.Disarm();
  h.CloseBackend();
  FaultVfs().Clear();
  return n;
}

class PowerLossTest : public ::testing::TestWithParam<Case> {
 protected:
  void TearDown() override { FaultVfs().Clear(); }
};

TEST_P(PowerLossTest, EverySyncPointDroppedOrTornLosesNothingAcknowledgedAndHalvesNothing) {
  const Case& c = GetParam();
  for (AnchorMode mode : {AnchorMode::kEpoch, AnchorMode::kStrict}) {
    const auto [store_syncs, token_syncs] = CountSyncPoints(c, mode);
    ASSERT_GT(store_syncs, 0) << c.name << " made no sync";
    int runs = 0, acked_runs = 0;
    for (bool torn : {false, true}) {
      // Points 0..store_syncs-1 are the store's syncs, the rest the token's.
      for (int k = 0; k < store_syncs + token_syncs; ++k) {
        const bool at_token = k >= store_syncs;
        const std::string what = std::string(c.name) + ", " + std::string(AnchorModeName(mode)) +
                                 " anchor: power lost at " + (at_token ? "token" : "store") + " sync " +
                                 std::to_string(at_token ? k - store_syncs : k) + (torn ? " (torn)" : "");
        testing::ServiceHarness h("power");
        Prepare(h, mode);
        TokenPower token;
        token.Arm(h.token().tokens_dir(), at_token ? k - store_syncs : -1);
        FaultVfs().ArmPowerLoss(at_token ? -1 : k, torn);
        const bool acked = c.run(h).ok();
        ASSERT_EQ(FaultVfs().fired.load(), 1) << what << ": the power did not fail";
        if (at_token) {
          ASSERT_TRUE(token.fired()) << what;
        }
        h.CloseBackend();
        token.RestoreImage();
        FaultVfs().Clear();
        ::unlink((h.store_path() + "-shm").c_str());  // shared memory does not survive a power cut
        Check(h, c, acked, what);
        ++runs;
        acked_runs += acked ? 1 : 0;
      }
    }
    std::printf(
        "power loss, %s, %s anchor: %d store and %d token sync points swept, dropped and torn: %d runs "
        "(%d acknowledged before the loss)\n",
        c.name, std::string(AnchorModeName(mode)).c_str(), store_syncs, token_syncs, runs, acked_runs);
  }
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

// The token's side is real too: with strict anchoring, a put whose anchor advance was not
// yet synced when the power failed leaves the token one step behind the store (its
// durable image is put back); the reopened store is accepted and rolls the anchor forward.
TEST(PowerLossSimulationTest, ATokenSyncLostLeavesTheAnchorOneStepBehindAndItRollsForward) {
  testing::ServiceHarness h("pltoken");
  Prepare(h, AnchorMode::kStrict);
  auto before = h.backend()->ReadAnchor();
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  TokenPower token;
  token.Arm(h.token().tokens_dir(), 0);
  FaultVfs().ArmPowerLoss(-1, false);
  EXPECT_FALSE(Put(h.svc(), "p/c", AsBytes("c1"), h.actor).ok());  // committed, not anchored
  ASSERT_TRUE(token.fired());
  h.CloseBackend();
  token.RestoreImage();
  FaultVfs().Clear();
  ::unlink((h.store_path() + "-shm").c_str());
  {
    auto backend = h.token().Open();
    ASSERT_TRUE(backend.ok()) << backend.status().ToString();
    auto lost = (*backend)->ReadAnchor();
    ASSERT_TRUE(lost.ok());
    EXPECT_EQ(lost->seq, before->seq) << "the token's unsynced anchor advance survived the power loss";
    EXPECT_EQ(lost->counter, before->counter);
  }
  ASSERT_TRUE(h.Restart().ok());
  EXPECT_EQ(Text(h, "p/c"), "c1");  // durable in the store before the token's sync
  auto after = h.backend()->ReadAnchor();
  ASSERT_TRUE(after.ok());
  EXPECT_GT(after->seq, before->seq) << "the anchor did not roll forward";
  EXPECT_TRUE(h.svc().VerifyAll()->ok);
}

// --- The TPM backend: its state folder's writes, removals and renames ---
//
// Every write to the TPM state folder is atomic on disk (temp file, fsync, rename, folder
// fsync) and a rename is followed by a folder fsync, so when the power fails just before
// step j of the folder (StateDir's fault hook), the folder as it is on disk is its durable
// image; torn, a half-written temp file of that step is left behind too. The store's
// files go back to their last synced image at the same moment; the power may also fail at
// any of the store's syncs (then every later folder step fails: the machine is off). The
// TPM's NV anchor is the hardware's own durable memory.

// A swtpm, provisioned, under a store on the fault VFS.
class TpmMachine {
 public:
  explicit TpmMachine(testing::ServiceHarness& h) : h_(h), swtpm_(h.dir().path()) {
    ::setenv("TSS2_LOG", "all+none", 1);
    config_ = swtpm_.Config(h.dir().Join("tpmstate"));
    std::filesystem::create_directories(config_.state_dir);
    auto r = hsm::tpm::ProvisionTpm(config_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
  }
  // Closes everything, as the process dies, and opens the TPM backend and the store again.
  Status Reopen() {
    h_.CloseBackend();
    SK_ASSIGN_OR_RETURN(auto b, hsm::tpm::OpenTpmBackend(config_));
    h_.backend() = std::move(b);
    return h_.Open();
  }
  hsm::tpm::TpmBackend& tpm() { return *dynamic_cast<hsm::tpm::TpmBackend*>(h_.backend().get()); }
  const std::string& state_dir() const { return config_.state_dir; }

 private:
  testing::ServiceHarness& h_;
  testing::Swtpm swtpm_;
  hsm::TpmConfig config_;
};

// Counts the state folder's steps; the power fails before step `fail_at` (-1: never).
class TpmFolderPower {
 public:
  TpmFolderPower(std::string dir, int fail_at, bool torn)
      : dir_(std::move(dir)), fail_at_(fail_at), torn_(torn) {
    hsm::tpm::StateDir::SetFaultHookForTesting(
        [this](std::string_view op, const std::string& name) { return OnStep(op, name); });
  }
  ~TpmFolderPower() { hsm::tpm::StateDir::SetFaultHookForTesting(nullptr); }
  int steps() const { return steps_; }
  bool fired() const { return fired_; }

 private:
  Status OnStep(std::string_view op, const std::string& name) {
    if (FaultVfs().powered_off) return Status(Code::kUnavailable, "state_io_error", "the machine is off");
    if (steps_++ != fail_at_) return OkStatus();
    fired_ = true;
    FaultVfs().PowerOffNow();
    if (torn_ && op == "write") testing::WriteFile(dir_ + "/." + name + ".tmp", std::string(37, '\x5a'));
    return Status(Code::kUnavailable, "state_io_error", "power lost before this step");
  }
  std::string dir_;
  int fail_at_;
  bool torn_;
  int steps_ = 0;
  bool fired_ = false;
};

const std::vector<int> kResealPcrs = {0, 7};

bool SealedTo(hsm::tpm::TpmBackend& tpm, const std::vector<int>& pcrs, bool all) {
  bool any = false, every = true;
  for (const auto& seal : tpm.Seals()) {
    const bool match = seal.pcrs == pcrs;
    any = any || match;
    every = every && match;
  }
  return all ? every : any;
}

struct TpmCase {
  const char* name;
  std::function<Status(testing::ServiceHarness&, TpmMachine&)> run;
  // 1 applied, 0 not (a re-seal cut midway is 0 too: it is documented to leave some
  // generations re-sealed, and a rerun finishes it; the check reruns it).
  std::function<int(testing::ServiceHarness&, TpmMachine&)> applied;
};

const TpmCase kTpmCases[] = {
    {"put",
     [](testing::ServiceHarness& h, TpmMachine&) {
       return Put(h.svc(), "p/c", AsBytes("c1"), h.actor).status();
     },
     [](testing::ServiceHarness& h, TpmMachine&) { return Text(h, "p/c") == "c1" ? 1 : 0; }},
    {"rotate", [](testing::ServiceHarness& h, TpmMachine&) { return h.svc().Rotate(h.actor).status(); },
     [](testing::ServiceHarness& h, TpmMachine&) {
       return h.svc().Report().backend.current_generation > 2 ? 1 : 0;
     }},
    // As daemon::Agent::Reseal: stage, journal, commit; over two live generations.
    {"reseal",
     [](testing::ServiceHarness& h, TpmMachine& m) -> Status {
       SK_ASSIGN_OR_RETURN(auto pending, m.tpm().BeginReseal(kResealPcrs));
       SK_RETURN_IF_ERROR(h.svc().RecordReseal("pcrs=0,7", h.actor).status());
       return pending->Commit();
     },
     [](testing::ServiceHarness&, TpmMachine& m) { return SealedTo(m.tpm(), kResealPcrs, true) ? 1 : 0; }},
};

// The starting point on the TPM: p/a=a2, p/b=b1, snapshot s1, two live generations.
void PrepareTpm(testing::ServiceHarness& h, TpmMachine& m) {
  FaultVfs().Clear();
  h.options.vfs = store::kFaultVfsName;
  h.options.anchor_mode = AnchorMode::kStrict;
  ASSERT_TRUE(m.Reopen().ok());
  h.PutText("p/a", "a1");
  h.PutText("p/b", "b1");
  ASSERT_TRUE(h.svc().CreateSnapshot("s1", "p", h.actor).ok());
  ASSERT_TRUE(h.svc().Rotate(h.actor).ok());
  h.PutText("p/a", "a2");
}

class TpmPowerLossTest : public ::testing::TestWithParam<TpmCase> {
 protected:
  void TearDown() override { FaultVfs().Clear(); }
};

TEST_P(TpmPowerLossTest, EveryStoreSyncAndStateFolderStepDroppedOrTornLosesNothingAcknowledged) {
  const TpmCase& c = GetParam();
  int store_syncs = 0, folder_steps = 0;
  {
    testing::ServiceHarness h("tpmcount");
    TpmMachine m(h);
    PrepareTpm(h, m);
    TpmFolderPower folder(m.state_dir(), -1, false);
    FaultVfs().ArmPowerLoss(-1, false);
    ASSERT_TRUE(c.run(h, m).ok());
    store_syncs = FaultVfs().syncs.load();
    folder_steps = folder.steps();
    h.CloseBackend();
    FaultVfs().Clear();
  }
  ASSERT_GT(store_syncs + folder_steps, 0);
  int runs = 0, acked_runs = 0;
  for (bool torn : {false, true}) {
    for (int k = 0; k < store_syncs + folder_steps; ++k) {
      const bool at_folder = k >= store_syncs;
      const std::string what = std::string("tpm ") + c.name + ": power lost at " +
                               (at_folder ? "state folder step " : "store sync ") +
                               std::to_string(at_folder ? k - store_syncs : k) + (torn ? " (torn)" : "");
      testing::ServiceHarness h("tpmpower");
      TpmMachine m(h);
      PrepareTpm(h, m);
      bool acked = false;
      {
        TpmFolderPower folder(m.state_dir(), at_folder ? k - store_syncs : -1, torn);
        FaultVfs().ArmPowerLoss(at_folder ? -1 : k, torn);
        acked = c.run(h, m).ok();
        ASSERT_EQ(FaultVfs().fired.load(), 1) << what << ": the power did not fail";
        h.CloseBackend();
      }
      FaultVfs().Clear();
      ::unlink((h.store_path() + "-shm").c_str());
      // What was there before is there, the journal verifies, a new write is taken.
      const Case before{"tpm", nullptr, [](testing::ServiceHarness&) { return 1; }};
      Check(h, before, false, what, [&] { return m.Reopen(); });
      const int applied = c.applied(h, m);
      if (acked) {
        EXPECT_EQ(applied, 1) << what << ": acknowledged, then lost";
      }
      if (std::string(c.name) == "reseal" && applied == 0) {
        // Cut midway: a rerun puts every generation under the new policy.
        EXPECT_TRUE(c.run(h, m).ok()) << what << ": the re-seal does not run again";
        EXPECT_TRUE(SealedTo(m.tpm(), kResealPcrs, true)) << what;
      }
      ++runs;
      acked_runs += acked ? 1 : 0;
    }
  }
  std::printf(
      "power loss, tpm %s: %d store syncs and %d state folder steps swept, dropped and torn: %d runs (%d "
      "acknowledged before the loss)\n",
      c.name, store_syncs, folder_steps, runs, acked_runs);
}

INSTANTIATE_TEST_SUITE_P(Tpm, TpmPowerLossTest, ::testing::ValuesIn(kTpmCases),
                         [](const ::testing::TestParamInfo<TpmCase>& p) {
                           return std::string(p.param.name);
                         });

INSTANTIATE_TEST_SUITE_P(Ops, PowerLossTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace sk::secrets
