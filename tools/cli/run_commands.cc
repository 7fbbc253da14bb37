// `sealkeep run`: a command with its secrets, in its environment (--env) or in files on a
// private tmpfs folder (--file, --template), with no code in the command and no value in
// any argv. With nothing to watch and no files it execs the command (same pid); otherwise
// it supervises it (signals forwarded, its exit status is run's) and, with --on-change,
// acts once per changed value: rewrites the files, then restarts, signals or exits
// (docs/cli.md, "run").
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "crypto/bytes.h"
#include "crypto/locked_pool.h"
#include "tools/cli/agent_client.h"
#include "tools/cli/command.h"
#include "tools/cli/run_files.h"
#include "tools/cli/template.h"
#include "tools/cli/watch_client.h"

extern char** environ;

namespace sk::cli {
namespace {

using Clock = std::chrono::steady_clock;

// What run exits with when --on-change exit stopped the child for new values: EX_TEMPFAIL,
// so Restart=on-failure brings the service back with them.
constexpr int kExitForNewValues = 75;
constexpr std::chrono::seconds kStopGrace{10};  // SIGTERM, then SIGKILL
constexpr unsigned kWatchTimeoutS = 60;

struct RunFlags {
  std::vector<std::string> env, files, templates;
  std::string on_change;
  double wait_agent_s = 0;
  std::vector<std::string> command;
};

RunFlags& Flags() {
  static RunFlags flags;
  return flags;
}

struct EnvItem {
  std::string name, path;
};
struct FileItem {
  std::string path, name;
};
struct TemplateItem {
  std::string src, name;
  Template tmpl;
};

enum class OnChange { kNone, kRestart, kSignal, kExit };

struct Plan {
  std::vector<EnvItem> env;
  std::vector<FileItem> files;
  std::vector<TemplateItem> templates;
  OnChange on_change = OnChange::kNone;
  int signal = 0;
  std::vector<std::string> paths;  // every secret consumed, once
};

[[noreturn]] void Usage(const std::string& why) { Fail(InvalidArgument(why, "bad_usage")); }

int SignalNumber(std::string name) {
  static const std::map<std::string, int> kSignals = {
      {"HUP", SIGHUP},   {"INT", SIGINT},     {"QUIT", SIGQUIT}, {"TERM", SIGTERM}, {"USR1", SIGUSR1},
      {"USR2", SIGUSR2}, {"WINCH", SIGWINCH}, {"ALRM", SIGALRM}, {"CONT", SIGCONT}};
  if (name.rfind("SIG", 0) == 0) name = name.substr(3);
  auto it = kSignals.find(name);
  return it == kSignals.end() ? 0 : it->second;
}

bool IsEnvName(const std::string& s) {
  if (s.empty() || s.size() > 255 || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// SPEC split at its first `sep` into two non-empty halves, or a usage error naming `flag`.
std::pair<std::string, std::string> Split(const std::string& spec, char sep, const char* flag,
                                          const char* form) {
  std::size_t at = spec.find(sep);
  if (at == std::string::npos || at == 0 || at + 1 == spec.size()) {
    Usage(std::string(flag) + " takes " + form + ", not '" + spec.substr(0, 80) + "'");
  }
  return {spec.substr(0, at), spec.substr(at + 1)};
}

void AddPath(Plan& plan, const std::string& path) {
  SecretTarget(path);  // a bad path is a usage error (exit 2)
  if (std::find(plan.paths.begin(), plan.paths.end(), path) == plan.paths.end()) plan.paths.push_back(path);
}

std::string ReadTemplateFile(const std::string& src) {
  std::ifstream in(src, std::ios::binary);
  if (!in) Fail(InvalidArgument("cannot read template " + src + ": " + std::strerror(errno), "bad_input"));
  std::string text;
  char buf[8192];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxTemplateBytes) {
      Fail(InvalidArgument(
          "template " + src + " is larger than " + std::to_string(kMaxTemplateBytes) + " bytes",
          "bad_template"));
    }
  }
  return text;
}

Plan MakePlan(const RunFlags& f) {
  Plan plan;
  if (f.command.empty()) Usage("run needs a command after --: sealkeep run [OPTIONS] -- CMD [ARGS...]");
  std::set<std::string> names;
  for (const std::string& spec : f.env) {
    auto [name, path] = Split(spec, '=', "--env", "NAME=PATH");
    if (!IsEnvName(name))
      Usage("--env " + name.substr(0, 80) + "=...: not a variable name ([A-Za-z_][A-Za-z0-9_]*)");
    if (name == "SEALKEEP_FILES") Usage("--env SEALKEEP_FILES: run sets that variable itself");
    if (!names.insert(name).second) Usage("--env " + name + " is given twice");
    AddPath(plan, path);
    plan.env.push_back({name, path});
  }
  std::set<std::string> outputs;
  for (const std::string& spec : f.files) {
    auto [path, name] = Split(spec, ':', "--file", "PATH:NAME");
    if (!IsPlainFileName(name))
      Usage("--file ...:" + name.substr(0, 80) + ": NAME is a plain file name ([A-Za-z0-9._-])");
    if (!outputs.insert(name).second) Usage("two outputs are called " + name);
    AddPath(plan, path);
    plan.files.push_back({path, name});
  }
  for (const std::string& spec : f.templates) {
    auto [src, name] = Split(spec, ':', "--template", "SRC:NAME");
    if (!IsPlainFileName(name)) {
      Usage("--template ...:" + name.substr(0, 80) + ": NAME is a plain file name ([A-Za-z0-9._-])");
    }
    if (!outputs.insert(name).second) Usage("two outputs are called " + name);
    auto parsed = ParseTemplate(ReadTemplateFile(src));
    if (!parsed.ok()) {
      Fail(
          InvalidArgument("template " + src + ": " + std::string(parsed.status().message()), "bad_template"));
    }
    for (const std::string& p : parsed->Paths()) AddPath(plan, p);
    plan.templates.push_back({src, name, std::move(parsed).value()});
  }
  if (!f.on_change.empty()) {
    if (f.on_change == "restart") {
      plan.on_change = OnChange::kRestart;
    } else if (f.on_change == "exit") {
      plan.on_change = OnChange::kExit;
    } else if (f.on_change.rfind("signal:", 0) == 0 &&
               (plan.signal = SignalNumber(f.on_change.substr(7))) != 0) {
      plan.on_change = OnChange::kSignal;
    } else {
      Usage(
          "--on-change is restart, exit or signal:NAME (HUP, USR1, USR2, INT, TERM, QUIT, WINCH, ALRM, "
          "CONT)");
    }
    if (plan.paths.empty()) Usage("--on-change needs a secret to watch (--env, --file or --template)");
  }
  return plan;
}

// --on-change sees a path's changes only where the caller may `list` it: without that it
// would wait for ever, so run refuses to start (exit 5).
void RequireListable(const std::vector<std::string>& paths) {
  for (const std::string& path : paths) {
    auto r = HttpCall(Globals().socket, {"GET", "/v1/secrets?limit=1&prefix=" + QueryEscape(path)});
    Status st = r.ok() ? StatusFromResponse(*r) : r.status();
    bool listed = false;
    if (st.ok()) {
      Json j = Json::parse(r->body, nullptr, false);
      for (const Json& p : j.is_object() ? j.value("paths", Json::array()) : Json::array()) {
        listed |= p.is_object() && Str(p, "path") == path;
      }
    }
    if (!listed) {
      Fail(Status(Code::kForbidden, "forbidden",
                  "--on-change cannot see changes to " + path +
                      ": the policy must grant `list` on it as well as `read`" +
                      (st.ok() ? "" : " (" + st.ToString() + ")")));
    }
  }
}

// Waits up to `seconds` for the agent to answer /v1/health as unsealed.
void WaitForAgent(double seconds) {
  const auto until = Clock::now() + std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
  Status last = OkStatus();
  for (;;) {
    auto r = HttpCall(Globals().socket, {"GET", "/v1/health", {}, std::chrono::milliseconds(5000)});
    if (r.ok() && r->status == 200) return;
    last = r.ok() ? StatusFromResponse(*r) : r.status();
    if (Clock::now() >= until) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  Fail(Status(last.code(), std::string(last.reason()),
              "sealkeepd at " + Globals().socket + " is not ready after --wait-agent " +
                  std::to_string(static_cast<long long>(seconds)) + "s: " + std::string(last.message())));
}

// The values, the files and the environment built from them.
class Materials {
 public:
  explicit Materials(const Plan& plan) : plan_(plan) {}

  // Fetches every value; a failure names the path and stops (nothing has started yet).
  void FetchAll() {
    for (const std::string& path : plan_.paths) {
      auto v = FetchValue(path);
      if (!v.ok()) {
        const Status& st = v.status();
        std::string hint =
            st.code() == Code::kUnavailable ? " (is sealkeepd running? --wait-agent S waits for it)" : "";
        Fail(Status(st.code(), std::string(st.reason()),
                    "cannot read " + path + ": " + std::string(st.message()) + hint));
      }
      values_[path] = std::move(v).value();
    }
    for (const EnvItem& e : plan_.env) {
      auto bytes = values_[e.path].Expose();
      if (std::find(bytes.begin(), bytes.end(), std::uint8_t{0}) != bytes.end()) {
        Fail(InvalidArgument("--env " + e.name + ": secret " + e.path +
                                 " holds a NUL byte, which no environment variable can; use --file",
                             "binary_value"));
      }
    }
  }

  // Re-reads `path`; true when its bytes differ from what the child has.
  Result<bool> Refresh(const std::string& path) {
    SK_ASSIGN_OR_RETURN(SecretBytes v, FetchValue(path));
    SecretBytes& held = values_[path];
    if (held.size() == v.size() && held.Equals(v)) return false;
    for (const EnvItem& e : plan_.env) {
      auto bytes = v.Expose();
      if (e.path == path && std::find(bytes.begin(), bytes.end(), std::uint8_t{0}) != bytes.end()) {
        return InvalidArgument(
            "secret " + path + " now holds a NUL byte; --env " + e.name + " keeps the old value",
            "binary_value");
      }
    }
    held = std::move(v);
    return true;
  }

  bool NeedsFiles() const { return !plan_.files.empty() || !plan_.templates.empty(); }

  // Writes every --file and --template output (each atomically).
  Status WriteFiles(PrivateDir& dir) {
    for (const FileItem& f : plan_.files) SK_RETURN_IF_ERROR(dir.Write(f.name, values_[f.path].Expose()));
    for (const TemplateItem& t : plan_.templates) {
      auto text = RenderTemplate(t.tmpl, [this](const std::string& p) -> const SecretBytes* {
        auto it = values_.find(p);
        return it == values_.end() ? nullptr : &it->second;
      });
      if (!text.ok()) {
        return InvalidArgument("template " + t.src + ": " + std::string(text.status().message()),
                               "bad_template");
      }
      SK_RETURN_IF_ERROR(dir.Write(t.name, text->Expose()));
    }
    return OkStatus();
  }

  // The child's environment: ours, without the names run sets, then SEALKEEP_FILES and
  // each --env. The strings live in locked memory (`block`), `pointers` point into it.
  void BuildEnv(const std::string& files_dir, SecretBytes& block, std::vector<char*>& pointers) {
    std::vector<std::string_view> ours;
    std::size_t total = 0;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string_view kv(*e);
      std::string_view name = kv.substr(0, kv.find('='));
      bool replaced = name == "SEALKEEP_FILES";
      for (const EnvItem& item : plan_.env) replaced |= name == item.name;
      if (replaced) continue;
      ours.push_back(kv);
      total += kv.size() + 1;
    }
    std::string files_var = files_dir.empty() ? "" : "SEALKEEP_FILES=" + files_dir;
    total += files_var.size() + 1;
    for (const EnvItem& item : plan_.env) total += item.name.size() + 1 + values_[item.path].size() + 1;
    block = SecretBytes(total);
    char* at = reinterpret_cast<char*>(block.Expose().data());
    pointers.clear();
    auto put = [&](std::string_view a, std::string_view b = {}, std::span<const std::uint8_t> c = {}) {
      pointers.push_back(at);
      // memcpy from an empty view's null data() is undefined, even for zero bytes.
      for (std::string_view part : {a, b}) {
        if (part.empty()) continue;
        std::memcpy(at, part.data(), part.size());
        at += part.size();
      }
      if (!c.empty()) std::memcpy(at, c.data(), c.size());
      at += c.size();
      *at++ = '\0';
    };
    for (std::string_view kv : ours) put(kv);
    if (!files_var.empty()) put(files_var);
    for (const EnvItem& item : plan_.env) put(item.name, "=", values_[item.path].Expose());
    pointers.push_back(nullptr);
  }

 private:
  const Plan& plan_;
  std::map<std::string, SecretBytes> values_;
};

// The longest whole-segment prefix shared by every path ("" when they share none).
std::string CommonPrefix(const std::vector<std::string>& paths) {
  if (paths.empty()) return "";
  std::string prefix = paths[0];
  for (const std::string& p : paths) {
    while (!prefix.empty() && !(p == prefix || p.rfind(prefix + "/", 0) == 0)) {
      std::size_t slash = prefix.rfind('/');
      prefix = slash == std::string::npos ? "" : prefix.substr(0, slash);
    }
  }
  return prefix;
}

// The watch thread: long polls from `after`, and hands the consumed paths that changed to
// the main thread (a byte on the pipe says "look at Take()"). It waits out a lost or
// restarting agent, keeping its place in the journal.
class Watcher {
 public:
  Watcher(std::string socket, std::vector<std::string> paths, std::uint64_t after)
      : socket_(std::move(socket)),
        paths_(paths.begin(), paths.end()),
        prefix_(CommonPrefix(paths)),
        after_(after) {
    if (::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0)
      Fail(Status(Code::kInternal, "pipe_failed", std::strerror(errno)));
  }
  int fd() const { return pipe_[0]; }
  void Start() {
    std::thread([this] { Loop(); }).detach();
  }  // runs until the process exits

