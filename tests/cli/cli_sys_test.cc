// `sealkeep status|verify|seal|unseal|rotate|tpm reseal`, a caller the agent refuses, and
// an agent that is not there.
#include <sys/stat.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "tests/cli/cli_test_util.h"

namespace sk::testing {
namespace {

using nlohmann::json;
using CliSys = CliTest;

TEST_F(CliSys, StatusDescribesAnUnsealedAgent) {
  CliRun s = Run("status");
  ASSERT_EQ(s.status, 0) << s.err;
  EXPECT_NE(s.out.find("state:     unsealed"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("backend:   pkcs11"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("epoch mode"), std::string::npos) << s.out;
  json j = json::parse(Run("--json status").out);
  EXPECT_EQ(j["state"], "unsealed");
}

TEST_F(CliSys, VerifyOnlineSaysTheJournalVerifies) {
  Put("v/a", "1");
  Put("v/a", "2");
  CliRun v = Run("verify");
  ASSERT_EQ(v.status, 0) << v.err;
  EXPECT_NE(v.out.find("journal:  verifies"), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("problems: none"), std::string::npos) << v.out;
  json j = json::parse(Run("--json verify").out);
  EXPECT_EQ(j["ok"], true);
  EXPECT_GE(j["entries"].get<int>(), 2);
}

TEST_F(CliSys, AuditVerifyWithNoArgumentsAsksTheAgentAndFindsAnEditedRecord) {
  Put("au/a", "1");
  Put("au/a", "2");
  CliRun ok = Run("audit verify");
  ASSERT_EQ(ok.status, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("audit log: ok: "), std::string::npos) << ok.out;
  json j = json::parse(Run("--json audit verify").out);
  EXPECT_EQ(j["ok"], true);
  EXPECT_GE(j["records"].get<int>(), 2);

  // Edit the path of one recorded request in place, as someone covering their tracks would.
  bool edited = false;
  for (const auto& e : std::filesystem::directory_iterator(agent_->state_dir() + "/audit")) {
    if (!e.is_regular_file()) continue;
    std::string text = ReadFile(e.path().string());
    std::size_t at = text.find("au/a");
    if (at == std::string::npos) continue;
    text[at + 3] = 'b';
    WriteFile(e.path().string(), text, 0600);
    edited = true;
    break;
  }
  ASSERT_TRUE(edited) << "no audit record names au/a";
  CliRun broken = Run("audit verify");
  EXPECT_EQ(broken.status, 7) << broken.out << broken.err;
  EXPECT_NE(broken.out.find("audit log: BROKEN at "), std::string::npos) << broken.out;
}

TEST_F(CliSys, ASealedAgentRefusesWithTheReasonUntilUnsealed) {
  Put("s/a", "value");
  CliRun seal = Run("seal");
  ASSERT_EQ(seal.status, 0) << seal.err;
  EXPECT_NE(seal.out.find("sealed"), std::string::npos);
  CliRun get = Run("get s/a");
  EXPECT_EQ(get.status, 6);
  EXPECT_NE(get.err.find("sealed"), std::string::npos) << get.err;
  CliRun status = Run("status");
  EXPECT_EQ(status.status, 6);
  EXPECT_NE(status.out.find("state:     sealed"), std::string::npos) << status.out;
  CliRun unseal = Run("unseal");
  ASSERT_EQ(unseal.status, 0) << unseal.err;
  EXPECT_EQ(Get("s/a"), "value");
}

TEST_F(CliSys, RotateMakesTheNextGenerationAndValuesStillRead) {
  Put("k/a", "before");
  CliRun r = Run("rotate");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("master key generation 2"), std::string::npos) << r.out;
  EXPECT_EQ(Get("k/a"), "before");
  EXPECT_EQ(json::parse(Run("--json status").out)["backend"]["generation"], 2);
  EXPECT_EQ(Run("verify").status, 0);
}

TEST_F(CliSys, TpmResealReachesTheAgent) {
  // This agent runs on PKCS#11: the agent refuses, and the CLI reports its answer.
  CliRun r = Run("tpm reseal --pcrs 7,11");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("sealkeep: "), std::string::npos) << r.err;
  EXPECT_EQ(Run("tpm reseal --pcrs 99").status, 2);  // checked before sending
}

TEST_F(CliSys, AnotherUserIsForbidden) {
  Put("f/a", "secret");
  // Let `nobody` reach the socket: every folder above it searchable, the socket writable.
  std::string state = agent_->state_dir();
  for (const std::string& d : {dir_.path(), state, state + "/run"})
    ASSERT_EQ(::chmod(d.c_str(), 0711), 0) << d;
  ASSERT_EQ(::chmod(agent_->socket().c_str(), 0666), 0);
  const std::string nobody = "setpriv --reuid=nobody --regid=nogroup --clear-groups";
  CliRun get = Run("get f/a", "", nobody);
  EXPECT_EQ(get.status, 5) << get.out << get.err;
  EXPECT_NE(get.err.find("forbidden"), std::string::npos) << get.err;
  EXPECT_EQ(get.out, "");
  EXPECT_EQ(Run("put f/a", "overwrite", nobody).status, 5);
  EXPECT_EQ(Get("f/a"), "secret");
}

TEST_F(CliSys, AMissingSocketSaysTheAgentIsNotRunning) {
  CliRun r = Run("--socket " + Quote(dir_.Join("nope.sock")) + " get a/b");
  EXPECT_EQ(r.status, 6);
  EXPECT_NE(r.err.find("is sealkeepd running? no socket at " + dir_.Join("nope.sock")), std::string::npos)
      << r.err;
  StopAgent();
  CliRun stopped = Run("status");
  EXPECT_EQ(stopped.status, 6) << stopped.err;
}

}  // namespace
}  // namespace sk::testing
