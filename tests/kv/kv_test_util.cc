#include "tests/kv/kv_test_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <sstream>

namespace sk::testing {
namespace {

// A client script that has not finished by then is stuck: it is killed and the test fails.
constexpr int kProgramDeadlineMs = 120'000;

bool IsExecutable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

bool ProgramRun::Printed(const std::string& line) const {
  std::istringstream in(output);
  for (std::string l; std::getline(in, l);) {
    if (l == line) return true;
  }
  return false;
}

std::string KvTestDir() { return std::string(SK_SOURCE_DIR) + "/tests/kv"; }

ProgramRun RunProgram(const std::vector<std::string>& argv, const std::function<bool()>& become) {
  ProgramRun run;
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  static const char* kEnv[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/nonexistent",
                               nullptr};
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return run;
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return run;
  }
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    if (become && !become()) ::_exit(98);
    ::execve(args[0], args.data(), const_cast<char* const*>(kEnv));
    ::_exit(127);
  }
  ::close(fds[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kProgramDeadlineMs);
  bool timed_out = false;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fds[0], POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0) {
      timed_out = true;
      ::kill(pid, SIGKILL);  // the child this call started
      break;
    }
    char buf[4096];
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    run.output.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  run.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  if (timed_out)
    run.output += "\n[killed: still running after " + std::to_string(kProgramDeadlineMs) + " ms]\n";
  return run;
}

std::string HvacPython(std::string* why) {
  const std::string python = "/usr/bin/python3";
  if (!IsExecutable(python)) {
    *why = "no /usr/bin/python3: apt-get install python3 python3-hvac python3-requests-unixsocket";
    return "";
  }
  ProgramRun r = RunProgram({python, "-c", "import hvac, requests_unixsocket"});
  if (r.status != 0) {
    *why = "hvac cannot be imported by /usr/bin/python3 (" + r.output +
           "): run tools/dev test-deps, or apt-get install python3-hvac python3-requests-unixsocket";
    return "";
  }
  return python;
}

std::string NodeWithVault(std::string* why) {
  std::string node;
  for (const char* candidate : {"/usr/bin/node", "/usr/local/bin/node", "/usr/bin/nodejs"}) {
    if (IsExecutable(candidate)) {
      node = candidate;
      break;
    }
  }
  if (node.empty()) {
    *why = "no node: run tools/dev test-deps (Debian's nodejs and npm)";
    return "";
  }
  for (const char* module : {"node-vault", "node-vault-postman"}) {
    if (!Exists(KvTestDir() + "/node/node_modules/" + module + "/package.json")) {
      *why =
          std::string(module) + " is not installed in tests/kv/node: run tools/dev test-deps (npm ci there)";
      return "";
    }
  }
  return node;
}

}  // namespace sk::testing