  std::set<std::string> Take() {
    char buf[64];
    while (::read(pipe_[0], buf, sizeof buf) > 0) {
    }
    std::lock_guard lock(mu_);
    return std::exchange(changed_, {});
  }
  // A path whose value could not be read: looked at again with the next wake-up.
  void Retry(const std::string& path) {
    std::lock_guard lock(mu_);
    changed_.insert(path);
  }

 private:
  void Loop() {
    bool lost = false;
    auto backoff = std::chrono::milliseconds(250);
    for (;;) {
      auto answer = WatchOnce(socket_, prefix_, after_, kWatchTimeoutS);
      if (!answer.ok()) {
        if (!lost) {
          std::fprintf(stderr,
                       "sealkeep run: watching for changes: %s; trying again (the command keeps running)\n",
                       answer.status().ToString().c_str());
        }
        lost = true;
        std::this_thread::sleep_for(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
        continue;
      }
      if (lost) std::fprintf(stderr, "sealkeep run: watching for changes again\n");
      lost = false;
      backoff = std::chrono::milliseconds(250);
      after_ = answer->seq;
      bool any = false;
      {
        std::lock_guard lock(mu_);
        for (const WatchedChange& c : answer->changes) {
          if (paths_.count(c.path) == 0) continue;
          changed_.insert(c.path);
          any = true;
        }
      }
      if (any) {
        char b = 1;
        [[maybe_unused]] ssize_t n = ::write(pipe_[1], &b, 1);
      }
    }
  }

  const std::string socket_;
  const std::set<std::string> paths_;
  const std::string prefix_;
  std::uint64_t after_;  // the watch thread's
  int pipe_[2] = {-1, -1};
  std::mutex mu_;
  std::set<std::string> changed_;  // guarded by mu_
};

int ExitStatusOf(int wstatus) {
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
  return 1;
}

// 127 when the command is not found, 126 when it cannot be run: as a shell says it.
[[noreturn]] void CannotRun(const std::string& cmd, int err) {
  std::fprintf(stderr, "sealkeep run: cannot run %s: %s\n", cmd.c_str(), std::strerror(err));
  throw ExitRequest{err == ENOENT ? 127 : 126};
}

// A CMD ended by SIGTERM, SIGINT, SIGHUP or SIGPIPE ends run by the same signal, as if run
// were CMD: systemd counts a main process killed by SIGTERM as a clean stop (exit 143 is a
// failure), and a shell stops a script whose command died of SIGINT. Signals whose default
// dumps core are not re-raised (run's memory held secrets): those exit 128+N.
void EndLikeTheChild(int sig) {
  if (sig != SIGTERM && sig != SIGINT && sig != SIGHUP && sig != SIGPIPE) return;
  ::signal(sig, SIG_DFL);
  ::raise(sig);  // pending: the signal is blocked in this thread
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  ::pthread_sigmask(SIG_UNBLOCK, &one, nullptr);  // delivered here, and run ends
}

const int kForwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT};

class Supervisor {
 public:
  Supervisor(const Plan& plan, Materials& materials, std::optional<PrivateDir> dir,
             std::vector<std::string> argv)
      : plan_(plan), materials_(materials), dir_(std::move(dir)), argv_(std::move(argv)) {}

