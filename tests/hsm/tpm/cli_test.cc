// The built `sealkeep tpm provision` and `sealkeep tpm status`, end to end against a
// real swtpm: output, exit codes, --json, idempotence, and no secret on any output.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/hsm/tpm/test_util.h"

namespace sk::hsm::tpm {
namespace {

using sk::testing::RunCommandOutput;

class CliTest : public TpmTest {
 protected:
  // Runs sealkeep with `args` plus --tcti/--state of this test; stdout+stderr.
  std::string Sealkeep(const std::string& args, int* status, const std::string& global = "") {
    std::string cmd = std::string(SK_BINARY_DIR) + "/tools/sealkeep " + global + " tpm " + args +
                      " --tcti '" + config_.tcti + "' --state '" + config_.state_dir + "' 2>&1";
    return RunCommandOutput(cmd, status);
  }
};

TEST_F(CliTest, ProvisionTwiceThenStatus) {
  UseAuthFile("cli secret auth value");
  int rc = -1;
  std::string out = Sealkeep("provision --pcrs 7,11 --auth-file '" + config_.auth_file + "'", &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("sealed key"), std::string::npos) << out;
  EXPECT_NE(out.find("created"), std::string::npos) << out;
  EXPECT_NE(out.find("generation 1, sealed to sha256 PCRs 7,11, auth value required"), std::string::npos)
      << out;
  EXPECT_NE(out.find(": provisioned"), std::string::npos) << out;
  EXPECT_EQ(out.find("ERROR"), std::string::npos) << out;  // no tpm2-tss log noise

  out = Sealkeep("provision --pcrs 7,11 --auth-file '" + config_.auth_file + "'", &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(out.find("created"), std::string::npos) << out;
  EXPECT_NE(out.find("exists"), std::string::npos) << out;
  EXPECT_NE(out.find("already provisioned; nothing changed"), std::string::npos) << out;

  out = Sealkeep("status", &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(
      out.find("generation 1 (current): sealed to sha256 PCRs 7,11, auth value required; PCRs now match"),
      std::string::npos)
      << out;
  EXPECT_NE(out.find("NV counter:    0x01500100, defined"), std::string::npos) << out;
  EXPECT_NE(out.find("anchored seq 0"), std::string::npos) << out;
  EXPECT_NE(out.find("problems:      none"), std::string::npos) << out;
  EXPECT_EQ(out.find("cli secret"), std::string::npos) << out;

  swtpm_.ExtendPcr(11);
  out = Sealkeep("status", &rc);
  EXPECT_EQ(rc, 6) << out;
  EXPECT_NE(out.find("PCRs now differ: 11 (will not unseal)"), std::string::npos) << out;
}

TEST_F(CliTest, StatusAsJson) {
  int rc = -1;
  std::string out = Sealkeep("provision --pcrs 7", &rc);
  ASSERT_EQ(rc, 0) << out;
  out = Sealkeep("status", &rc, "--json");
  ASSERT_EQ(rc, 0) << out;
  auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  ASSERT_EQ(j["generations"].size(), 1u);
  EXPECT_EQ(j["generations"][0]["pcrs"], nlohmann::json::array({7}));
  EXPECT_EQ(j["generations"][0]["pcrs_match"], true);
  EXPECT_EQ(j["generations"][0]["auth_required"], false);
  EXPECT_EQ(j["nv_counter"]["handle"], "0x01500100");
  EXPECT_EQ(j["nv_anchor"]["seq"], 0);
  EXPECT_EQ(j["nv_anchor"]["keyset_matches"], true);
  EXPECT_EQ(j["keyset_id"].get<std::string>().size(), 16u);
  EXPECT_TRUE(j["problems"].empty());

  out = Sealkeep("provision --pcrs 7", &rc, "--json");
  ASSERT_EQ(rc, 0) << out;
  j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["created"], false);
}

TEST_F(CliTest, ErrorsHaveTheirExitCodes) {
  int rc = -1;
  std::string out = Sealkeep("status", &rc);
  EXPECT_EQ(rc, 4) << out;  // not_provisioned: failed precondition
  EXPECT_NE(out.find("not_provisioned"), std::string::npos) << out;

  out = Sealkeep("provision --pcrs 7,99", &rc);
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("bad_pcrs"), std::string::npos) << out;

  std::string cmd = std::string(SK_BINARY_DIR) +
                    "/tools/sealkeep tpm provision --tcti swtpm:host=127.0.0.1,port=1 --state '" +
                    config_.state_dir + "' 2>&1";
  out = RunCommandOutput(cmd, &rc);
  EXPECT_EQ(rc, 6) << out;
  EXPECT_NE(out.find("tpm_unavailable"), std::string::npos) << out;
}

TEST_F(CliTest, HelpDescribesTheFlags) {
  int rc = -1;
  std::string out =
      RunCommandOutput(std::string(SK_BINARY_DIR) + "/tools/sealkeep tpm provision --help", &rc);
  EXPECT_EQ(rc, 0);
  for (const char* flag :
       {"--tcti", "--state", "--pcrs", "--auth-file", "--owner-auth-file", "--nv-counter"}) {
    EXPECT_NE(out.find(flag), std::string::npos) << flag << "\n" << out;
  }
}

}  // namespace
}  // namespace sk::hsm::tpm
