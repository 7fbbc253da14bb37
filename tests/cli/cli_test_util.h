// End-to-end CLI tests: a real sealkeepd (tests/fixtures/agent_process.h) on a private
// state folder with a real SoftHSM2 token, driven by the built `sealkeep` binary.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/temp_dir.h"

namespace sk::testing {

// A command started with `sh -c` in the background (it `exec`s, so pid() is the command's),
// its stdout and stderr read line by line: tests wait for the lines it prints (events),
// never for time to pass. Killed (SIGKILL) and reaped when it goes away.
class Background {
 public:
  explicit Background(const std::string& command);
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  pid_t pid() const { return pid_; }

  // The next line on stdout (which = 0) or stderr (1); "<timeout>" after 30 s without one,
  // "<eof>" once it is closed.
  std::string Line(int which = 0, int timeout_ms = 30'000);
  // Reads lines until one contains `text`; false at a timeout or EOF.
  bool WaitFor(const std::string& text, int which = 0);
  // Everything read so far plus the rest, to EOF.
  std::string Rest(int which);
  // Waits for the exit: its status, 128+N for signal N, -1 when already reaped.
  int Wait();
  // Waits for the exit: the raw wait status (WIFSIGNALED...), -1 when already reaped.
  int WaitStatus();

 private:
  pid_t pid_ = -1;
  int fds_[2] = {-1, -1};
  std::string bufs_[2], all_[2];
};

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
  // `exec sealkeep ARGS` in the background (SEALKEEP_SOCKET set), as `as` when given.
  std::unique_ptr<Background> Start(const std::string& args, const std::string& as = "");
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