  // Runs the child to its end; returns run's exit status.
  int Run(sigset_t mask, Watcher* watcher) {
    int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) Fail(Status(Code::kInternal, "signalfd_failed", std::strerror(errno)));
    mask_ = mask;
    if (int err = Spawn(); err != 0) {
      dir_.reset();
      CannotRun(argv_[0], err);
    }
    if (watcher != nullptr) watcher->Start();
    for (;;) {
      pollfd fds[2] = {{sfd, POLLIN, 0}, {watcher != nullptr ? watcher->fd() : -1, POLLIN, 0}};
      int timeout = -1;
      if (kill_at_) {
        timeout = static_cast<int>(std::max<long long>(
            0, std::chrono::duration_cast<std::chrono::milliseconds>(*kill_at_ - Clock::now()).count()));
      }
      if (retry_at_) {
        int t = static_cast<int>(std::max<long long>(
            0, std::chrono::duration_cast<std::chrono::milliseconds>(*retry_at_ - Clock::now()).count()));
        timeout = timeout < 0 ? t : std::min(timeout, t);
      }
      int n = ::poll(fds, 2, timeout);
      if (n < 0 && errno != EINTR) Fail(Status(Code::kInternal, "poll_failed", std::strerror(errno)));
      if (kill_at_ && Clock::now() >= *kill_at_ && child_ > 0) {
        ::kill(child_, SIGKILL);  // it did not stop within the grace period
        kill_at_.reset();
      }
      if (n > 0 && (fds[0].revents & POLLIN) != 0) {
        if (std::optional<int> done = OnSignals(sfd)) return *done;
      }
      const bool retry_due = retry_at_ && Clock::now() >= *retry_at_;
      if (watcher != nullptr && ((n > 0 && (fds[1].revents & POLLIN) != 0) || retry_due)) {
        retry_at_.reset();
        OnChanges(*watcher);
      }
    }
  }

