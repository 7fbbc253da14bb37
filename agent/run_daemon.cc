// The composition root of sealkeepd: the daemon's state (daemon::Agent, its housekeeping)
// meets the HTTP API (api::Api, api::Server) here and nowhere else, so agent/daemon knows
// nothing of HTTP and agent/api only borrows the Agent it is given.
#include "agent/run_daemon.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>

#include "agent/api/api.h"
#include "agent/api/listen_socket.h"
#include "agent/api/server.h"
#include "agent/daemon/agent.h"
#include "agent/daemon/housekeeping.h"
#include "agent/daemon/reload_status.h"
#include "agent/daemon/systemd.h"
#include "crypto/locked_pool.h"
#include "crypto/reasons.h"

namespace sk {
namespace {

using daemon::Agent;
using daemon::Log;
using daemon::LogLevel;
using daemon::Notify;
using daemon::StatusLine;

// The folder of `path`, made (0750) when missing.
void EnsureParent(const std::string& path) {
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty() && !std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    ::chmod(dir.c_str(), 0750);
  }
}

// The API socket (systemd's, else our own) and creds.sock, handed to `server`.
Status Listen(const config::AgentConfig& config, api::Server& server) {
  UniqueFd fd(daemon::ActivatedSocket());
  if (fd) {
    Log(LogLevel::kInfo, "using the socket passed by systemd");
  } else {
    EnsureParent(config.socket);
    auto created = api::CreateListenSocket(config.socket, config.socket_mode, config.socket_group);
    if (!created.ok()) return created.status().WithContext("cannot listen on " + config.socket);
    fd = std::move(created).value();
  }
  SK_RETURN_IF_ERROR(server.Listen(std::move(fd)));
  if (config.creds_socket.empty()) return OkStatus();
  // Only the service manager (root) is answered there; root passes file modes anyway, so
  // the socket is the agent's alone.
  EnsureParent(config.creds_socket);
  auto creds = api::CreateListenSocket(config.creds_socket, 0600, "");
  if (!creds.ok()) return creds.status().WithContext("cannot listen on " + config.creds_socket);
  SK_RETURN_IF_ERROR(server.ListenCredentials(std::move(creds).value()));
  Log(LogLevel::kInfo, "systemd credentials on " + config.creds_socket);
  return OkStatus();
}

// SIGHUP: the policy, then the config's limits; the verdict goes to the log and to the
// reload status file that `sealkeep reload --wait` reads.
class Reloader {
 public:
  Reloader(const config::AgentConfig& config, Agent& agent, api::Server& server)
      : config_(config),
        agent_(agent),
        server_(server),
        status_path_(
            (std::filesystem::path(config.socket).parent_path() / daemon::kReloadStatusFileName).string()) {}

  void Started() { Publish(true, "started"); }

  void Reload() {
    std::string problems;
    if (Status st = agent_.ReloadPolicy(); !st.ok()) {
      Log(LogLevel::kWarning,
          "SIGHUP: the new policy is not valid, keeping the running one: " + st.ToString());
      problems = "policy: " + st.ToString();
    }
    if (!config_.source.empty()) {
      auto fresh = config::LoadConfig(config_.source);
      if (fresh.ok()) {
        server_.SetLimits(fresh->limits);
      } else {
        Log(LogLevel::kWarning,
            "SIGHUP: the config file is not valid, keeping the running limits: " + fresh.status().ToString());
        problems += (problems.empty() ? "" : "; ") + std::string("config: ") + fresh.status().ToString();
      }
    }
    if (problems.empty()) Log(LogLevel::kInfo, "SIGHUP: policy reloaded");
    ++generation_;
    Publish(problems.empty(), problems.empty() ? "policy and limits reloaded" : problems);
  }

 private:
  void Publish(bool ok, const std::string& message) {
    Status st = daemon::WriteReloadStatus(status_path_, {::getpid(), generation_, ok, message});
    if (!st.ok()) Log(LogLevel::kWarning, "sealkeep reload cannot learn the verdict: " + st.ToString());
  }

  const config::AgentConfig& config_;
  Agent& agent_;
  api::Server& server_;
  const std::string status_path_;
  std::uint64_t generation_ = 0;
};

}  // namespace

int RunDaemon(const config::AgentConfig& config) {
  for (const std::string& w : config::StartupWarnings(config)) Log(LogLevel::kWarning, w);
  Agent agent(config);
  if (Status st = agent.LoadPolicy(); !st.ok()) {
    Log(LogLevel::kError,
        "cannot load the policy: " + st.ToString() +
            " (a host with no policy file says so explicitly: [policy] file = \"\" in the config)");
    return 1;
  }
  api::Api api(agent);
  api::Server server(api, config.limits, config.io_threads, config.worker_threads, config.io_spin_us);
  if (Status st = Listen(config, server); !st.ok()) {
    Log(LogLevel::kError, st.ToString());
    return 1;
  }
  Reloader reloader(config, agent, server);
  reloader.Started();

  // READY=1 the moment the agent first unseals, at start, by a retry or by sys/unseal.
  std::atomic<bool> ready{false};
  agent.SetOnUnsealed([&] {
    Log(LogLevel::kInfo, StatusLine(agent));
    Notify((ready.exchange(true) ? "" : "READY=1\n") + std::string("STATUS=") + StatusLine(agent));
    if (agent.fleet() != nullptr) agent.fleet()->Wake();
  });
  Notify("STATUS=unsealing");
  daemon::Housekeeping housekeeping(agent);
  if (Status unsealed = agent.Unseal(); !unsealed.ok()) {
    Log(LogLevel::kError,
        "staying sealed: " + unsealed.ToString() +
            (!reason::RetryCannotHelp(unsealed.reason()) ? " (retrying by itself, from 1 s to every 60 s)"
                                                         : " (no retry can fix this: see docs/deploy.md)"));
    Notify("STATUS=" + StatusLine(agent));
    housekeeping.ScheduleRetry();
  }
  Log(LogLevel::kInfo, "serving on " + config.socket);
  if (std::size_t refused = LockedPool::Instance().GetStats().lock_failures; refused > 0) {
    Log(LogLevel::kWarning, "secret memory is NOT locked (" + std::to_string(refused) +
                                " mappings refused by mlock): keys may reach swap; raise RLIMIT_MEMLOCK "
                                "(systemd: LimitMEMLOCK=64M) or grant CAP_IPC_LOCK");
  }

  server.OnSignals([&](int sig) {
    if (sig == SIGHUP) {
      reloader.Reload();
      return;
    }
    Log(LogLevel::kInfo, "signal " + std::to_string(sig) + ": draining in-flight requests, then exiting");
    Notify("STOPPING=1");
    server.Stop();
  });
  agent.leases().Start();
  if (agent.fleet() != nullptr) agent.fleet()->Start();
  server.Run([&] { housekeeping(); }, daemon::TickMs());
  if (agent.fleet() != nullptr) agent.fleet()->Stop();
  agent.leases().Stop();
  agent.Seal("shutting down");
  Log(LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace sk
