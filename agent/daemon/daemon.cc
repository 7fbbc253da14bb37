#include "agent/daemon/daemon.h"

#include <sys/stat.h>

#include <csignal>
#include <filesystem>

#include "agent/api/api.h"
#include "agent/api/server.h"
#include "agent/daemon/agent.h"
#include "agent/daemon/systemd.h"
#include "crypto/locked_pool.h"

namespace sk::daemon {
namespace {

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

}  // namespace

int RunDaemon(const config::AgentConfig& config) {
  Agent agent(config);
  if (Status st = agent.LoadPolicy(); !st.ok()) {
    Log(LogLevel::kError, "cannot load the policy: " + st.ToString());
    return 1;
  }

  int fd = ActivatedSocket();
  if (fd >= 0) {
    Log(LogLevel::kInfo, "using the socket passed by systemd");
  } else {
    std::error_code ec;
    std::filesystem::path dir = std::filesystem::path(config.socket).parent_path();
    if (!dir.empty() && !std::filesystem::exists(dir, ec)) {
      std::filesystem::create_directories(dir, ec);
      ::chmod(dir.c_str(), 0750);
    }
    auto created = api::CreateListenSocket(config.socket, config.socket_mode, config.socket_group);
    if (!created.ok()) {
      Log(LogLevel::kError, "cannot listen on " + config.socket + ": " + created.status().ToString());
      return 1;
    }
    fd = *created;
  }

  api::Api api(agent);
  api::Server server(api, config.limits, config.io_threads, config.worker_threads, config.io_spin_us);
  if (Status st = server.Listen(fd); !st.ok()) {
    Log(LogLevel::kError, st.ToString());
    return 1;
  }
  if (!config.creds_socket.empty()) {
    // Only the service manager (root) is answered there; root passes file modes anyway,
    // so the socket is the agent's alone.
    std::error_code ec;
    std::filesystem::path dir = std::filesystem::path(config.creds_socket).parent_path();
    if (!dir.empty() && !std::filesystem::exists(dir, ec)) {
      std::filesystem::create_directories(dir, ec);
      ::chmod(dir.c_str(), 0750);
    }
    auto creds = api::CreateListenSocket(config.creds_socket, 0600, "");
    if (!creds.ok()) {
      Log(LogLevel::kError, "cannot listen on " + config.creds_socket + ": " + creds.status().ToString());
      return 1;
    }
    if (Status st = server.ListenCredentials(*creds); !st.ok()) {
      Log(LogLevel::kError, st.ToString());
      ::close(*creds);
      return 1;
    }
    Log(LogLevel::kInfo, "systemd credentials on " + config.creds_socket);
  }

  Notify("STATUS=unsealing");
  Status unsealed = agent.Unseal();
  bool ready = false;
  if (unsealed.ok()) {
    Log(LogLevel::kInfo, StatusLine(agent));
    Notify("READY=1\nSTATUS=" + StatusLine(agent));
    ready = true;
  } else {
    Log(LogLevel::kError, "staying sealed: " + unsealed.ToString());
    Notify("STATUS=" + StatusLine(agent));
  }
  Log(LogLevel::kInfo, "serving on " + config.socket);
  if (std::size_t refused = LockedPool::Instance().GetStats().lock_failures; refused > 0) {
    Log(LogLevel::kWarning, "secret memory is NOT locked (" + std::to_string(refused) +
                                " mappings refused by mlock): keys may reach swap; raise RLIMIT_MEMLOCK "
                                "(systemd: LimitMEMLOCK=64M) or grant CAP_IPC_LOCK");
  }

  server.OnSignals([&](int sig) {
    if (sig == SIGHUP) {
      Status st = agent.ReloadPolicy();
      if (st.ok()) {
        Log(LogLevel::kInfo, "SIGHUP: policy reloaded");
      } else {
        Log(LogLevel::kWarning,
            "SIGHUP: the new policy is not valid, keeping the running one: " + st.ToString());
      }
      if (!config.source.empty()) {
        auto fresh = config::LoadConfig(config.source);
        if (fresh.ok()) {
          server.SetLimits(fresh->limits);
        } else {
          Log(LogLevel::kWarning, "SIGHUP: the config file is not valid, keeping the running limits: " +
                                      fresh.status().ToString());
        }
      }
      return;
    }
    Log(LogLevel::kInfo, "signal " + std::to_string(sig) + ": draining in-flight requests, then exiting");
    Notify("STOPPING=1");
    server.Stop();
  });

  std::uint64_t watchdog = WatchdogUsec();
  int tick_ms = watchdog > 0 ? static_cast<int>(std::max<std::uint64_t>(watchdog / 2000, 100)) : 1000;
  auto last_checkpoint = std::chrono::steady_clock::now();
  bool was_unsealed = agent.service() != nullptr;
  server.Run(
      [&] {
        if (watchdog > 0) Notify("WATCHDOG=1");
        // Buffered read records reach the disk within a tick; the sealed checkpoint
        // (what truncation is checked against) moves every ten seconds.
        if (auto a = agent.audit()) {
          auto now = std::chrono::steady_clock::now();
          if (now - last_checkpoint >= std::chrono::seconds(10)) {
            (void)a->Checkpoint();
            last_checkpoint = now;
          } else {
            (void)a->Sync();
          }
        }
        if (auto svc = agent.service()) svc->SweepCaches();
        (void)agent.SealIfFenced();
        // Sealed while running (sys/seal, or the store changed behind the agent's back,
        // which the API may have caught first): say so once.
        const bool open_now = agent.service() != nullptr;
        if (was_unsealed && !open_now) {
          Status why = agent.sealed_status();
          Log(why.reason() == "sealed" ? LogLevel::kInfo : LogLevel::kError, "sealed: " + why.ToString());
          Notify("STATUS=" + StatusLine(agent));
        }
        was_unsealed = open_now;
        if (!ready && agent.service()) {  // unsealed later through sys/unseal
          ready = true;
          Notify("READY=1\nSTATUS=" + StatusLine(agent));
        }
      },
      tick_ms);
  agent.Seal("shutting down");
  Log(LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace sk::daemon
