// sealkeepd on the TPM backend, end to end: a real swtpm per test (its own state and
// ports), provisioned with sealkeep's own TPM provisioning, driven over the socket.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "hsm/tpm/provision.h"
#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/swtpm.h"
#include "tests/fixtures/temp_dir.h"

namespace sk::testing {
namespace {

using nlohmann::json;

std::string Body(const json& j) { return j.dump(); }

class TpmDaemonTest : public ::testing::Test {
 protected:
  // Provisioning probes NV indices that do not exist yet; tpm2-tss would log each.
  static void SetUpTestSuite() { ::setenv("TSS2_LOG", "all+none", 1); }
  void MakeAgent(std::vector<int> pcrs, const std::string& anchor_mode = "epoch",
                 const std::string& auth_file = "") {
    AgentProcess::Options o;
    o.tpm_tcti = swtpm_.Tcti();
    o.tpm_pcrs = std::move(pcrs);
    o.tpm_auth_file = auth_file;
    o.anchor_mode = anchor_mode;
    agent_ = std::make_unique<AgentProcess>(dir_.path(), o);
    auto report = hsm::tpm::ProvisionTpm(agent_->TpmConfig());
    ASSERT_TRUE(report.ok()) << report.status().ToString();
  }
  HttpResponse Call(const std::string& m, const std::string& t, const std::string& b = "") {
    return agent_->Call(m, t, b);
  }

  TempDir dir_{"tpmd"};
  Swtpm swtpm_{dir_.path()};
  std::unique_ptr<AgentProcess> agent_;
};

TEST_F(TpmDaemonTest, ServesSecretsOnTheTpmAndKeepsThemAcrossRestarts) {
  MakeAgent({7});
  agent_->Start();
  ASSERT_EQ(Call("GET", "/v1/health").Json()["status"], "unsealed") << agent_->Log();
  auto status = Call("GET", "/v1/sys/status").Json();
  EXPECT_EQ(status["backend"]["kind"], "tpm");
  EXPECT_TRUE(status["backend"]["hardware_counter"].get<bool>());
  ASSERT_EQ(Call("PUT", "/v1/secrets/db/pw", Body({{"value", "on-the-tpm"}})).status, 200);
  ASSERT_EQ(Call("PUT", "/v1/secrets/db/pw", Body({{"value", "second"}})).status, 200);
  ASSERT_EQ(Call("POST", "/v1/secrets/db/pw/rollback", Body({{"to", 1}})).status, 200);
  EXPECT_EQ(agent_->Stop(), 0);
  agent_->Start();
  EXPECT_EQ(Call("GET", "/v1/secrets/db/pw").Json()["value"], "on-the-tpm");
  EXPECT_TRUE(Call("GET", "/v1/sys/journal/verify").Json()["ok"].get<bool>());
  // A reboot of the TPM (PCRs reset to the same values) changes nothing.
  EXPECT_EQ(agent_->Stop(), 0);
  swtpm_.Restart();
  agent_->Start();
  EXPECT_EQ(Call("GET", "/v1/secrets/db/pw?version=2").Json()["value"], "second");
}

TEST_F(TpmDaemonTest, AChangedBootStateSealsTheAgentWithAClearReasonAndResealRecovers) {
  MakeAgent({7});
  agent_->Start();
  ASSERT_EQ(Call("PUT", "/v1/secrets/k", Body({{"value", "v"}})).status, 200);
  ASSERT_EQ(agent_->Stop(), 0);
  swtpm_.ExtendPcr(7);  // new firmware, say
  agent_->Start();
  auto health = Call("GET", "/v1/health");
  EXPECT_EQ(health.status, 503);
  EXPECT_EQ(health.Json()["reason"], "boot_state_changed") << health.body;
  EXPECT_NE(health.Json()["message"].get<std::string>().find("PCR 7"), std::string::npos) << health.body;
  EXPECT_EQ(Call("GET", "/v1/secrets/k").ErrorCode(), "boot_state_changed");
  EXPECT_EQ(Call("POST", "/v1/sys/unseal").ErrorCode(), "boot_state_changed")
      << "retrying does not help by itself";

  // Back to the sealed boot state (a reboot resets the PCRs), unseal, and this time accept
  // a change while unsealed: reseal to the current PCR 7, journaled.
  swtpm_.Restart();
  ASSERT_EQ(Call("POST", "/v1/sys/unseal").status, 200);
  swtpm_.ExtendPcr(7);
  auto reseal = Call("POST", "/v1/sys/reseal", Body({{"pcrs", {7}}}));
  ASSERT_EQ(reseal.status, 200) << reseal.body;
  ASSERT_EQ(agent_->Stop(), 0);
  agent_->Start();
  EXPECT_EQ(Call("GET", "/v1/health").Json()["status"], "unsealed") << "sealed to the new boot state now";
  EXPECT_EQ(Call("GET", "/v1/secrets/k").Json()["value"], "v");
  auto verify = Call("GET", "/v1/sys/journal/verify").Json();
  EXPECT_TRUE(verify["ok"].get<bool>());
}

TEST_F(TpmDaemonTest, AWrongAuthValueKeepsTheAgentSealed) {
  std::string auth = dir_.Join("tpm-auth");
  WriteFile(auth, "correct horse battery staple", 0600);
  MakeAgent({}, "epoch", auth);
  WriteFile(auth, "wrong", 0600);
  agent_->Start();
  EXPECT_EQ(Call("GET", "/v1/health").Json()["reason"], "auth_incorrect") << Call("GET", "/v1/health").body;
  swtpm_.ClearLockout();
  WriteFile(auth, "correct horse battery staple", 0600);
  EXPECT_EQ(Call("POST", "/v1/sys/unseal").status, 200);
  EXPECT_EQ(agent_->Log().find("correct horse"), std::string::npos) << "the auth value never reaches the log";
}

TEST_F(TpmDaemonTest, StrictModeAdvancesTheNvAnchorWithEveryCommit) {
  MakeAgent({}, "strict");
  agent_->Start();
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Call("PUT", "/v1/secrets/s", Body({{"value", std::to_string(i)}})).status, 200);
    auto j = Call("GET", "/v1/sys/status").Json()["journal"];
    EXPECT_EQ(j["anchor_seq"], j["head_seq"]);
  }
}

