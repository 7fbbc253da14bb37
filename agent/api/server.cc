#include "agent/api/server.h"

#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "agent/api/creds.h"
#include "agent/api/http_wire.h"
#include "agent/api/json_util.h"
#include "agent/api/session.h"
#include "agent/daemon/systemd.h"
#include "agent/policy/peer_identity.h"
#include "crypto/random.h"

namespace sk::api {

struct Server::Impl final : SessionHost {
  Impl(Api& a, const config::Limits& l, int io, int workers_n, int spin_us)
      : api(a),
        limits(std::make_shared<const config::Limits>(l)),
        loops(MakeLoops(io)),
        spin(std::max(0, spin_us)),
        workers(static_cast<std::size_t>(workers_n)) {
    for (auto& loop : loops) {
      keep_running.emplace_back(net::make_work_guard(*loop));
      sweeps.push_back(std::make_unique<LoopState>(*loop));
    }
    auto r = RandomBytes(4);
    id_prefix = HexEncode(r.ok() ? *r : Bytes(4, 0));
  }

  std::string NextRequestId() override {
    std::uint64_t n = ++next_id;
    char digits[16];
    int len = 0;
    do {
      digits[len++] = "0123456789abcdef"[n & 0xf];
      n >>= 4;
    } while (n != 0);
    std::string id = id_prefix;
    id += '-';
    while (len > 0) id += digits[--len];
    return id;
  }

  // SessionHost
  Api& SessionApi() override { return api; }
  bool Stopping() const override { return stopping; }
  net::thread_pool& Workers() override { return workers; }

  std::shared_ptr<const config::Limits> Limits() const {
    std::lock_guard lock(mu);
    return limits;
  }

  // Counts a connection for uid; false (and nothing counted) when over a limit.
  bool Admit(std::uint32_t uid, const config::Limits& l) {
    std::lock_guard lock(mu);
    if (total >= l.max_connections || per_uid[uid] >= l.max_connections_per_uid) return false;
    ++total;
    ++per_uid[uid];
    api.CountConnection(1);
    return true;
  }
  void Release(std::uint32_t uid) override {
    std::lock_guard lock(mu);
    --total;
    if (--per_uid[uid] == 0) per_uid.erase(uid);
    api.CountConnection(-1);
  }

  void DoAccept();
  void OnAccept(std::size_t loop, Local::socket sock);
  void DoAcceptCredentials();
  void StopNow();
  // Re-arming loops (on the control strand): member functions, so no handler has to own
  // a copy of itself.
  void ArmSignals() {
    signals->async_wait([this](beast::error_code ec, int sig) {
      if (ec) return;
      on_signal(sig);
      if (!stopping) ArmSignals();
    });
  }
  void ArmTick() {
    tick->expires_after(std::chrono::milliseconds(tick_ms));
    tick->async_wait([this](beast::error_code ec) {
      if (ec || stopping) return;
      // The tick's work may wait for the disk (syncing the audit log): it runs on a worker,
      // never on an I/O loop, and a tick still running when the next is due skips that one.
      if (!tick_running.exchange(true)) {
        net::post(workers, [this] {
          on_tick();
          tick_running = false;
        });
      }
      ArmTick();
    });
  }
  std::function<void(int)> on_signal;
  std::function<void()> on_tick;
  int tick_ms = 1000;
  std::atomic<bool> tick_running{false};

