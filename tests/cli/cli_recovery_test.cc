// `sealkeep recovery` and `sealkeep backup` end to end (issue 20, docs/recovery.md), as the
// runbook has an operator run them: host A's agent (SoftHSM2) makes a recovery key and a
// backup; A's token is wiped; host B (a fresh swtpm) is restored offline with 3 of 5
// shares from a file and its agent serves every secret, history included.
#include <filesystem>
#include <regex>

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
  EXPECT_EQ(b.Stop(), 0);
}

}  // namespace
}  // namespace sk::testing
