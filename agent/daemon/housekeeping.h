// Housekeeping: what the daemon does on its own between requests, every TickMs() on one
// worker thread (never overlapping itself): watchdog pings, audit syncs (so a read's
// record reaches the disk within a tick) and checkpoints, data-key cache sweeps, sealing a
// service that fenced itself, and retrying a failed unseal with backoff (1 s, doubling to
// 60 s) where sk::reason::RetryCannotHelp says a retry can help. No HTTP here.
#pragma once

#include <chrono>
#include <string>

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

  Agent& agent_;
  const std::chrono::microseconds watchdog_;
  Clock::time_point last_ping_{};
  Clock::time_point last_checkpoint_ = Clock::now();
  bool was_unsealed_ = false;
  Clock::duration delay_;
  Clock::time_point next_retry_;
};

}  // namespace sk::daemon
