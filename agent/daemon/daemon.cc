#include "agent/daemon/daemon.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>

#include "agent/api/api.h"
#include "agent/api/server.h"
#include "agent/daemon/agent.h"
#include "agent/daemon/reload_status.h"
#include "agent/daemon/systemd.h"
#include "crypto/locked_pool.h"

namespace sk::daemon {
namespace {

using Clock = std::chrono::steady_clock;

// How often the daemon's housekeeping runs: audit records of reads reach the disk within
// this (plus one fdatasync), whatever the watchdog interval; a short watchdog interval
// makes it shorter still, so that pings come at least twice per interval.
constexpr int kTickMs = 200;

int TickMs() {
  const std::uint64_t watchdog_ms = WatchdogUsec() / 1000;
  if (watchdog_ms == 0) return kTickMs;
  return static_cast<int>(std::clamp<std::uint64_t>(watchdog_ms / 4, 10, kTickMs));
}
// A sealed agent retries unsealing after 1 s, then 2, 4, ... up to 60 s between tries.
constexpr auto kFirstRetry = std::chrono::seconds(1);
constexpr auto kMaxRetry = std::chrono::seconds(60);

std::string StatusLine(Agent& agent) {
  auto svc = agent.service();
  if (!svc) {
    Status st = agent.sealed_status();
    return "sealed: " + st.ToString();
  }
  secrets::ServiceStatus s = svc->Report();
  return "unsealed; journal head " + std::to_string(s.head_seq) + ", anchored " +
         std::to_string(s.anchor.seq) + ", " + s.backend.kind + " generation " +
         std::to_string(s.backend.current_generation);
}

// Reasons a retry cannot fix without a human, or would make worse: an admin's seal, a
// store that is not the anchored history, and wrong credentials (each try counts against
// the token's or the TPM's lockout).
bool RetryMayHelp(std::string_view reason) {
  static constexpr std::string_view kNever[] = {
      "sealed",        "replay_detected",     "pin_incorrect",  "pin_locked",      "pin_invalid",
      "pin_expired",   "pin_not_initialized", "auth_incorrect", "auth_locked_out", "credential_unsafe",
      "store_corrupt", "seal_invalid",        "chain_broken",   "head_invalid",    "audit_corrupt",
  };
  return std::find(std::begin(kNever), std::end(kNever), reason) == std::end(kNever);
}

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
  int fd = ActivatedSocket();
  if (fd >= 0) {
    Log(LogLevel::kInfo, "using the socket passed by systemd");
  } else {
    EnsureParent(config.socket);
    auto created = api::CreateListenSocket(config.socket, config.socket_mode, config.socket_group);
    if (!created.ok()) return created.status().WithContext("cannot listen on " + config.socket);
    fd = *created;
  }
  SK_RETURN_IF_ERROR(server.Listen(fd));
  if (config.creds_socket.empty()) return OkStatus();
  // Only the service manager (root) is answered there; root passes file modes anyway, so
  // the socket is the agent's alone.
  EnsureParent(config.creds_socket);
  auto creds = api::CreateListenSocket(config.creds_socket, 0600, "");
  if (!creds.ok()) return creds.status().WithContext("cannot listen on " + config.creds_socket);
  if (Status st = server.ListenCredentials(*creds); !st.ok()) {
    ::close(*creds);
    return st;
  }
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
        status_path_((std::filesystem::path(config.socket).parent_path() / kReloadStatusFileName).string()) {}

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
    Status st = WriteReloadStatus(status_path_, {::getpid(), generation_, ok, message});
    if (!st.ok()) Log(LogLevel::kWarning, "sealkeep reload cannot learn the verdict: " + st.ToString());
  }

  const config::AgentConfig& config_;
  Agent& agent_;
  api::Server& server_;
  const std::string status_path_;
  std::uint64_t generation_ = 0;
};

// The daemon's housekeeping, every kTickMs on a worker thread (never overlapping itself):
// watchdog pings, audit syncs and checkpoints, cache sweeps, sealing a fenced service, and
// retrying a failed unseal with backoff.
class Ticker {
 public:
  explicit Ticker(Agent& agent) : agent_(agent), watchdog_(std::chrono::microseconds(WatchdogUsec())) {
    was_unsealed_ = agent.service() != nullptr;
  }

  void operator()() {
    const Clock::time_point now = Clock::now();
    if (watchdog_.count() > 0 && now - last_ping_ >= watchdog_ / 2) {
      Notify("WATCHDOG=1");
      last_ping_ = now;
    }
    // Buffered read records reach the disk within a tick; the sealed checkpoint (what
    // truncation is checked against) moves every ten seconds.
    if (auto a = agent_.audit()) {
      if (now - last_checkpoint_ >= std::chrono::seconds(10)) {
        (void)a->Checkpoint();
        last_checkpoint_ = now;
      } else {
        (void)a->Sync();
      }
    }
    if (auto svc = agent_.service()) svc->SweepCaches();
    (void)agent_.SealIfFenced();
    const bool open_now = agent_.service() != nullptr;
    if (was_unsealed_ && !open_now) {
      // Sealed while running (sys/seal, or the store changed behind the agent's back,
      // which the API may have caught first): say so once, and start retrying anew.
      Status why = agent_.sealed_status();
      Log(why.reason() == "sealed" ? LogLevel::kInfo : LogLevel::kError, "sealed: " + why.ToString());
      Notify("STATUS=" + StatusLine(agent_));
      delay_ = kFirstRetry;
      next_retry_ = now + delay_;
    }
    was_unsealed_ = open_now;
    if (!open_now) RetryUnseal(now);
  }

  // After the first unseal failed at start.
  void ScheduleRetry() { next_retry_ = Clock::now() + delay_; }

 private:
  void RetryUnseal(Clock::time_point now) {
    Status sealed = agent_.sealed_status();
    if (!RetryMayHelp(sealed.reason()) || now < next_retry_) return;
    Status st = agent_.Unseal();  // READY=1 comes from the agent's on-unsealed callback
    if (st.ok()) {
      delay_ = kFirstRetry;
      return;
    }
    delay_ = std::min(delay_ * 2, std::chrono::duration_cast<Clock::duration>(kMaxRetry));
    next_retry_ = Clock::now() + delay_;
    Log(LogLevel::kWarning,
        "still sealed, next unseal attempt in " +
            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(delay_).count()) +
            " s: " + st.ToString());
    Notify("STATUS=" + StatusLine(agent_));
  }

  Agent& agent_;
  const std::chrono::microseconds watchdog_;
  Clock::time_point last_ping_{};
  Clock::time_point last_checkpoint_ = Clock::now();
  bool was_unsealed_ = false;
  Clock::duration delay_ = kFirstRetry;
  Clock::time_point next_retry_ = Clock::now() + kFirstRetry;
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
  });
  Notify("STATUS=unsealing");
  Ticker ticker(agent);
  if (Status unsealed = agent.Unseal(); !unsealed.ok()) {
    Log(LogLevel::kError,
        "staying sealed: " + unsealed.ToString() +
            (RetryMayHelp(unsealed.reason()) ? " (retrying by itself, from 1 s to every 60 s)"
                                             : " (no retry can fix this: see docs/deploy.md)"));
    Notify("STATUS=" + StatusLine(agent));
    ticker.ScheduleRetry();
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
  server.Run([&] { ticker(); }, TickMs());
  agent.Seal("shutting down");
  Log(LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace sk::daemon
