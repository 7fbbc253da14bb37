// What a deployed agent does on its own, as systemd runs it: a sealed agent unseals by
// itself once the hardware is back (and says READY=1 at once), read records reach the disk
// within a second whatever the watchdog interval, and `sealkeep reload --wait` (the unit's
// ExecReload=) fails when the agent rejects a new policy, which it then keeps serving.
// Real daemon, real SoftHSM2 tokens, sd_notify datagrams read by the fixture.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "agent/daemon/reload_status.h"
#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/softhsm.h"
#include "tests/fixtures/temp_dir.h"

namespace sk::testing {
namespace {

using nlohmann::json;

// Points the agent's config at token `label` and its PIN file <state>/<label>.pin (where
// SoftHsmToken(state, label) puts it) instead of the fixture's token.
void UseToken(const AgentProcess& agent, const std::string& label) {
  std::string config = ReadFile(agent.config_path());
  for (const auto& [from, to] :
       {std::pair{"token = \"" + agent.token().label() + "\"", "token = \"" + label + "\""},
        std::pair{"pin_file = \"" + agent.token().pin_file() + "\"",
                  "pin_file = \"" + agent.state_dir() + "/" + label + ".pin\""}}) {
    config.replace(config.find(from), from.size(), to);
  }
  WriteFile(agent.config_path(), config, 0600);
}

TEST(DaemonLifecycle, ASealedAgentUnsealsByItselfOnceItsTokenAppearsAndIsReadyAtOnce) {
  TempDir dir("life-token");
  AgentProcess::Options o;
  o.notify = true;
  AgentProcess agent(dir.path(), o);
  UseToken(agent, "later");
  agent.Start();
  ASSERT_GE(agent.WaitForNotify("STATUS=sealed", 10000), 0) << agent.Log();
  std::string reason = agent.Call("GET", "/v1/health").Json()["reason"];
  EXPECT_TRUE(reason == "token_not_found" || reason == "credential_missing") << reason;
  EXPECT_LT(agent.WaitForNotify("READY=1", 0), 0);
  // The token shows up with its PIN (a hardware HSM plugged in, a SoftHSM2 folder
  // restored): the agent finds it on one of its next tries, with no request from anyone.
  SoftHsmToken later(agent.state_dir(), "later");
  std::string pin = ReadFile(later.pin_file());
  int ready = agent.WaitForNotify("READY=1", 90000);
  ASSERT_GE(ready, 0) << "never unsealed by itself: " << agent.Log();
  EXPECT_NE(agent.Notifications()[static_cast<std::size_t>(ready)].find("STATUS=unsealed"),
            std::string::npos);
  EXPECT_EQ(agent.Call("GET", "/v1/health").Json()["status"], "unsealed");
  EXPECT_EQ(agent.Call("PUT", "/v1/secrets/a/b", json({{"value", "v"}}).dump()).status, 200);
  EXPECT_NE(agent.Log().find("retrying by itself"), std::string::npos) << agent.Log();
  EXPECT_EQ(agent.Log().find(pin), std::string::npos);
}

// A wrong PIN is not tried again and again (each try counts against the token's lockout):
// the agent says so once, and only an unseal asked for tries again.
TEST(DaemonLifecycle, AWrongPinIsNotRetriedByItself) {
  TempDir dir("life-pin");
  AgentProcess::Options o;
  o.notify = true;
  AgentProcess agent(dir.path(), o);
  std::string pin = ReadFile(agent.token().pin_file());
  WriteFile(agent.token().pin_file(), "000000\n", 0600);
  agent.Start();
  ASSERT_GE(agent.WaitForNotify("STATUS=sealed", 10000), 0);
  EXPECT_NE(agent.Log().find("no retry can fix this"), std::string::npos) << agent.Log();
  // The right PIN back: still sealed until asked (a retry would have unsealed it).
  WriteFile(agent.token().pin_file(), pin, 0600);
  std::size_t from = agent.Notifications().size();
  EXPECT_LT(agent.WaitForNotify("READY=1", 3000, from), 0) << "the agent tried the PIN again by itself";
  EXPECT_EQ(agent.Log().find("next unseal attempt"), std::string::npos);
  ASSERT_EQ(agent.Call("POST", "/v1/sys/unseal").status, 200);
  EXPECT_GE(agent.WaitForNotify("READY=1", 10000, from), 0);
}

// systemd's WatchdogSec=30s used to set the housekeeping tick to 15 s, and read records
// waited that long for their fdatasync.
TEST(DaemonLifecycle, AReadsRecordReachesTheDiskWithinASecondWhateverTheWatchdog) {
  TempDir dir("life-audit");
  AgentProcess::Options o;
  o.notify = true;
  o.watchdog_usec = 30'000'000;
  AgentProcess agent(dir.path(), o);
  agent.Start();
  ASSERT_EQ(agent.Call("PUT", "/v1/secrets/app/key", json({{"value", "v"}}).dump()).status, 200);
  ASSERT_EQ(agent.Call("GET", "/v1/secrets/app/key").status, 200);
  const auto answered = std::chrono::steady_clock::now();
  auto on_disk = [&] {
    for (const json& rec : ReadAuditRecords(agent.state_dir() + "/audit")) {
      if (rec["route"] == "GET secret.get" && rec["path"] == "app/key") return true;
    }
    return false;
  };
  while (!on_disk() && std::chrono::steady_clock::now() - answered < std::chrono::seconds(10)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto waited = std::chrono::steady_clock::now() - answered;
  ASSERT_TRUE(on_disk()) << "the read's record never reached the disk";
  // Bounded far from both the 200 ms tick and the old 15 s one: a slow machine passes.
  EXPECT_LT(waited, std::chrono::seconds(5))
      << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count() << " ms";
}

class ReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AgentProcess::Options o;
    o.policy = true;
    agent_ = std::make_unique<AgentProcess>(dir_.path(), o);
    WriteFile(
        Policy(),
        "version = 1\n[roles.admin]\ngrants = [{ capabilities = [\"read\", \"write\"], paths = [\"**\"] }]\n"
        "[[bindings]]\nname = \"root\"\nroles = [\"admin\"]\nmatch = { uid = 0 }\n",
        0640);
    agent_->Start();
    ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/app/key", json({{"value", "v"}}).dump()).status, 200);
  }
  int Reload(std::string* out) {
    int status = 0;
    *out = agent_->Cli("reload --wait", &status, "", /*with_stderr=*/true);
    return status;
  }
  std::string Policy() const { return agent_->state_dir() + "/policy.toml"; }
  TempDir dir_{"life-reload"};
  std::unique_ptr<AgentProcess> agent_;
};

TEST_F(ReloadTest, ReloadWaitFailsOnABrokenPolicyAndTheRunningOneStays) {
  std::string out;
  ASSERT_EQ(Reload(&out), 0) << out;
  EXPECT_NE(out.find("reloaded"), std::string::npos) << out;
  const std::string good = ReadFile(Policy());
  WriteFile(Policy(), good + "\n[[bindings]]\nname = \"broken\"\nroles = [\"nope\"]\nmatch = { uid = 1 }\n",
            0640);
  EXPECT_EQ(Reload(&out), 4) << out;
  EXPECT_NE(out.find("reload_rejected"), std::string::npos) << out;
  EXPECT_NE(out.find("unknown role 'nope'"), std::string::npos) << "the verdict names the problem: " << out;
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/app/key").status, 200) << "the running policy still serves";
  Result<daemon::ReloadStatus> st =
      daemon::ReadReloadStatus(agent_->state_dir() + "/run/" + std::string(daemon::kReloadStatusFileName));
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_FALSE(st->ok);
  EXPECT_EQ(st->pid, agent_->pid());
  WriteFile(Policy(), good, 0640);
  EXPECT_EQ(Reload(&out), 0) << out;
}

TEST_F(ReloadTest, ReloadWithoutAnAgentSaysSoAndSignalsNobody) {
  ASSERT_EQ(agent_->Stop(), 0);
  std::remove((agent_->state_dir() + "/run/reload.status").c_str());
  std::string out;
  EXPECT_EQ(Reload(&out), 6) << out;
  EXPECT_NE(out.find("reload_status_missing"), std::string::npos) << out;
}

TEST(ReloadStatusFormat, RoundTripsAndRefusesAnythingElse) {
  daemon::ReloadStatus s{4242, 7, false, "policy: policy.toml:3: unknown role\nx"};
  Result<daemon::ReloadStatus> back = daemon::ParseReloadStatus(daemon::EncodeReloadStatus(s));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->pid, 4242);
  EXPECT_EQ(back->generation, 7U);
  EXPECT_FALSE(back->ok);
  EXPECT_EQ(back->message, "policy: policy.toml:3: unknown role x");
  for (const char* bad : {"", "sealkeepd-reload 2\npid 1\ngeneration 0\nresult ok\nmessage m\n",
                          "sealkeepd-reload 1\npid 0\ngeneration 0\nresult ok\nmessage m\n",
                          "sealkeepd-reload 1\npid 1\ngeneration x\nresult ok\nmessage m\n",
                          "sealkeepd-reload 1\npid 1\ngeneration 0\nresult maybe\nmessage m\n",
                          "sealkeepd-reload 1\npid 1\ngeneration 0\nresult ok\nmessage m\nmore\n",
                          "sealkeepd-reload 1\npid 1\ngeneration 0\nresult ok\n"}) {
    EXPECT_FALSE(daemon::ParseReloadStatus(bad).ok()) << bad;
  }
  EXPECT_FALSE(daemon::ParseReloadStatus(std::string(5000, 'a')).ok());
}

}  // namespace
}  // namespace sk::testing
