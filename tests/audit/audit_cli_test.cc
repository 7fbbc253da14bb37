// `sealkeep audit verify` and `sealkeep audit tail`, run as a user would.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "agent/audit/audit_writer.h"
#include "tests/audit/audit_test_util.h"
#include "tests/fixtures/agent_process.h"

namespace sk::audit {
namespace {

const std::string kSealkeep = SK_BINARY_DIR "/tools/sealkeep";

class AuditCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WriteFile(tmp_.Join("ak.hex"), HexOf(0x42) + "\n");  // TestKey(): 32 bytes of 0x42
    testing::WriteFile(tmp_.Join("ak.raw"), std::string(32, '\x42'));
    writer_ = OpenWriter();
    for (int i = 1; i <= 25; ++i)
      ASSERT_TRUE(writer_->Append(test::Record(i), AuditWriter::Durability::kSync).ok());
    ASSERT_TRUE(writer_->Close().ok());
    writer_.reset();
  }
  static std::string HexOf(int byte) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", byte);
    std::string out;
    for (int i = 0; i < 32; ++i) out += b;
    return out;
  }
  std::unique_ptr<AuditWriter> OpenWriter() {
    AuditWriterOptions o;
    o.dir = dir_;
    o.max_segment_bytes = 4096;
    auto w = AuditWriter::Open(o, key_);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return w.ok() ? std::move(w).value() : nullptr;
  }
  std::string Run(const std::string& args, int* status, bool with_stderr = false) {
    return testing::RunCommandOutput(
        "cd " + tmp_.path() + " && " + kSealkeep + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null"),
        status);
  }

  testing::TempDir tmp_{"audit-cli"};
  std::string dir_ = tmp_.Join("audit");
  SecretBytes key_ = test::TestKey();
  std::unique_ptr<AuditWriter> writer_;
};

TEST_F(AuditCliTest, VerifyPassesAnIntactLog) {
  int status = -1;
  std::string out = Run("audit verify audit --key-file ak.hex", &status);
  EXPECT_EQ(status, 0);
  EXPECT_NE(out.find("audit: ok: 25 records (seq 1..25) in"), std::string::npos) << out;
  EXPECT_NE(out.find("checkpoint verified"), std::string::npos) << out;
  out = Run("audit verify audit --key-file ak.raw", &status);
  EXPECT_EQ(status, 0) << out;
  out = Run("--json audit verify audit --key-file ak.hex", &status);
  EXPECT_EQ(status, 0);
  nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["records"], 25);
}

TEST_F(AuditCliTest, VerifyNamesTheFirstBrokenRecordAndExitsSeven) {
  test::EditSegment(dir_, 2, [](std::vector<std::string>& l) { l[3][25] ^= 1; });
  int status = -1;
  std::string out = Run("audit verify audit --key-file ak.hex", &status, true);
  EXPECT_EQ(status, 7);
  EXPECT_NE(out.find("audit-00000002.log:4 (seq "), std::string::npos) << out;
  EXPECT_NE(out.find("bad_mac"), std::string::npos) << out;
  out = Run("--json audit verify audit --key-file ak.hex", &status);
  EXPECT_EQ(status, 7);
  nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["problem"]["kind"], "bad_mac");
  EXPECT_EQ(j["problem"]["file"], "audit-00000002.log");
  EXPECT_EQ(j["problem"]["line"], 4);
}

TEST_F(AuditCliTest, VerifyChecksOneSegmentFile) {
  int status = -1;
  std::string out = Run("audit verify audit/audit-00000002.log --key-file ak.hex", &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("alone"), std::string::npos) << out;
}

TEST_F(AuditCliTest, VerifyWithTheWrongKeyOrNoKeyFails) {
  testing::WriteFile(tmp_.Join("wrong.hex"), HexOf(0x43));
  int status = -1;
  Run("audit verify audit --key-file wrong.hex", &status);
  EXPECT_EQ(status, 7);
  std::string out = Run("audit verify audit", &status, true);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("--key-file"), std::string::npos) << out;
  testing::WriteFile(tmp_.Join("short.hex"), "abcd");
  Run("audit verify audit --key-file short.hex", &status);
  EXPECT_EQ(status, 2);
  Run("audit verify nowhere --key-file ak.hex", &status);
  EXPECT_NE(status, 0);
}

TEST_F(AuditCliTest, VerifyHonoursAnExpectedLastSeq) {
  int status = -1;
  Run("audit verify audit --key-file ak.hex --expect-last-seq 25", &status);
  EXPECT_EQ(status, 0);
  std::string out = Run("audit verify audit --key-file ak.hex --expect-last-seq 26", &status);
  EXPECT_EQ(status, 7);
  EXPECT_NE(out.find("truncated"), std::string::npos) << out;
}