  // The signal that ended CMD, 0 when it exited.
  int killed_by() const { return killed_by_; }

 private:
  // 0, or the errno of a command that cannot be run.
  int Spawn() {
    SecretBytes env_block;
    std::vector<char*> envp;
    materials_.BuildEnv(dir_ ? dir_->path() : "", env_block, envp);
    std::vector<char*> argv;
    for (std::string& a : argv_) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t empty, defaults;
    sigemptyset(&empty);
    defaults = mask_;
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    // glibc's posix_spawn shares this address space until the exec (CLONE_VM), so the
    // environment may stay in locked memory that a fork would not copy.
    pid_t pid = -1;
    int err = ::posix_spawnp(&pid, argv[0], nullptr, &attr, argv.data(), envp.data());
    posix_spawnattr_destroy(&attr);
    if (err != 0) return err;
    child_ = pid;
    return 0;
  }

  // Signals: forwarded to the child; SIGCHLD reaps it. Returns run's exit status once the
  // child is gone for good.
  std::optional<int> OnSignals(int sfd) {
    signalfd_siginfo si{};
    while (::read(sfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      const int sig = static_cast<int>(si.ssi_signo);
      if (sig == SIGCHLD) continue;
      if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) stopping_ = true;  // no restart after this
      // A terminal's signal (si_code SI_KERNEL) already reached the child, which shares our
      // process group; one sent to us alone (kill, systemctl) is passed on.
      if (si.ssi_code != SI_KERNEL && child_ > 0) ::kill(child_, sig);
    }
    int wstatus = 0;
    while (child_ > 0) {
      pid_t got = ::waitpid(-1, &wstatus, WNOHANG);
      if (got <= 0) break;
      if (got != child_) continue;
      child_ = -1;
      kill_at_.reset();
      if (restarting_ && !stopping_) {
        restarting_ = false;
        if (int err = Spawn(); err != 0) {
          dir_.reset();
          CannotRun(argv_[0], err);
        }
        continue;
      }
      dir_.reset();  // the files go with the child
      if (exiting_) return kExitForNewValues;
      if (WIFSIGNALED(wstatus)) killed_by_ = WTERMSIG(wstatus);
      return ExitStatusOf(wstatus);
    }
    return std::nullopt;
  }

