// sealkeepd on the TPM backend, end to end: a real swtpm per test (its own state and
// ports), provisioned with sealkeep's own TPM provisioning, driven over the socket.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>

#include "crypto/bytes.h"
#include "hsm/tpm/inspect.h"
#include "hsm/tpm/provision.h"
#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/swtpm.h"
#include "tests/fixtures/temp_dir.h"

namespace sk::testing {
namespace {

using nlohmann::json;

std::string Body(const json& j) { return j.dump(); }

constexpr char kBootStateText[] = "boot state changed: PCR 7 differs from the sealed policy";

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// Sets or unsets an environment variable for one scope (this process and its children).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value == nullptr) {
      ::unsetenv(name);
    } else {
      ::setenv(name, value, 1);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

class TpmDaemonTest : public ::testing::Test {
 protected:
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
  // The NV anchor as the TPM holds it, read here, not through the agent: `sealkeep tpm
  // status`'s code, authorised as owner on a connection of its own (swtpm serves it while
  // the agent keeps its own connection idle). counter is the hardware counter's value.
  hsm::Anchor NvAnchor() {
    auto st = hsm::tpm::InspectTpm(agent_->TpmConfig());
    EXPECT_TRUE(st.ok()) << st.status().ToString();
    if (!st.ok() || !st->anchored) {
      ADD_FAILURE() << "the NV anchor cannot be read";
      return {};
    }
    return *st->anchored;
  }
  // Journal entries of `kind` (journal_format.h: the kind is byte 9 of an entry) whose
  // encoding contains `text`, read from the store with the sqlite3 shell: their seqs.
  std::string JournalSeqsOfKind(int kind, const std::string& text) {
    int rc = -1;
    char hex[3];
    std::snprintf(hex, sizeof hex, "%02x", kind);
    std::string out =
        RunCommandOutput("sqlite3 -readonly '" + agent_->state_dir() +
                             "/store.db' \"SELECT seq FROM journal WHERE substr(entry, 10, 1) = "
                             "x'" +
                             hex + "' AND instr(entry, CAST('" + text + "' AS BLOB)) > 0 ORDER BY seq\"",
                         &rc);
    EXPECT_EQ(rc, 0) << out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
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

TEST_F(TpmDaemonTest, AChangedBootStateSealsTheAgentAndSaysWhichPcrDiffers) {
  MakeAgent({7});
  agent_->Start();
  ASSERT_EQ(Call("PUT", "/v1/secrets/k", Body({{"value", "v"}})).status, 200);
  ASSERT_EQ(agent_->Stop(), 0);
  swtpm_.ExtendPcr(7);  // new firmware, say
  agent_->Start();

  auto health = Call("GET", "/v1/health");
  EXPECT_EQ(health.status, 503);
  EXPECT_EQ(health.Json()["status"], "sealed") << health.body;
  EXPECT_EQ(health.Json()["reason"], "boot_state_changed") << health.body;
  const std::string message = health.Json()["message"].get<std::string>();
  EXPECT_TRUE(StartsWith(message, kBootStateText)) << message;

  int rc = -1;
  std::string status = agent_->Cli("status", &rc, "", /*with_stderr=*/true);
  EXPECT_EQ(rc, 6) << status;
  EXPECT_NE(status.find(std::string("state:     sealed: boot_state_changed: ") + kBootStateText),
            std::string::npos)
      << status;

  EXPECT_EQ(Call("GET", "/v1/secrets/k").ErrorCode(), "boot_state_changed");
  // Retrying does not help by itself, and says why in the same words.
  auto unseal = Call("POST", "/v1/sys/unseal");
  EXPECT_EQ(unseal.status, 503);
  EXPECT_EQ(unseal.ErrorCode(), "boot_state_changed") << unseal.body;
  EXPECT_TRUE(StartsWith(unseal.Json()["error"]["message"].get<std::string>(), kBootStateText))
      << unseal.body;

  // A re-seal needs the unsealed key: refused while sealed, with the reason it is sealed.
  auto reseal = Call("POST", "/v1/sys/reseal", Body({{"pcrs", {7}}}));
  EXPECT_EQ(reseal.status, 503);
  EXPECT_EQ(reseal.ErrorCode(), "boot_state_changed") << reseal.body;
  std::string cli = agent_->Cli("tpm reseal --pcrs 7", &rc, "", /*with_stderr=*/true);
  EXPECT_EQ(rc, 6) << cli;
  EXPECT_NE(cli.find(std::string("sealkeep: boot_state_changed: ") + kBootStateText), std::string::npos)
      << cli;

  // Back to the sealed boot state (a reboot resets the PCRs): the retry now unseals.
  swtpm_.Restart();
  EXPECT_EQ(Call("POST", "/v1/sys/unseal").status, 200);
  EXPECT_EQ(Call("GET", "/v1/secrets/k").Json()["value"], "v");
}

TEST_F(TpmDaemonTest, ResealThroughTheCliAcceptsTheNewBootStateAndIsJournaled) {
  MakeAgent({7});
  agent_->Start();
  ASSERT_EQ(Call("GET", "/v1/health").Json()["status"], "unsealed") << agent_->Log();
  ASSERT_EQ(Call("PUT", "/v1/secrets/k", Body({{"value", "v"}})).status, 200);
  swtpm_.ExtendPcr(7);  // an accepted change, while the agent runs unsealed
  int rc = -1;
  std::string out = agent_->Cli("tpm reseal --pcrs 7", &rc, "", /*with_stderr=*/true);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("re-sealed the master key to PCRs 7 at their current values"), std::string::npos) << out;
  auto head = Call("GET", "/v1/sys/status").Json()["journal"]["head_seq"].get<std::uint64_t>();
  EXPECT_TRUE(Call("GET", "/v1/sys/journal/verify").Json()["ok"].get<bool>());
  ASSERT_EQ(agent_->Stop(), 0);
  EXPECT_EQ(JournalSeqsOfKind(12 /* reseal */, "pcrs=7"), std::to_string(head))
      << "one reseal entry, the last one";
  auto tpm = hsm::tpm::InspectTpm(agent_->TpmConfig());
  ASSERT_TRUE(tpm.ok()) << tpm.status().ToString();
  EXPECT_TRUE(tpm->generations[0].pcrs_match) << "sealed to the extended PCR 7 now";
  EXPECT_FALSE(std::filesystem::exists(agent_->TpmConfig().state_dir + "/.master-00000001.sealed.staged"));

  agent_->Start();
  EXPECT_EQ(Call("GET", "/v1/health").Json()["status"], "unsealed") << "sealed to the new boot state now";
  EXPECT_EQ(Call("GET", "/v1/secrets/k").Json()["value"], "v");
  EXPECT_TRUE(Call("GET", "/v1/sys/journal/verify").Json()["ok"].get<bool>());

  // The old boot state (a reboot resets PCR 7) no longer unseals it.
  ASSERT_EQ(agent_->Stop(), 0);
  swtpm_.Restart();
  agent_->Start();
  EXPECT_EQ(Call("GET", "/v1/health").Json()["reason"], "boot_state_changed");
}

TEST_F(TpmDaemonTest, ExpectedTpmFailuresLeaveNoTss2LogLinesUnlessTheUserAsksForThem) {
  MakeAgent({7});
  agent_->Start();
  ASSERT_EQ(agent_->Stop(), 0);
  swtpm_.ExtendPcr(7);  // from now on every unseal fails its policy check (TPM_RC_POLICY_FAIL)
  {
    ScopedEnv unset("TSS2_LOG", nullptr);
    agent_->Start();
    EXPECT_EQ(Call("GET", "/v1/health").Json()["reason"], "boot_state_changed");
    EXPECT_EQ(Call("POST", "/v1/sys/unseal").ErrorCode(), "boot_state_changed");
    ASSERT_EQ(agent_->Stop(), 0);
    // tpm2-tss log lines name their source file: "ERROR:esys:src/tss2-esys/api/...".
    EXPECT_EQ(agent_->Log().find("src/tss2-"), std::string::npos) << agent_->Log();
    // The offline verifier opens the backend in its own process, with the library's default.
    int rc = -1;
    std::string out = agent_->Cli("verify --config '" + agent_->config_path() + "'", &rc, "", true);
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(out.find(kBootStateText), std::string::npos) << out;
    EXPECT_EQ(out.find("src/tss2-"), std::string::npos) << out;
  }
  {
    ScopedEnv verbose("TSS2_LOG", "all+ERROR");  // the user's choice is kept
    int rc = -1;
    std::string out = agent_->Cli("verify --config '" + agent_->config_path() + "'", &rc, "", true);
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(out.find("ERROR:esys:"), std::string::npos) << out;
  }
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
  std::uint64_t counter = NvAnchor().counter;
  for (int i = 0; i < 3; ++i) {
    auto put = Call("PUT", "/v1/secrets/s", Body({{"value", std::to_string(i)}}));
    ASSERT_EQ(put.status, 200) << put.body;
    const std::uint64_t seq = put.Json()["seq"].get<std::uint64_t>();
    auto j = Call("GET", "/v1/sys/status").Json()["journal"];
    ASSERT_EQ(j["head_seq"].get<std::uint64_t>(), seq);
    // In the TPM, before the PUT was acknowledged: this commit's head.
    hsm::Anchor nv = NvAnchor();
    EXPECT_EQ(nv.seq, seq);
    EXPECT_EQ(HexEncode(nv.head_hash), j["head_hash"].get<std::string>());
    EXPECT_GT(nv.counter, counter);
    counter = nv.counter;
    EXPECT_EQ(j["anchor_seq"], j["head_seq"]);
  }
}

TEST_F(TpmDaemonTest, EpochModeMovesTheNvAnchorOnlyForDestroyAndRollbackWithinAnEpoch) {
  MakeAgent({}, "epoch");  // epoch_seconds = 60: the whole test runs inside one epoch
  agent_->Start();
  const hsm::Anchor at_start = NvAnchor();
  EXPECT_EQ(at_start.seq, Call("GET", "/v1/sys/status").Json()["journal"]["head_seq"].get<std::uint64_t>())
      << "anchored at start";
  std::uint64_t seq = 0;
  for (int i = 1; i <= 3; ++i) {
    auto put = Call("PUT", "/v1/secrets/e", Body({{"value", "v" + std::to_string(i)}}));
    ASSERT_EQ(put.status, 200) << put.body;
    seq = put.Json()["seq"].get<std::uint64_t>();
    hsm::Anchor nv = NvAnchor();
    EXPECT_EQ(nv.seq, at_start.seq) << "a plain PUT does not spend an NV write";
    EXPECT_EQ(nv.head_hash, at_start.head_hash);
    EXPECT_EQ(nv.counter, at_start.counter);
  }
  EXPECT_GT(seq, at_start.seq);

  auto destroy = Call("POST", "/v1/secrets/e/destroy", Body({{"version", 1}}));
  ASSERT_EQ(destroy.status, 200) << destroy.body;
  hsm::Anchor nv = NvAnchor();
  EXPECT_EQ(nv.seq, destroy.Json()["seq"].get<std::uint64_t>()) << "a destroy is anchored before its answer";
  EXPECT_GT(nv.counter, at_start.counter);
  const hsm::Anchor after_destroy = nv;

  ASSERT_EQ(Call("PUT", "/v1/secrets/e", Body({{"value", "v4"}})).status, 200);
  EXPECT_EQ(NvAnchor().seq, after_destroy.seq);

  auto rollback = Call("POST", "/v1/secrets/e/rollback", Body({{"to", 2}}));
  ASSERT_EQ(rollback.status, 200) << rollback.body;
  nv = NvAnchor();
  EXPECT_EQ(nv.seq, rollback.Json()["seq"].get<std::uint64_t>())
      << "a rollback is anchored before its answer";
  EXPECT_EQ(HexEncode(nv.head_hash),
            Call("GET", "/v1/sys/status").Json()["journal"]["head_hash"].get<std::string>());
}

TEST_F(TpmDaemonTest, APowerLossMakesTheOrderlyCounterJumpAndTheAgentStartsWithNoFalseAlarm) {
  MakeAgent({7}, "strict");
  agent_->Start();
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(Call("PUT", "/v1/secrets/p", Body({{"value", "p" + std::to_string(i)}})).status, 200);
  ASSERT_EQ(Call("PUT", "/v1/secrets/q", Body({{"value", "q"}})).status, 200);
  // The host loses power: the agent dies where it stands and the TPM gets no TPM2_Shutdown.
  EXPECT_EQ(agent_->Stop(SIGKILL), 128 + SIGKILL);
  const hsm::Anchor before = NvAnchor();
  swtpm_.PowerLoss();
  const hsm::Anchor after = NvAnchor();
  EXPECT_GT(after.counter, before.counter + 1) << "the orderly counter jumped ahead";
  EXPECT_EQ(after.seq, before.seq);
  EXPECT_EQ(after.head_hash, before.head_hash);

  agent_->Start();
  auto health = Call("GET", "/v1/health");
  EXPECT_EQ(health.status, 200) << health.body << agent_->Log();
  EXPECT_EQ(health.Json()["status"], "unsealed") << health.body;
  EXPECT_EQ(agent_->Log().find("replay"), std::string::npos) << agent_->Log();
  EXPECT_EQ(Call("GET", "/v1/secrets/p").Json()["value"], "p2");
  EXPECT_EQ(Call("GET", "/v1/secrets/p?version=1").Json()["value"], "p0");
  EXPECT_EQ(Call("GET", "/v1/secrets/q").Json()["value"], "q");
  auto verify = Call("GET", "/v1/sys/journal/verify").Json();
  EXPECT_TRUE(verify["ok"].get<bool>()) << verify.dump();
  // Writing on goes on from the jumped counter.
  ASSERT_EQ(Call("PUT", "/v1/secrets/p", Body({{"value", "p3"}})).status, 200);
  EXPECT_GT(Call("GET", "/v1/sys/status").Json()["journal"]["anchor_counter"].get<std::uint64_t>(),
            after.counter);
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
