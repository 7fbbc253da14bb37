#include "tests/cli/cli_test_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
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

Background::Background(const std::string& command) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return;
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  fds_[0] = out[0];
  fds_[1] = err[0];
}

Background::~Background() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    Wait();
  }
  for (int fd : fds_) {
    if (fd >= 0) ::close(fd);
  }
}

std::string Background::Line(int which, int timeout_ms) {
  using Clock = std::chrono::steady_clock;
  std::string& buf = bufs_[which];
  const auto until = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (std::size_t nl = buf.find('\n'); nl != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      all_[which] += line + "\n";
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left <= 0) return "<timeout>";
    pollfd p{fds_[which], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char chunk[4096];
    ssize_t n = ::read(fds_[which], chunk, sizeof chunk);
    if (n <= 0) return "<eof>";
    buf.append(chunk, static_cast<std::size_t>(n));
  }
}

bool Background::WaitFor(const std::string& text, int which) {
  for (;;) {
    std::string line = Line(which);
    if (line.find(text) != std::string::npos) return true;
    if (line == "<timeout>" || line == "<eof>") return false;
  }
}

std::string Background::Rest(int which) {
  for (std::string l = Line(which); l != "<eof>" && l != "<timeout>"; l = Line(which)) {
  }
  return all_[which];
}

int Background::Wait() {
  int st = WaitStatus();
  if (st == -1) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int Background::WaitStatus() {
  int st = 0;
  if (pid_ <= 0 || ::waitpid(pid_, &st, 0) != pid_) return -1;
  pid_ = -1;
  return st;
}

std::unique_ptr<Background> CliTest::Start(const std::string& args, const std::string& as) {
  return std::make_unique<Background>("exec " + as + (as.empty() ? "" : " ") + "env SEALKEEP_SOCKET=" +
                                      Quote(agent_->socket()) + " " + SealkeepBinary() + " " + args);
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