  Api& api;
  mutable std::mutex mu;
  std::shared_ptr<const config::Limits> limits;  // guarded by mu
  std::size_t total = 0;                         // guarded by mu
  std::map<std::uint32_t, std::size_t> per_uid;  // guarded by mu
  std::vector<std::weak_ptr<Session>> sessions;  // guarded by mu
  // One io_context per I/O thread, each run by that thread alone: a connection lives on
  // one of them, so its handlers never contend for a shared queue or wake another thread
  // (one shared context cost a futex and an epoll_ctl per request on 2 cores).
  static std::vector<std::unique_ptr<net::io_context>> MakeLoops(int n) {
    std::vector<std::unique_ptr<net::io_context>> v;
    for (int i = 0; i < std::max(1, n); ++i) v.push_back(std::make_unique<net::io_context>(1));
    return v;
  }
  std::vector<std::unique_ptr<net::io_context>> loops;  // loops[0] also runs the control strand
  net::io_context& ioc = *loops.front();
  // Per loop, touched only by that loop's thread: its connections, and the sweep that
  // closes those past their deadline (one timer per loop instead of one per request).
  struct LoopState {
    explicit LoopState(net::io_context& c) : timer(c) {}
    net::steady_timer timer;
    std::vector<std::weak_ptr<Session>> sessions;
    bool armed = false;
  };
  std::vector<std::unique_ptr<LoopState>> sweeps;
  void Watch(std::size_t loop, const std::shared_ptr<Session>& s) override;
  void ArmSweep(std::size_t loop);
  // Keeps every loop's run() going while it has no connection; released by StopNow.
  std::vector<net::executor_work_guard<net::io_context::executor_type>> keep_running;
  std::atomic<std::size_t> next_loop{0};
  std::chrono::microseconds spin;
  void RunLoop(std::size_t i) const;
  // Per loop: its requests being answered on a worker (BlockingStarted/BlockingDone). The
  // loop keeps polling while one is out, so the answer is sent without waking it.
  std::vector<std::unique_ptr<std::atomic<int>>> at_workers = MakeCounters(loops.size());
  static std::vector<std::unique_ptr<std::atomic<int>>> MakeCounters(std::size_t n) {
    std::vector<std::unique_ptr<std::atomic<int>>> out;
    for (std::size_t i = 0; i < n; ++i) out.push_back(std::make_unique<std::atomic<int>>(0));
    return out;
  }
  void BlockingStarted(std::size_t loop) override {
    at_workers[loop]->fetch_add(1, std::memory_order_relaxed);
  }
  void BlockingDone(std::size_t loop) override { at_workers[loop]->fetch_sub(1, std::memory_order_relaxed); }
  // Signals, the tick timer and StopNow run on this strand: they touch the same objects
  // (a signal_set and a timer are not safe to use from two threads at once), and a wait
  // re-armed on one thread while another cancels it would keep run() from ever returning.
  net::strand<net::io_context::executor_type> control{net::make_strand(ioc)};
  net::thread_pool workers;
  std::optional<Local::acceptor> acceptor;
  std::optional<Local::acceptor> creds_acceptor;  // creds.sock, also on the control strand
  std::optional<net::steady_timer> tick;
  std::optional<net::signal_set> signals;
  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> next_id{0};
  std::string id_prefix;
};

void Server::Impl::DoAccept() {
  std::size_t loop = next_loop++ % loops.size();
  acceptor->async_accept(*loops[loop], [this, loop](beast::error_code ec, Local::socket sock) {
    if (stopping) return;
    if (ec) {
      if (ec == net::error::operation_aborted) return;
      // Out of descriptors or memory: pause instead of spinning.
      auto t = std::make_shared<net::steady_timer>(control, std::chrono::milliseconds(50));
      t->async_wait([this, t](beast::error_code) {
        if (!stopping) DoAccept();
      });
      return;
    }
    OnAccept(loop, std::move(sock));
    DoAccept();
  });
}

// creds.sock: each connection is accepted here (raw, so the fd is not tied to a loop) and
// served, blocking, on a worker: it reads a secret, which may unwrap in the HSM.
void Server::Impl::DoAcceptCredentials() {
  creds_acceptor->async_wait(Local::acceptor::wait_read, [this](beast::error_code ec) {
    if (stopping || ec == net::error::operation_aborted) return;
    // Out of descriptors or memory, or a failed wait: pause, then wait again.
    auto pause = [this](const std::string& why) {
      daemon::Log(daemon::LogLevel::kWarning, "creds.sock: accepting failed, retrying in 50 ms: " + why);
      auto t = std::make_shared<net::steady_timer>(control, std::chrono::milliseconds(50));
      t->async_wait([this, t](beast::error_code) {
        if (!stopping) DoAcceptCredentials();
      });
    };
    if (ec) return pause(ec.message());
    for (;;) {
      int fd = ::accept4(creds_acceptor->native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return pause(std::strerror(errno));
      }
      // Closed when the task has run, or if it never does.
      auto owned = std::make_shared<UniqueFd>(fd);
      net::post(workers,
                [this, owned, id = NextRequestId()] { ServeCredentialConnection(api, owned->get(), id); });
    }
    DoAcceptCredentials();
  });
}

void Server::Impl::OnAccept(std::size_t loop, Local::socket sock) {
  int fd = sock.native_handle();
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return;  // closes
  std::shared_ptr<const config::Limits> l = Limits();
  if (!Admit(cred.uid, *l)) {
    api.CountConnectionRefused();
    // Answered before any request is read (no session is made for it), but with an id
    // like any other answer, so a refusal can be matched to the daemon's counters and logs.
    std::string id = NextRequestId();
    ApiResponse r = Api::Error(429, "too_many_connections", "connection limit reached; retry later", id);
    r.headers.emplace_back("Retry-After", "1");
    std::string msg = ResponseBytes(r, id, /*keep_open=*/false);
    (void)::send(fd, msg.data(), msg.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    return;  // the socket closes as it goes out of scope
  }
  // SO_PEERCRED is the identity; /proc only adds the unit, exe and supplementary groups.
  // Under ProtectProc=invisible (or hidepid=) other users' /proc entries are hidden: such
  // a caller is still served by its uid and gid, and its unit or exe bindings do not match.
  std::string partial;
  Result<policy::Subject> identified = policy::IdentifyConnection(fd, {}, &partial);
  if (!identified.ok()) return;  // closes
  policy::Subject s = std::move(identified).value();
  if (!partial.empty()) {
    daemon::Log(daemon::LogLevel::kDebug, "peer uid " + std::to_string(cred.uid) +
                                              ": no unit, exe or supplementary groups: " + partial);
  }
  auto session =
      std::make_shared<Session>(*this, loop, *loops[loop], std::move(sock), std::move(s), cred.uid, l);
  {
    std::lock_guard lock(mu);
    if (sessions.size() > 256) {  // drop expired entries now and then
      std::erase_if(sessions, [](const std::weak_ptr<Session>& w) { return w.expired(); });
    }
    sessions.push_back(session);
  }
  net::post(*loops[loop], [session] { session->Start(); });
}

void Server::Impl::Watch(std::size_t loop, const std::shared_ptr<Session>& s) {
  LoopState& sw = *sweeps[loop];
  sw.sessions.push_back(s);
  if (!sw.armed) ArmSweep(loop);
}

// Every 100 ms while the loop has connections: deadlines are kept to that precision, and
// an agent with no connections does not wake up at all.
void Server::Impl::ArmSweep(std::size_t loop) {
  LoopState& sw = *sweeps[loop];
  sw.armed = true;
  sw.timer.expires_after(std::chrono::milliseconds(100));
  sw.timer.async_wait([this, loop](beast::error_code ec) {
    LoopState& s = *sweeps[loop];
    s.armed = false;
    if (ec) return;
    auto now = Session::Clock::now();
    std::erase_if(s.sessions, [now](const std::weak_ptr<Session>& w) {
      auto live = w.lock();
      return !live || !live->Sweep(now);
    });
    if (!s.sessions.empty()) ArmSweep(loop);  // also while draining: a stuck client is still dropped
  });
}

void Server::Impl::StopNow() {
  if (stopping.exchange(true)) return;
  api.StopWatches();  // parked watches answer now, so their connections drain
  beast::error_code ec;
  if (acceptor) acceptor->close(ec);
  if (creds_acceptor) creds_acceptor->close(ec);
  if (tick) tick->cancel();
  if (signals) signals->cancel(ec);
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard lock(mu);
    for (auto& w : sessions) {
      if (auto s = w.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) s->CloseIfIdle();
  keep_running.clear();  // each loop's run() returns once its connections are done
}

Server::Server(Api& api, const config::Limits& limits, int io_threads, int worker_threads, int io_spin_us)
    : impl_(std::make_unique<Impl>(api, limits, io_threads, worker_threads, io_spin_us)) {}

// Runs one loop until it stops. With a spin window, a thread that has just run a handler
// keeps polling (a non-blocking epoll_wait, yielding the CPU between polls) until the
// window passes with nothing to do, and only then sleeps in epoll. On a VM, waking a
// halted vCPU for the next request of a keep-alive client costs tens of microseconds,
// more than the request itself; an idle agent still sleeps, a window after its last request.
// The window stays open (up to kMaxWorkerSpin) while one of this loop's requests is at a
// worker (a write waiting for its sync): its answer then goes out without a wake-up, which
// cost a lone writer about a third of its PUT here.
void Server::Impl::RunLoop(std::size_t i) const {
  net::io_context& loop = *loops[i];
  if (spin.count() == 0) {
    loop.run();
    return;
  }
  using Clock = std::chrono::steady_clock;
  constexpr auto kMaxWorkerSpin = std::chrono::milliseconds(2);
  const std::atomic<int>& waiting = *at_workers[i];
  while (loop.run_one() > 0) {
    auto now = Clock::now();
    auto until = now + spin;
    auto worker_until = now + kMaxWorkerSpin;
    for (;;) {
      if (loop.poll() > 0) {
        now = Clock::now();
        until = now + spin;
        worker_until = now + kMaxWorkerSpin;
      } else if (loop.stopped()) {
        return;
      } else if (Clock::now() >= (waiting.load(std::memory_order_relaxed) > 0 ? worker_until : until)) {
        break;
      } else {
        std::this_thread::yield();
      }
    }
  }
}

Server::~Server() { impl_->workers.join(); }

Status Server::Listen(UniqueFd fd) {
  beast::error_code ec;
  // The acceptor lives on the control strand, so StopNow's close never races an accept.
  impl_->acceptor.emplace(impl_->control);
  impl_->acceptor->assign(Local(), fd.get(), ec);
  if (!ec) (void)fd.release();  // the acceptor owns it now
  if (ec) return Unavailable("adopting the listening socket: " + ec.message(), "socket_error");
  net::post(impl_->control, [this] { impl_->DoAccept(); });
  return OkStatus();
}

Status Server::ListenCredentials(UniqueFd fd) {
  beast::error_code ec;
  impl_->creds_acceptor.emplace(impl_->control);
  impl_->creds_acceptor->assign(Local(), fd.get(), ec);
  if (!ec) (void)fd.release();  // the acceptor owns it now
  if (!ec) impl_->creds_acceptor->non_blocking(true, ec);
  if (ec) return Unavailable("adopting the credential socket: " + ec.message(), "socket_error");
  net::post(impl_->control, [this] { impl_->DoAcceptCredentials(); });
  return OkStatus();
}

void Server::SetLimits(const config::Limits& limits) {
  std::lock_guard lock(impl_->mu);
  impl_->limits = std::make_shared<const config::Limits>(limits);
}

void Server::OnSignals(std::function<void(int)> handler) {
  impl_->signals.emplace(impl_->control, SIGTERM, SIGINT, SIGHUP);
  impl_->on_signal = std::move(handler);
  net::post(impl_->control, [this] { impl_->ArmSignals(); });
}

void Server::Stop() {
  net::post(impl_->control, [this] { impl_->StopNow(); });
}

void Server::Run(const std::function<void()>& on_tick, int tick_ms) {
  if (on_tick && tick_ms > 0) {
    impl_->tick.emplace(impl_->control);
    impl_->on_tick = on_tick;
    impl_->tick_ms = tick_ms;
    net::post(impl_->control, [this] { impl_->ArmTick(); });
  }
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < impl_->loops.size(); ++i) {
    threads.emplace_back([this, i] { impl_->RunLoop(i); });
  }
  impl_->RunLoop(0);
  for (auto& t : threads) t.join();
  impl_->workers.join();
}

}  // namespace sk::api
