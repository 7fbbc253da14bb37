// Server: HTTP/1.1 over a Unix socket with Boost.Asio/Beast, in front of Api: the accept
// loops, the I/O threads and the worker pool, connection limits, signals, the tick, and
// draining at Stop. One Session (session.h) serves each connection; http_wire.h writes
// every response head; listen_socket.h makes the socket when systemd does not pass one.
//
// - The listening socket comes from CreateListenSocket or from systemd socket activation
//   (the fd is adopted as is).
// - Every connection is identified once, at accept, by the kernel: SO_PEERCRED and a
//   pidfd (SO_PEERPIDFD, else pidfd_open), then /proc, where visible, for its unit, exe
//   and groups (SO_PEERCRED alone still identifies a caller whose /proc is hidden).
// - Limits: connections in total and per uid (over a limit: one 429 answer with its own
//   request id, sent before anything is read, then close), header and body sizes
//   (431/413), a deadline for each whole request (a slow client is dropped), an idle
//   timeout between requests on a kept-alive connection. A PUT with no length gets 411.
// - I/O threads parse, route and write, and serve reads inline (bounded: an indexed read
//   and at most one unwrap; docs/api.md, Threads); routes that may wait on a commit, an
//   fsync or a verification (IsBlockingRoute) run on a worker pool, so one slow request
//   never holds an I/O thread.
// - Stop() stops accepting, lets in-flight requests finish and be answered (with
//   Connection: close), closes idle connections, and makes Run() return.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "agent/config/config.h"
#include "crypto/status.h"
#include "crypto/unique_fd.h"

namespace sk::daemon {
class Agent;
}

namespace sk::api {

class Api;

class Server {
 public:
  // io_spin_us: how long an I/O thread keeps polling after its last handler before it
  // sleeps in epoll (0 = it sleeps at once).
  Server(Api& api, const config::Limits& limits, int io_threads, int worker_threads, int io_spin_us = 0);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Adopts a listening socket and starts accepting (call before Run).
  Status Listen(UniqueFd fd);
  // Adopts the listening creds.sock (creds.h) and serves it on the worker pool.
  Status ListenCredentials(UniqueFd fd);
  // Runs the I/O threads until Stop() has drained everything. `on_tick` (may be empty)
  // runs every `tick_ms` on a worker thread, never overlapping itself (watchdog pings, audit syncs).
  void Run(const std::function<void()>& on_tick, int tick_ms);
  // Thread-safe; also safe from a signal_set handler on the I/O threads.
  void Stop();
  // Applies new limits to connections accepted from now on (SIGHUP).
  void SetLimits(const config::Limits& limits);
  // Calls handler(signal) on an I/O thread for SIGTERM, SIGINT and SIGHUP.
  void OnSignals(std::function<void(int)> handler);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sk::api