  // The watch saw consumed paths change: re-read them, and act once if any bytes differ.
  void OnChanges(Watcher& watcher) {
    bool changed = false;
    std::string changed_paths;
    for (const std::string& path : watcher.Take()) {
      auto r = materials_.Refresh(path);
      if (!r.ok()) {
        const Status& st = r.status();
        std::fprintf(stderr, "sealkeep run: %s: %s\n", path.c_str(), st.ToString().c_str());
        if (st.code() == Code::kUnavailable || st.code() == Code::kSealed) {
          watcher.Retry(path);  // the agent went away between: read it when it is back
          retry_at_ = Clock::now() + std::chrono::seconds(1);
        }
        continue;  // deleted, forbidden now...: the child keeps what it has
      }
      if (!*r)
        std::fprintf(stderr, "sealkeep run: %s: a new version with the same bytes; nothing to do\n",
                     path.c_str());
      if (*r) changed_paths += (changed_paths.empty() ? "" : ", ") + path;
      changed |= *r;
    }
    if (!changed || child_ <= 0 || stopping_ || exiting_ || restarting_) return;
    if (dir_) {
      if (Status st = materials_.WriteFiles(*dir_); !st.ok()) {
        std::fprintf(stderr, "sealkeep run: the files keep their old values: %s\n", st.ToString().c_str());
        return;
      }
    }
    static const char* const kActions[] = {"", "restarting the command", "signalling the command",
                                           "stopping the command, then exiting 75"};
    std::fprintf(stderr, "sealkeep run: %s changed: %s%s\n", changed_paths.c_str(),
                 dir_ ? "files rewritten; " : "", kActions[static_cast<int>(plan_.on_change)]);
    switch (plan_.on_change) {
      case OnChange::kRestart:
        restarting_ = true;
        Stop();
        break;
      case OnChange::kSignal:
        ::kill(child_, plan_.signal);
        break;
      case OnChange::kExit:
        exiting_ = true;
        Stop();
        break;
      case OnChange::kNone:
        break;
    }
  }

