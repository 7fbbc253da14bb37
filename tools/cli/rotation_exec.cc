// The exec rotation target (rotation_target.h): `program args... set|test|revert`, the
// value on stdin, run with posix_spawn in its own process group under the spec's timeout,
// its output (at most kMaxExecOutput bytes) quoted in its failures.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "crypto/unique_fd.h"
#include "tools/cli/rotation_target_internal.h"

namespace sk::cli::internal {
namespace {

namespace tr = target_reason;

// The program's stdout and stderr: the first kMaxExecOutput bytes, printable.
class Captured {
 public:
  void Add(const char* p, std::size_t n) {
    std::size_t keep = std::min(n, kMaxExecOutput - std::min(kMaxExecOutput, text_.size()));
    text_.append(p, keep);
    truncated_ |= keep < n;
  }
  // "" or "; output: <text>".
  std::string Quote() const {
    std::string t = text_;
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
    if (t.empty()) return "";
    for (char& c : t) {
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') || c == 0x7f) c = '?';
    }
    return "; output: " + t + (truncated_ ? " [...]" : "");
  }

 private:
  std::string text_;
  bool truncated_ = false;
};

class ExecTarget final : public RotationTarget {
 public:
  explicit ExecTarget(ExecTargetSpec spec) : spec_(std::move(spec)) {}

  std::string Describe() const override { return "exec " + spec_.program; }
  Status Set(ByteView new_value, ByteView) override { return Run("set", new_value); }
  Status Test(ByteView value) override { return Run("test", value); }
  Status Revert(ByteView old_value, ByteView) override { return Run("revert", old_value); }

 private:
  Status Run(const std::string& verb, ByteView value) const;
  // Starts the program with its stdin and stdout+stderr on the given descriptors; an errno.
  int Spawn(const std::string& verb, int in, int out, pid_t* pid) const;

  ExecTargetSpec spec_;
};

int ExecTarget::Spawn(const std::string& verb, int in, int out, pid_t* pid) const {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(spec_.program.c_str()));
  for (const std::string& a : spec_.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(const_cast<char*>(verb.c_str()));
  argv.push_back(nullptr);
  char path[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  char* envp[] = {path, nullptr};

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&fa, out, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, out, STDERR_FILENO);
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  posix_spawn_file_actions_addchdir_np(&fa, "/");
  // The CLI may block or ignore signals; the program starts with none blocked and every
  // disposition at its default, in a process group of its own (killed whole at a timeout).
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  int err = ::posix_spawn(pid, spec_.program.c_str(), &fa, &attr, argv.data(), envp);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  return err;
}

Status ExecTarget::Run(const std::string& verb, ByteView value) const {
  const std::string what = Describe() + " " + verb;
  // stdin is a socket so that a program that exits without reading it costs an EPIPE on
  // send(MSG_NOSIGNAL), never a SIGPIPE in the rotator.
  int in_pair[2];
  int out_pipe[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_pair) != 0) {
    return StepFailed(what + ": socketpair: " + std::strerror(errno));
  }
  UniqueFd in(in_pair[0]), child_in(in_pair[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return StepFailed(what + ": pipe: " + std::strerror(errno));
  UniqueFd out(out_pipe[0]), child_out(out_pipe[1]);

  pid_t pid = -1;
  if (int err = Spawn(verb, child_in.get(), child_out.get(), &pid); err != 0) {
    return StepFailed("cannot run " + spec_.program + ": " + std::strerror(err));
  }
  child_in.reset();
  child_out.reset();
  // Readable when the program exits. (glibc 2.36's <sys/pidfd.h> lacks extern "C": the
  // system call is made directly.)
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) {
    const int err = errno;
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return StepFailed(what + ": pidfd_open: " + std::strerror(err));
  }

  const Clock::time_point deadline = Clock::now() + spec_.timeout_s;
  std::size_t sent = 0;
  if (value.empty()) in.reset();
  Captured output;
  char buf[4096];
  bool exited = false;
  while (!exited) {
    pollfd fds[3] = {{pidfd.get(), POLLIN, 0}, {out.get(), POLLIN, 0}, {in.get(), POLLOUT, 0}};
    const int ms = MillisLeft(deadline);
    if (ms == 0) break;
    if (::poll(fds, 3, ms) < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      return StepFailed(what + ": poll: " + std::strerror(err));
    }
    if (fds[2].revents != 0) {
      ssize_t n = ::send(in.get(), value.data() + sent, value.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) sent += static_cast<std::size_t>(n);
      // All sent, or the program closed its stdin (it need not read it): EOF either way.
      if (sent == value.size() || (n < 0 && errno != EAGAIN && errno != EINTR)) in.reset();
    }
    if (fds[1].revents != 0) {
      ssize_t n = ::read(out.get(), buf, sizeof buf);
      if (n > 0) output.Add(buf, static_cast<std::size_t>(n));
      if (n == 0 || (n < 0 && errno != EINTR)) out.reset();
    }
    exited = fds[0].revents != 0;
  }
  if (!exited) {
    ::kill(-pid, SIGKILL);  // the whole group: what it started goes too
    ::waitpid(pid, nullptr, 0);
    return Status(Code::kUnavailable, std::string(tr::kTimeout),
                  what + " did not finish within " + std::to_string(spec_.timeout_s.count()) +
                      " s and was killed" + output.Quote());
  }
  int wstatus = 0;
  if (::waitpid(pid, &wstatus, 0) != pid) {
    return StepFailed(what + ": its exit status is lost (is SIGCHLD ignored?)");
  }
  // What it wrote before it exited; not waiting for others that share the pipe.
  if (out && ::fcntl(out.get(), F_SETFL, O_NONBLOCK) == 0) {
    ssize_t n;
    while ((n = ::read(out.get(), buf, sizeof buf)) > 0) output.Add(buf, static_cast<std::size_t>(n));
  }
  if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return OkStatus();
  if (verb == "test" && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 1) {
    return Refused(Describe() + " does not accept the value (test: exit status 1)" + output.Quote());
  }
  return StepFailed(what + " failed (" +
                    (WIFEXITED(wstatus) ? "exit status " + std::to_string(WEXITSTATUS(wstatus))
                                        : "killed by signal " + std::to_string(WTERMSIG(wstatus))) +
                    ")" + output.Quote());
}

// The file system's side of an exec spec: the program is there and executable.
Status CheckProgram(const std::string& program) {
  struct stat st {};
  if (::stat(program.c_str(), &st) != 0) {
    return BadTarget("target.program " + program + " cannot be found: " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode) || ::access(program.c_str(), X_OK) != 0) {
    return BadTarget("target.program " + program + " is not an executable file");
  }
  return OkStatus();
}

}  // namespace

Result<std::unique_ptr<RotationTarget>> MakeExecTarget(const ExecTargetSpec& spec) {
  SK_RETURN_IF_ERROR(CheckProgram(spec.program));
  std::unique_ptr<RotationTarget> t = std::make_unique<ExecTarget>(spec);
  return t;
}

}  // namespace sk::cli::internal