TEST_F(AuditCliTest, TailPrintsTheLastRecordsAsJsonLines) {
  int status = -1;
  std::string out = Run("audit tail -n 3 audit", &status);
  EXPECT_EQ(status, 0);
  std::vector<std::string> lines = test::SplitLines(out);
  ASSERT_EQ(lines.size(), 3U) << out;
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(nlohmann::json::parse(lines[static_cast<std::size_t>(i)])["seq"], 23 + i);
  out = Run("audit tail -n 100 audit", &status);
  EXPECT_EQ(test::SplitLines(out).size(), 25U);  // across every segment, headers left out
  out = testing::RunCommandOutput("SEALKEEP_STATE=" + tmp_.path() + " " + kSealkeep + " audit tail", &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(test::SplitLines(out).size(), 10U);
}

TEST_F(AuditCliTest, TailFollowsNewRecordsAcrossRotation) {
  const std::string out_file = tmp_.Join("follow.out");
  const std::string pid_file = tmp_.Join("follow.pid");
  ASSERT_EQ(
      testing::RunCommand("cd " + tmp_.path() + " && (timeout 20 " + kSealkeep +
                          " audit tail -f -n 1 audit > " + out_file + " 2>&1 & echo $! > " + pid_file + ")"),
      0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  writer_ = OpenWriter();
  for (int i = 26; i <= 45; ++i) {  // enough to rotate at least once
    ASSERT_TRUE(writer_->Append(test::Record(i), AuditWriter::Durability::kBuffered).ok());
  }
  ASSERT_TRUE(writer_->Close().ok());
  std::string out;
  for (int tries = 0; tries < 50; ++tries) {
    out = testing::ReadFile(out_file);
    if (test::SplitLines(out).size() >= 21) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  pid_t pid = static_cast<pid_t>(std::stol(testing::ReadFile(pid_file)));
  ::kill(pid, SIGTERM);
  std::vector<std::string> lines = test::SplitLines(out);
  ASSERT_EQ(lines.size(), 21U) << out;  // record 25, then 26..45 (20 records, none twice)
  EXPECT_EQ(nlohmann::json::parse(lines[0])["seq"], 25);
  for (std::size_t i = 1; i < lines.size(); ++i) {
    EXPECT_EQ(nlohmann::json::parse(lines[i])["seq"], 25 + i) << lines[i];
  }
}

// A real agent's log, verified offline after the agent stopped: AK comes out of its store
// through its own backend (the SoftHSM2 token), as on a host where AK never leaves it.
TEST(AuditCliOfflineTest, VerifyWithTheStateFolderUnwrapsTheAuditKeyThroughTheBackend) {
  testing::TempDir dir("audit-offline");
  testing::AgentProcess agent(dir.path());
  agent.Start();
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(agent.Call("PUT", "/v1/secrets/o/" + std::to_string(i), "{\"value\":\"v\"}").status, 200);
  ASSERT_EQ(agent.Call("GET", "/v1/secrets/o/1").status, 200);
  int status = -1;
  std::string out = agent.Cli("audit verify --state " + agent.state_dir(), &status, "", true);
  EXPECT_EQ(status, 6) << "refused while the agent runs: " << out;
  EXPECT_NE(out.find("the agent is running"), std::string::npos) << out;
  ASSERT_EQ(agent.Stop(), 0);

  out = agent.Cli("audit verify --state " + agent.state_dir(), &status, "", true);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find(agent.state_dir() + "/audit: ok: "), std::string::npos) << out;
  EXPECT_NE(out.find("checkpoint verified"), std::string::npos) << out;
  out = agent.Cli("--json audit verify --config " + agent.config_path(), &status);
  EXPECT_EQ(status, 0) << out;
  nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_TRUE(j["ok"].get<bool>());
  EXPECT_GE(j["records"].get<int>(), 6);

  // An edited record is found, at its place.
  const std::string segment = agent.state_dir() + "/audit/" + SegmentFileName(1);
  std::vector<std::string> lines = test::SplitLines(testing::ReadFile(segment));
  ASSERT_GE(lines.size(), 4U);
  std::size_t at = lines[3].find("\"path\":\"o/");
  ASSERT_NE(at, std::string::npos) << lines[3];
  lines[3][at + 11] = lines[3][at + 11] == '9' ? '8' : '9';
  testing::WriteFile(segment, test::JoinLines(lines));
  out = agent.Cli("audit verify --state " + agent.state_dir(), &status, "", true);
  EXPECT_EQ(status, 7) << out;
  EXPECT_NE(out.find(SegmentFileName(1) + ":4"), std::string::npos) << out;
  EXPECT_NE(out.find("bad_mac"), std::string::npos) << out;
  EXPECT_EQ(out.find(testing::ReadFile(agent.token().pin_file())), std::string::npos)
      << "no PIN in the output";
}

}  // namespace
}  // namespace sk::audit