  void Stop() {
    ::kill(child_, SIGTERM);
    kill_at_ = Clock::now() + kStopGrace;
  }

  const Plan& plan_;
  Materials& materials_;
  std::optional<PrivateDir> dir_;
  std::vector<std::string> argv_;
  sigset_t mask_{};
  pid_t child_ = -1;
  bool stopping_ = false, restarting_ = false, exiting_ = false;
  int killed_by_ = 0;  // the signal that ended the last child, if one did
  std::optional<Clock::time_point> kill_at_, retry_at_;
};

void RunRun() {
  const RunFlags& f = Flags();
  Plan plan = MakePlan(f);
  if (f.wait_agent_s > 0) WaitForAgent(f.wait_agent_s);
  // Where the watch starts: the head before the values are read, so a change made while
  // they are read is seen (and found equal, or acted on).
  std::uint64_t after = 0;
  if (plan.on_change != OnChange::kNone) {
    auto head = WatchOnce(Globals().socket, CommonPrefix(plan.paths), std::nullopt, 0);
    if (!head.ok()) {
      const Status& st = head.status();
      Fail(
          Status(st.code(), std::string(st.reason()),
                 "cannot watch for changes: " + std::string(st.message()) +
                     (st.code() == Code::kUnavailable ? " (is sealkeepd running? --wait-agent S waits for it)"
                                                      : "")));
    }
    after = head->seq;
  }
  Materials materials(plan);
  materials.FetchAll();
  if (plan.on_change != OnChange::kNone) RequireListable(plan.paths);
  std::vector<std::string> argv = f.command;

  if (plan.on_change == OnChange::kNone && !materials.NeedsFiles()) {
    // Nothing to watch, nothing to clean up: become the command.
    SecretBytes env_block;
    std::vector<char*> envp;
    materials.BuildEnv("", env_block, envp);
    std::vector<char*> cargv;
    for (std::string& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    std::fflush(nullptr);
    ::execvpe(cargv[0], cargv.data(), envp.data());
    CannotRun(argv[0], errno);
  }

  std::optional<PrivateDir> dir;
  if (materials.NeedsFiles()) {
    auto made = PrivateDir::Create();
    if (!made.ok()) Fail(made.status());
    dir.emplace(std::move(made).value());
    if (Status st = materials.WriteFiles(*dir); !st.ok()) {
      dir.reset();
      Fail(st);
    }
  }
  // Signals are read from a signalfd; the mask is set before the watch thread starts, so
  // it inherits it and never takes one.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  for (int sig : kForwarded) sigaddset(&mask, sig);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  std::optional<Watcher> watcher;
  if (plan.on_change != OnChange::kNone) watcher.emplace(Globals().socket, plan.paths, after);
  Supervisor supervisor(plan, materials, std::move(dir), std::move(argv));
  int status = supervisor.Run(mask, watcher ? &*watcher : nullptr);
  std::fflush(nullptr);
  EndLikeTheChild(supervisor.killed_by());
  std::_Exit(status);  // the watch thread may be in a call: no static destructors under it
}

void Add(CLI::App& app) {
  auto& f = Flags();
  auto* run = app.add_subcommand(
      "run",
      "Run CMD with secrets: --env puts a value in CMD's environment only, --file and --template write "
      "files (0600) in a private memory-backed folder named by $SEALKEEP_FILES, removed when CMD exits. "
      "No value is ever in an argv. With nothing to watch and no files, run becomes CMD (same pid); "
      "otherwise it supervises CMD (signals are passed on; CMD's exit status is run's; a CMD ended by TERM, "
      "INT, HUP or PIPE ends run by the same signal, another signal N gives 128+N). "
      "A path run may not read stops it before CMD starts");
  run->add_option("--env", f.env, "NAME=PATH: CMD gets $NAME set to the value of PATH (repeatable)")
      ->allow_extra_args(false);
  run->add_option("--file", f.files, "PATH:NAME: the value of PATH in $SEALKEEP_FILES/NAME (repeatable)")
      ->allow_extra_args(false);
  run->add_option("--template", f.templates,
                  "SRC:NAME: the template file SRC rendered to $SEALKEEP_FILES/NAME; it may use "
                  "{{ secret \"PATH\" }} and {{ secret \"PATH\" \"JSON.KEY\" }} (repeatable)")
      ->allow_extra_args(false);
  run->add_option("--on-change", f.on_change,
                  "When a consumed value changes (its bytes; needs `list` on the path): rewrite the files, "
                  "then 'restart' CMD (run keeps its pid), 'signal:NAME' it (e.g. signal:HUP), or 'exit' "
                  "(run stops CMD and exits 75, for Restart=on-failure)");
  run->add_option("--wait-agent", f.wait_agent_s,
                  "Wait up to S seconds for the agent to answer unsealed, instead of failing at once")
      ->check(CLI::Range(0.0, 86400.0));
  run->add_option("CMD", f.command, "The command and its arguments, after --")->required();
  run->footer(
      "Exit codes: CMD's own; 127 when CMD is not found, 126 when it cannot be run; 75 after --on-change "
      "exit; sealkeep's codes (2 usage, 3 not found, 5 forbidden, 6 agent unreachable) before CMD starts.");
  run->callback(RunRun);
}

const Registrar kRegistrar(Add, 25);

}  // namespace
}  // namespace sk::cli
