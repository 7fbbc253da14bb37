// `sealkeep recovery` and `sealkeep backup` end to end (issue 20, docs/recovery.md), as the
// runbook has an operator run them: host A's agent (SoftHSM2) makes a recovery key and a
// backup; A's token is wiped; host B (a fresh swtpm) is restored offline with 3 of 5
// shares from a file and its agent serves every secret, history included.
#include <signal.h>

#include <filesystem>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "hsm/tpm/provision.h"
#include "tests/cli/cli_test_util.h"
#include "tests/fixtures/swtpm.h"

namespace sk::testing {
namespace {

using nlohmann::json;

class CliRecovery : public CliTest {
 protected:
  // The share lines `recovery init` printed.
  static std::vector<std::string> Shares(const std::string& out) {
    std::vector<std::string> shares;
    std::regex line(R"(share \d+: (SKR1-[0-9A-Z-]+))");
    for (auto it = std::sregex_iterator(out.begin(), out.end(), line); it != std::sregex_iterator(); ++it) {
      shares.push_back((*it)[1]);
    }
    return shares;
  }
  // Waits (on the agent's own report, not on time) until every version is wrapped.
  void WaitAllWrapped() {
    for (int i = 0; i < 600; ++i) {
      json j = json::parse(Run("--json recovery status").out, nullptr, false);
      if (j.is_object() && j.value("pending", 1) == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "the agent never wrapped every version to the recovery key";
  }
  std::string SharesFile(const std::vector<std::string>& shares, std::initializer_list<int> which,
                         const std::string& name = "shares.txt") {
    std::string text = "# three of the five shares\n\n";
    for (int i : which) text += shares[static_cast<std::size_t>(i)] + "\n";
    const std::string path = dir_.Join(name);
    WriteFile(path, text);
    return path;
  }
};

TEST_F(CliRecovery, TheTokenDiesAndABackupIsRestoredOntoANewTpmHostWithThreeShares) {
  Put("app/db", "db-1");
  Put("app/db", "db-2");
  Put("app/api", "api-1");
  ASSERT_EQ(Run("rollback app/db --to 1").status, 0);  // v3 = db-1

  CliRun none = Run("recovery status");
  ASSERT_EQ(none.status, 0) << none.err;
  EXPECT_NE(none.out.find("recovery key: none"), std::string::npos) << none.out;

  CliRun init = Run("recovery init --shares 5 --threshold 3");
  ASSERT_EQ(init.status, 0) << init.out << init.err;
  const std::vector<std::string> shares = Shares(init.out);
  ASSERT_EQ(shares.size(), 5U) << init.out;
  EXPECT_EQ(Run("recovery init --shares 5 --threshold 3").status, 4) << "a second init is refused";
  EXPECT_EQ(Run("recovery init --shares 2 --threshold 3").status, 2);
  // The shares are nowhere in the agent's log or its state folder.
  for (const auto& e : std::filesystem::recursive_directory_iterator(agent_->state_dir())) {
    if (!e.is_regular_file()) continue;
    const std::string text = ReadFile(e.path().string());
    for (const std::string& s : shares) ASSERT_EQ(text.find(s.substr(9, 20)), std::string::npos) << e.path();
  }
  WaitAllWrapped();
  Put("app/tls", "tls-1");  // after the key: wrapped in its own transaction

  const std::string backup = dir_.Join("a.backup");
  CliRun created = Run("backup create " + Quote(backup));
  ASSERT_EQ(created.status, 0) << created.out << created.err;
  EXPECT_NE(created.out.find("versions: 5 live, 5 wrapped"), std::string::npos) << created.out;
  EXPECT_EQ(Run("backup create " + Quote(backup)).status, 4) << "an existing file is never overwritten";

  // Verified offline, without the hardware, with any three shares.
  CliRun verified =
      Run("backup verify " + Quote(backup) + " --shares-file " + Quote(SharesFile(shares, {4, 0, 2})));
  ASSERT_EQ(verified.status, 0) << verified.out << verified.err;
  EXPECT_NE(verified.out.find("verified: ok"), std::string::npos) << verified.out;
  // On host A's own hardware (the agent stopped), no shares.
  StopAgent();
  CliRun on_hw = Run("backup verify " + Quote(backup) + " --config " + Quote(agent_->config_path()));
  EXPECT_EQ(on_hw.status, 0) << on_hw.out << on_hw.err;
  EXPECT_NE(on_hw.out.find("verified: ok"), std::string::npos) << on_hw.out;
  StartAgent();
  ASSERT_FALSE(HasFatalFailure());
  // A typo in a share is caught, naming the line.
  std::vector<std::string> typo = shares;
  typo[1][12] = typo[1][12] == 'A' ? 'B' : 'A';
  CliRun mistyped = Run("backup verify " + Quote(backup) + " --shares-file " +
                        Quote(SharesFile(typo, {0, 1, 2}, "typo.txt")));
  EXPECT_EQ(mistyped.status, 2) << mistyped.err;
  EXPECT_NE(mistyped.err.find("line 4"), std::string::npos) << mistyped.err;
  EXPECT_NE(mistyped.err.find("typo"), std::string::npos) << mistyped.err;
  CliRun two = Run("backup verify " + Quote(backup) + " --shares-file " +
                   Quote(SharesFile(shares, {0, 1}, "two.txt")));
  EXPECT_EQ(two.status, 2);
  EXPECT_NE(two.err.find("too_few_shares"), std::string::npos) << two.err;

  // Host A's token is wiped: its store is useless now.
  StopAgent();
  std::filesystem::remove_all(agent_->token().tokens_dir());

  // Host B: a new machine with a fresh swtpm, provisioned, its agent never started.
  TempDir hostb("cli-hostb");
  Swtpm swtpm(hostb.path());
  AgentProcess::Options o;
  o.tpm_tcti = swtpm.Tcti();
  AgentProcess b(hostb.path(), o);
  auto provisioned = hsm::tpm::ProvisionTpm(b.TpmConfig());
  ASSERT_TRUE(provisioned.ok()) << provisioned.status().ToString();
  const std::string b_config = Quote(b.config_path());
  CliRun restored = Run("backup restore " + Quote(backup) + " --config " + b_config + " --shares-file " +
                        Quote(SharesFile(shares, {1, 3, 4})));
  ASSERT_EQ(restored.status, 0) << restored.out << restored.err;
  EXPECT_NE(restored.out.find("verified: ok"), std::string::npos) << restored.out;
  EXPECT_NE(restored.out.find("`restored` at seq"), std::string::npos) << restored.out;
  CliRun again = Run("backup restore " + Quote(backup) + " --config " + b_config + " --shares-file " +
                     Quote(SharesFile(shares, {1, 3, 4})));
  EXPECT_EQ(again.status, 4) << "a second restore onto the same host is refused: " << again.err;

  b.Start();
  HttpResponse db = b.Call("GET", "/v1/secrets/app/db");
  ASSERT_EQ(db.status, 200) << db.body;
  EXPECT_EQ(db.Json()["value"], "db-1");
  EXPECT_EQ(db.Json()["version"], 3);
  EXPECT_EQ(b.Call("GET", "/v1/secrets/app/db?version=2").Json()["value"], "db-2");
  EXPECT_EQ(b.Call("GET", "/v1/secrets/app/api").Json()["value"], "api-1");
  EXPECT_EQ(b.Call("GET", "/v1/secrets/app/tls").Json()["value"], "tls-1");
  HttpResponse verify = b.Call("GET", "/v1/sys/journal/verify");
  EXPECT_EQ(verify.Json()["ok"], true) << verify.body;
  HttpResponse status = b.Call("GET", "/v1/sys/status");
  EXPECT_EQ(status.Json()["backend"]["kind"], "tpm") << status.body;
  HttpResponse rec = b.Call("GET", "/v1/sys/recovery");
  EXPECT_EQ(rec.Json()["configured"], true) << rec.body;
  // On B's own hardware, a backup of B, then a change: restoring that backup shows the
  // gap and changes nothing without --accept-loss; with it the store goes back to the
  // backup's head. Host A's backup is refused there: its keys are not under B's TPM.
  const std::string b_backup = hostb.Join("b.backup");
  ASSERT_EQ(Run("--socket " + Quote(b.socket()) + " backup create " + Quote(b_backup)).status, 0);
  ASSERT_EQ(b.Call("PUT", "/v1/secrets/app/db", R"({"value":"db-on-b"})").status, 200);
  ASSERT_EQ(b.Call("POST", "/v1/sys/rotate").status, 200);  // anchored at once
  EXPECT_EQ(b.Stop(), 0);
  CliRun refused = Run("backup restore " + Quote(b_backup) + " --config " + b_config);
  EXPECT_EQ(refused.status, 4) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("would be lost"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--accept-loss"), std::string::npos) << refused.err;
  CliRun other = Run("backup restore " + Quote(backup) + " --config " + b_config + " --accept-loss");
  EXPECT_EQ(other.status, 4) << other.out << other.err;
  EXPECT_NE(other.err.find("backup_other_hardware"), std::string::npos) << other.err;
  CliRun accepted = Run("backup restore " + Quote(b_backup) + " --config " + b_config + " --accept-loss");
  ASSERT_EQ(accepted.status, 0) << accepted.out << accepted.err;
  EXPECT_NE(accepted.out.find("lost:     2 anchored changes"), std::string::npos) << accepted.out;
  EXPECT_NE(accepted.out.find("verified: ok"), std::string::npos) << accepted.out;
  b.Start();
  EXPECT_EQ(b.Call("GET", "/v1/secrets/app/db").Json()["value"], "db-1");
  EXPECT_EQ(b.Call("GET", "/v1/sys/journal/verify").Json()["ok"], true);
  EXPECT_EQ(b.Stop(), 0);
}

// Waits until `path` exists (the restore's own progress, seen on disk): true, or false
// after 30 s.
bool WaitForFile(const std::string& path) {
  for (int i = 0; i < 150'000; ++i) {
    if (std::filesystem::exists(path)) return true;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return false;
}

// kill -9 of the restore at three moments of its progress (its marker written, the store
// copied in, the store opened on the new TPM), then a run that finishes it; and kill -9 of
// the agent while it wraps old versions to a new recovery key, then a restart that
// finishes the wrapping. Both end complete and verifying.
TEST_F(CliRecovery, KilledMidWrapAndMidRestoreEachRunAgainEndsCompleteAndVerifying) {
  // 1,500 versions, so the agent's wrap batches (500 per tick) take several ticks.
  for (int batch = 0; batch < 3; ++batch) {
    json ops = json::array();
    for (int i = 0; i < 500; ++i) {
      ops.push_back({{"op", "put"},
                     {"path", "bulk/" + std::to_string(batch) + "/" + std::to_string(i)},
                     {"value", "v" + std::to_string(i)}});
    }
    HttpResponse r = agent_->Call("POST", "/v1/txn", json({{"ops", ops}}).dump());
    ASSERT_EQ(r.status, 200) << r.body;
  }
  CliRun init = Run("recovery init --shares 3 --threshold 2");
  ASSERT_EQ(init.status, 0) << init.err;
  const std::vector<std::string> shares = Shares(init.out);
  ASSERT_EQ(shares.size(), 3U);
  // Killed while wrapping: some versions wrapped, not all.
  bool caught_midway = false;
  for (int i = 0; i < 600 && !caught_midway; ++i) {
    json j = agent_->Call("GET", "/v1/sys/recovery").Json();
    const auto wrapped = j.value("wrapped", 0ULL), versions = j.value("versions", 0ULL);
    if (wrapped > 0 && wrapped < versions) {
      EXPECT_EQ(agent_->Stop(9), 128 + 9);
      caught_midway = true;
      break;
    }
    if (wrapped == versions && versions > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (caught_midway) {
    StartAgent();
    ASSERT_FALSE(HasFatalFailure());
  }
  WaitAllWrapped();
  json after = agent_->Call("GET", "/v1/sys/recovery").Json();
  EXPECT_EQ(after["wrapped"], 1500) << after.dump();
  std::printf("recovery wrap: the agent was %s while wrapping\n", caught_midway ? "killed" : "not caught");

  const std::string backup = dir_.Join("bulk.backup");
  ASSERT_EQ(Run("backup create " + Quote(backup)).status, 0);
  StopAgent();

  TempDir hostb("cli-hostb-kill");
  Swtpm swtpm(hostb.path());
  AgentProcess::Options o;
  o.tpm_tcti = swtpm.Tcti();
  AgentProcess b(hostb.path(), o);
  ASSERT_TRUE(hsm::tpm::ProvisionTpm(b.TpmConfig()).ok());
  const std::string store = b.state_dir() + "/store.db";
  const std::string cmd = "backup restore " + Quote(backup) + " --config " + Quote(b.config_path()) +
                          " --shares-file " + Quote(SharesFile(shares, {2, 0}));
  int kills = 0;
  for (const std::string& moment : {store + ".restoring", store, store + "-wal"}) {
    auto run = Start(cmd);
    if (WaitForFile(moment)) {
      ::kill(run->pid(), SIGKILL);
      ++kills;
    }
    run->Wait();
    // What the kernel does for a killed process's TPM handles (swtpm has no resource manager).
    RunCommand("TPM2TOOLS_TCTI='" + swtpm.Tcti() +
               "' tpm2_flushcontext -t >/dev/null 2>&1; TPM2TOOLS_TCTI='" + swtpm.Tcti() +
               "' tpm2_flushcontext -l >/dev/null 2>&1");
  }
  EXPECT_EQ(kills, 3);
  CliRun finished = Run(cmd + " --new-recovery-key --shares 3 --threshold 2");
  ASSERT_EQ(finished.status, 0) << finished.out << finished.err;
  const std::vector<std::string> fresh = Shares(finished.out);
  ASSERT_EQ(fresh.size(), 3U) << finished.out;
  EXPECT_NE(fresh[0].substr(0, 24), shares[0].substr(0, 24)) << "the new shares are of a new key";
  EXPECT_NE(finished.out.find("finished a restore cut short"), std::string::npos) << finished.out;
  EXPECT_NE(finished.out.find("verified: ok"), std::string::npos) << finished.out;
  b.Start();
  for (int batch = 0; batch < 3; ++batch) {
    HttpResponse r = b.Call("GET", "/v1/secrets/bulk/" + std::to_string(batch) + "/499");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.Json()["value"], "v499");
  }
  EXPECT_EQ(b.Call("GET", "/v1/sys/journal/verify").Json()["ok"], true);
  // Everything is wrapped to the new key: a backup of B verifies with the new shares only.
  json rec = b.Call("GET", "/v1/sys/recovery").Json();
  EXPECT_EQ(rec["pending"], 0) << rec.dump();
  const std::string b_backup = hostb.Join("b.backup");
  ASSERT_EQ(Run("--socket " + Quote(b.socket()) + " backup create " + Quote(b_backup)).status, 0);
  CliRun new_ok = Run("backup verify " + Quote(b_backup) + " --shares-file " +
                      Quote(SharesFile(fresh, {1, 2}, "new.txt")));
  EXPECT_EQ(new_ok.status, 0) << new_ok.out << new_ok.err;
  CliRun old_no = Run("backup verify " + Quote(b_backup) + " --shares-file " +
                      Quote(SharesFile(shares, {0, 1}, "old.txt")));
  EXPECT_EQ(old_no.status, 4) << old_no.out << old_no.err;
  EXPECT_NE(old_no.err.find("wrong_recovery_key"), std::string::npos) << old_no.err;
  EXPECT_EQ(b.Stop(), 0);
}

}  // namespace
}  // namespace sk::testing
