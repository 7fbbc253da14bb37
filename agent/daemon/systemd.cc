#include "agent/daemon/systemd.h"

#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>

namespace sk::daemon {

void Notify(const std::string& state) { (void)sd_notify(0, state.c_str()); }

std::uint64_t WatchdogUsec() {
  std::uint64_t usec = 0;
  return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

int ActivatedSocket() {
  int n = sd_listen_fds(1);
  if (n < 1) return -1;
  if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, nullptr, 0) <= 0) return -1;
  return SD_LISTEN_FDS_START;
}

void Log(LogLevel level, const std::string& message) {
  static std::mutex mu;
  std::lock_guard lock(mu);
  std::fprintf(stderr, "<%d>sealkeepd: %s\n", static_cast<int>(level), message.c_str());
  std::fflush(stderr);
}

}  // namespace sk::daemon
