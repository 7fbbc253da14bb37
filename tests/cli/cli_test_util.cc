#include "tests/cli/cli_test_util.h"

#include <nlohmann/json.hpp>

namespace sk::testing {

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

void CliTest::StartAgent() {
  if (!agent_) agent_ = std::make_unique<AgentProcess>(dir_.path());
  agent_->Start();
}

CliRun CliTest::Run(const std::string& args, const std::string& in, const std::string& as) {
  ++runs_;
  std::string in_file = dir_.Join("in-" + std::to_string(runs_));
  std::string err_file = dir_.Join("err-" + std::to_string(runs_));
  WriteFile(in_file, in, 0600);
  std::string cmd = as + (as.empty() ? "" : " ") + "env SEALKEEP_SOCKET=" + Quote(agent_->socket()) + " " +
                    SealkeepBinary() + " " + args + " < " + Quote(in_file) + " 2> " + Quote(err_file);
  CliRun r;
  r.out = RunCommandOutput(cmd, &r.status);
  r.err = ReadFile(err_file);
  return r;
}

std::uint64_t CliTest::Put(const std::string& path, const std::string& value) {
  CliRun r = Run("--json put " + Quote(path), value);
  EXPECT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (!j.is_object() || !j.contains("version")) {
    ADD_FAILURE() << "put " << path << ": " << r.out << r.err;
    return 0;
  }
  return j["version"].get<std::uint64_t>();
}

std::string CliTest::Get(const std::string& path, const std::string& extra) {
  CliRun r = Run("get " + Quote(path) + (extra.empty() ? "" : " " + extra));
  EXPECT_EQ(r.status, 0) << "get " << path << ": " << r.err;
  return r.out;
}

}  // namespace sk::testing
