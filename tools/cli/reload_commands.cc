// `sealkeep reload [--wait] [--pid PID] [--timeout S] [--status FILE]`: asks the running
// agent to re-read its policy and config (SIGHUP) and, with --wait, waits for its verdict,
// so a rejected file fails the command (the unit's ExecReload=, so `systemctl reload`
// fails too) instead of only being logged. The verdict comes from the reload status file
// the agent keeps beside its socket (agent/daemon/reload_status.h).
//
// Exit codes: 0 reloaded (or, without --wait, signalled); 4 the agent rejected the new
// files and keeps the running ones; 5 not allowed to signal the agent; 6 no agent, or no
// verdict within the timeout.
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "agent/daemon/reload_status.h"
#include "tools/cli/command.h"

namespace sk::cli {
namespace {

struct ReloadFlags {
  bool wait = false;
  std::int64_t pid = 0;
  int timeout_s = 30;
  std::string status;
};

ReloadFlags& Flags() {
  static ReloadFlags flags;
  return flags;
}

void RunReload() {
  const ReloadFlags& f = Flags();
  const std::string path =
      !f.status.empty()
          ? f.status
          : (std::filesystem::path(Globals().socket).parent_path() / daemon::kReloadStatusFileName).string();
  Result<daemon::ReloadStatus> before = daemon::ReadReloadStatus(path);
  if (!before.ok()) {
    Fail(Status(Code::kUnavailable, std::string(before.status().reason()),
                std::string(before.status().message())));
  }
  const std::int64_t pid = f.pid > 0 ? f.pid : before->pid;
  if (::kill(static_cast<pid_t>(pid), SIGHUP) != 0) {
    const int err = errno;
    Fail(Status(err == EPERM ? Code::kForbidden : Code::kUnavailable, "signal_failed",
                "cannot send SIGHUP to sealkeepd (pid " + std::to_string(pid) + "): " + std::strerror(err)));
  }
  if (!f.wait) {
    std::printf("asked sealkeepd (pid %lld) to reload; its verdict goes to %s and its log\n",
                static_cast<long long>(pid), path.c_str());
    return;
  }
  // The verdict is the first status of that pid past the generation seen before.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(f.timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    Result<daemon::ReloadStatus> now = daemon::ReadReloadStatus(path);
    const bool newer =
        now.ok() && now->pid == pid && (before->pid != pid || now->generation > before->generation);
    if (newer) {
      if (!now->ok) {
        Fail(Status(Code::kConflict, "reload_rejected",
                    "sealkeepd keeps its running policy and config: " + now->message));
      }
      std::printf("reloaded: %s\n", now->message.c_str());
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Fail(Status(Code::kUnavailable, "reload_timeout",
              "sealkeepd (pid " + std::to_string(pid) + ") gave no verdict within " +
                  std::to_string(f.timeout_s) + " s; see its log"));
}

void Add(CLI::App& app) {
  auto& f = Flags();
  auto* reload = app.add_subcommand(
      "reload",
      "Ask the running sealkeepd to re-read its policy and config (SIGHUP). With --wait, wait for its "
      "verdict "
      "and fail (exit 4) when it rejected them and keeps the running ones: use as the unit's ExecReload=");
  reload->add_flag("--wait", f.wait, "Wait for the agent's verdict (exit 4 when it rejects the files)");
  reload->add_option("--pid", f.pid, "The agent's pid (default: the pid in its reload status file)")
      ->check(CLI::PositiveNumber);
  reload->add_option("--timeout", f.timeout_s, "Seconds to wait for the verdict (default 30)")
      ->check(CLI::Range(1, 3600));
  reload->add_option("--status", f.status,
                     "The agent's reload status file (default: reload.status beside the socket, "
                     "/run/sealkeep/reload.status)");
  reload->callback(RunReload);
}

const Registrar kRegistrar(Add, 45);

}  // namespace
}  // namespace sk::cli
