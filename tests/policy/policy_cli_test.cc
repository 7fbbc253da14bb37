// `sealkeep policy check` and `sealkeep policy explain`, run as a user would.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/fixtures/temp_dir.h"

namespace sk {
namespace {

const std::string kSealkeep = SK_BINARY_DIR "/tools/sealkeep";

const char* kGood = R"toml(version = 1

[roles.web-reader]
grants = [ { capabilities = ["read", "list"], paths = ["apps/web/**"] } ]

[[bindings]]
name = "web"
roles = ["web-reader"]
match = { unit = "web.service" }

[[bindings]]
name = "prod-only"
roles = ["web-reader"]
match = { uid = 4242 }
when.labels = { env = "prod" }
)toml";

const char* kBad = R"toml(version = 1

[roles.web-reader]
grants = [
  { capabilities = ["read"], paths = ["apps/web/**"] },
  { capabilities = ["reed"], paths = ["apps/web/**"] },
]
)toml";

class PolicyCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WriteFile(dir_.Join("policy.toml"), kGood);
    testing::WriteFile(dir_.Join("bad.toml"), kBad);
  }
  std::string Run(const std::string& args, int* status, bool with_stderr = false) {
    return testing::RunCommandOutput(
        "cd " + dir_.path() + " && " + kSealkeep + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null"),
        status);
  }
  testing::TempDir dir_{"policy-cli"};
};

TEST_F(PolicyCliTest, CheckAcceptsAGoodFile) {
  int status = -1;
  std::string out = Run("policy check policy.toml", &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "policy.toml: ok: 1 roles, 2 bindings\n");
  out = Run("--json policy check policy.toml", &status);
  EXPECT_EQ(status, 0);
  nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_EQ(j["valid"], true);
  EXPECT_EQ(j["bindings"], 2);
}

TEST_F(PolicyCliTest, CheckNamesTheLineOfABadFileAndExitsTwo) {
  int status = -1;
  std::string out = Run("policy check bad.toml", &status, true);
  EXPECT_EQ(status, 2);
  EXPECT_NE(out.find("bad.toml:6: unknown capability 'reed'"), std::string::npos) << out;
  out = Run("--json policy check bad.toml", &status);
  EXPECT_EQ(status, 2);
  nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_EQ(j["error"]["code"], "policy_invalid");
}

TEST_F(PolicyCliTest, CheckOfAMissingFileIsUnavailable) {
  int status = -1;
  Run("policy check nope.toml", &status);
  EXPECT_EQ(status, 6);
}

TEST_F(PolicyCliTest, ExplainShowsTheAllowingRule) {
  int status = -1;
  std::string out =
      Run("policy explain policy.toml --uid 65534 --unit web.service read apps/web/db", &status);
  EXPECT_EQ(status, 0);
  EXPECT_NE(out.find("decision: allow"), std::string::npos) << out;
  EXPECT_NE(out.find("allowed by binding 'web' (line 6): role 'web-reader' grants read on 'apps/web/db' via "
                     "'apps/web/**' (line 4)"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("may learn that it exists (list): yes"), std::string::npos) << out;
}

TEST_F(PolicyCliTest, ExplainShowsADenialAndExitsFive) {
  int status = -1;
  std::string out = Run("policy explain policy.toml --uid 65534 write apps/web/db", &status);
  EXPECT_EQ(status, 5);
  EXPECT_NE(out.find("decision: deny"), std::string::npos) << out;
  EXPECT_NE(out.find("binding 'web' (line 6): not the caller (needs unit web.service)"), std::string::npos)
      << out;
}

TEST_F(PolicyCliTest, ExplainTakesLabelsAndSpeaksJson) {
  int status = -1;
  std::string out =
      Run("--json policy explain policy.toml --uid 4242 --label env=prod read apps/web/x", &status);
  EXPECT_EQ(status, 0);
  nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_EQ(j["decision"], "allow");
  EXPECT_EQ(j["rule"]["binding"], "prod-only");
  EXPECT_EQ(j["rule"]["glob"], "apps/web/**");
  out = Run("--json policy explain policy.toml --uid 4242 --label env=dev read apps/web/x", &status);
  EXPECT_EQ(status, 5);
  j = nlohmann::json::parse(out);
  EXPECT_EQ(j["decision"], "deny");
  EXPECT_EQ(j["reason"], "condition_failed");
}

TEST_F(PolicyCliTest, WithoutAFileExplainAndCheckUseTheAgentsPolicyFromItsConfig) {
  testing::WriteFile(dir_.Join("sealkeep.toml"), "[agent]\nstate_dir = \"" + dir_.path() +
                                                     "\"\n\n[backend]\nkind = \"pkcs11\"\n\n[policy]\nfile = "
                                                     "\"policy.toml\"\n");
  int status = -1;
  std::string out = Run(
      "policy explain --config sealkeep.toml --uid 65534 --unit web.service read apps/web/db", &status, true);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("allowed by binding 'web' (line 6)"), std::string::npos) << out;
  out = testing::RunCommandOutput("SEALKEEP_STATE=" + dir_.path() + " " + kSealkeep +
                                      " policy explain --uid 65534 write apps/web/db 2>&1",
                                  &status);
  EXPECT_EQ(status, 5) << out;
  EXPECT_NE(out.find("decision: deny"), std::string::npos) << out;
  out = Run("policy check --config sealkeep.toml", &status);
  EXPECT_EQ(status, 0);
  EXPECT_NE(out.find("policy.toml: ok: 1 roles, 2 bindings"), std::string::npos) << out;
  // A config that turns the policy file off: say so, and how to name one.
  testing::WriteFile(dir_.Join("nopolicy.toml"),
                     "[agent]\nstate_dir = \"" + dir_.path() +
                         "\"\n\n[backend]\nkind = \"pkcs11\"\n\n[policy]\nfile = \"\"\n");
  out = Run("policy explain --config nopolicy.toml --uid 1 read apps/web/x", &status, true);
  EXPECT_EQ(status, 3) << out;
  EXPECT_NE(out.find("no_policy_file"), std::string::npos) << out;
  Run("policy explain --uid 1 read", &status);
  EXPECT_EQ(status, 2) << "OP and PATH are both required";
}

TEST_F(PolicyCliTest, ExplainRefusesAnUnknownOperation) {
  int status = -1;
  Run("policy explain policy.toml --uid 1 reed apps/web/x", &status);
  EXPECT_EQ(status, 2);
  Run("policy explain bad.toml --uid 1 read apps/web/x", &status);
  EXPECT_EQ(status, 2);
}

}  // namespace
}  // namespace sk
