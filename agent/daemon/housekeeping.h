// Housekeeping: what the daemon does on its own between requests, every TickMs() on one
// worker thread (never overlapping itself): watchdog pings, audit syncs (so a read's
// record reaches the disk within a tick) and checkpoints, data-key cache sweeps, sealing a
// service that fenced itself, and retrying a failed unseal with backoff (1 s, doubling to
// 60 s) where sk::reason::RetryCannotHelp says a retry can help, and expiry warnings: the
// `expiring` alert once per secret version and threshold (30, 7, 1 days), checked every
// 60 s, and within 5 s of a commit. No HTTP here.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "agent/daemon/agent.h"

namespace sk::daemon {

// The tick: 200 ms, shorter when WATCHDOG_USEC asks for pings more often than that.
int TickMs();

// "unsealed; journal head N, anchored M, pkcs11 generation G" or "sealed: <reason>: ...",
// for logs and systemd's STATUS=.
std::string StatusLine(Agent& agent);

class Housekeeping {
 public:
  explicit Housekeeping(Agent& agent);
  // One tick.
  void operator()();
  // After the first unseal failed at start: the first retry comes after 1 s.
  void ScheduleRetry();

 private:
  using Clock = std::chrono::steady_clock;
  void RetryUnseal(Clock::time_point now);
  void WarnExpiring(Clock::time_point now);

  Agent& agent_;
  const std::chrono::microseconds watchdog_;
  Clock::time_point last_ping_{};
  Clock::time_point last_checkpoint_ = Clock::now();
  bool was_unsealed_ = false;
  Clock::duration delay_;
  Clock::time_point next_retry_;
  Clock::time_point last_expiry_check_{};
  std::uint64_t expiry_checked_seq_ = UINT64_MAX;
  // (path, version) -> the tightest threshold already alerted: 30, 7 or 1 (days).
  std::map<std::pair<std::string, std::uint64_t>, int> expiry_alerted_;
};

}  // namespace sk::daemon
