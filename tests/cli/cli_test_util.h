// End-to-end CLI tests: a real sealkeepd (tests/fixtures/agent_process.h) on a private
// state folder with a real SoftHSM2 token, driven by the built `sealkeep` binary.
#pragma once

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/temp_dir.h"

namespace sk::testing {

struct CliRun {
  int status = -1;  // the exit code
  std::string out;  // stdout, byte for byte
  std::string err;  // stderr
};

class CliTest : public ::testing::Test {
 protected:
  CliTest() : dir_("cli") {}
  void SetUp() override { StartAgent(); }

  // Creates (first time) and starts the agent; fails the test if it does not answer.
  void StartAgent();
  void StopAgent() { agent_->Stop(); }

  // Runs `sealkeep ARGS` (ARGS is shell text) with SEALKEEP_SOCKET set to the agent's
  // socket and `in` on stdin. `as` prefixes the command (e.g. "setpriv --reuid=nobody ...").
  CliRun Run(const std::string& args, const std::string& in = "", const std::string& as = "");
  // `put PATH` from stdin; expects success and returns the new version.
  std::uint64_t Put(const std::string& path, const std::string& value);
  // `get PATH [extra]`; expects success and returns stdout.
  std::string Get(const std::string& path, const std::string& extra = "");

  TempDir dir_;
  std::unique_ptr<AgentProcess> agent_;
  int runs_ = 0;
};

// Shell-quotes a string ('...').
std::string Quote(const std::string& s);

}  // namespace sk::testing