TEST_F(TpmDaemonTest, AReplayedStoreIsDetectedAgainstTheNvAnchor) {
  MakeAgent({7});
  agent_->Start();
  ASSERT_EQ(Call("PUT", "/v1/secrets/r", Body({{"value", "one"}})).status, 200);
  ASSERT_EQ(agent_->Stop(), 0);
  namespace fs = std::filesystem;
  fs::create_directories(dir_.Join("copy"));
  for (const char* f : {"store.db", "store.db-wal"}) {
    if (fs::exists(agent_->state_dir() + "/" + f))
      fs::copy_file(agent_->state_dir() + "/" + f, dir_.Join("copy/") + f);
  }
  agent_->Start();
  ASSERT_EQ(Call("PUT", "/v1/secrets/r", Body({{"value", "two"}})).status, 200);
  ASSERT_EQ(Call("POST", "/v1/secrets/r/destroy", Body({{"version", 1}})).status, 200);  // anchored at once
  ASSERT_EQ(agent_->Stop(), 0);
  for (const char* f : {"store.db", "store.db-wal", "store.db-shm"}) {
    fs::remove(agent_->state_dir() + "/" + f);
    if (fs::exists(dir_.Join("copy/") + f))
      fs::copy_file(dir_.Join("copy/") + f, agent_->state_dir() + "/" + f);
  }
  agent_->Start();
  EXPECT_EQ(Call("GET", "/v1/health").Json()["reason"], "replay_detected")
      << "the destroyed version must not come back";
  EXPECT_EQ(Call("GET", "/v1/secrets/r?version=1").status, 503);
}

}  // namespace
}  // namespace sk::testing
