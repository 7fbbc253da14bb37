#include "agent/api/server.h"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "agent/api/api.h"
#include "agent/api/creds.h"
#include "agent/api/json_util.h"
#include "agent/daemon/systemd.h"
#include "agent/policy/peer_identity.h"
#include "crypto/locked_pool.h"
#include "crypto/random.h"
#include "crypto/wiping_allocator.h"

namespace sk::api {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Local = net::local::stream_protocol;

namespace {

template <class String>
void Wipe(String& s) {
  if (!s.empty()) SecureWipe(s.data(), s.size());
  s.clear();
}

// A request body may hold a secret (a PUT's value): it grows in memory that is wiped when
// given back (chunked bodies grow as they arrive), and is moved, never copied, into the
// ApiRequest the server wipes after answering.
using RequestBody = http::basic_string_body<char, std::char_traits<char>, WipingAllocator<char>>;

Status Errno(const std::string& what) {
  return Unavailable(what + ": " + std::strerror(errno), "socket_error");
}

}  // namespace

Result<int> CreateListenSocket(const std::string& path, unsigned mode, const std::string& group) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path))
    return InvalidArgument("socket path too long: " + path, "bad_config");
  gid_t gid = static_cast<gid_t>(-1);
  if (!group.empty()) {
    std::vector<char> buf(16384);
    struct group grp {};
    struct group* found = nullptr;
    if (getgrnam_r(group.c_str(), &grp, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
      return InvalidArgument("no such group '" + group + "' for the socket", "bad_config");
    }
    gid = found->gr_gid;
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  // A stale socket file from an earlier run: only remove it if it is a socket nobody serves.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      ::close(fd);
      return FailedPrecondition(path + " exists and is not a socket", "socket_in_use");
    }
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool live = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(probe);
    if (live) {
      ::close(fd);
      return FailedPrecondition("another process is serving " + path, "socket_in_use");
    }
    ::unlink(path.c_str());
  }
  // Born 0600: never more open than the final mode, whatever the process umask is.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::umask(old);
  if (rc != 0) {
    Status s = Errno("bind " + path);
    ::close(fd);
    return s;
  }
  if ((gid != static_cast<gid_t>(-1) && ::chown(path.c_str(), static_cast<uid_t>(-1), gid) != 0) ||
      ::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0 || ::listen(fd, 1024) != 0) {
    Status s = Errno("preparing " + path);
    ::close(fd);
    ::unlink(path.c_str());
    return s;
  }
  return fd;
}

class Session;

struct Server::Impl {
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

  std::string NextRequestId() {
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
  void Release(std::uint32_t uid) {
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
  void Watch(std::size_t loop, const std::shared_ptr<Session>& s);
  void ArmSweep(std::size_t loop);
  // Keeps every loop's run() going while it has no connection; released by StopNow.
  std::vector<net::executor_work_guard<net::io_context::executor_type>> keep_running;
  std::atomic<std::size_t> next_loop{0};
  std::chrono::microseconds spin;
  void RunLoop(net::io_context& loop) const;
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

class Session : public std::enable_shared_from_this<Session> {
 public:
  using Clock = std::chrono::steady_clock;

  Session(Server::Impl& srv, std::size_t loop_index, Local::socket&& sock, policy::Subject subject,
          std::uint32_t uid, std::shared_ptr<const config::Limits> limits)
      : srv_(srv),
        loop_index_(loop_index),
        loop_(*srv.loops[loop_index]),
        stream_(std::move(sock)),
        subject_(std::move(subject)),
        uid_(uid),
        limits_(std::move(limits)) {}
  ~Session() { srv_.Release(uid_); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // On the connection's own loop.
  void Start() {
    beast::error_code ec;
    stream_.non_blocking(true, ec);
    if (ec) return Close();
    srv_.Watch(loop_index_, shared_from_this());
    WaitForRequest();
  }

  // The sweep (on this loop): closes the connection once its deadline has passed. An
  // operation then in progress ends with operation_aborted and the session goes away.
  // Returns false when the connection is closed.
  bool Sweep(Clock::time_point now) {
    if (!stream_.is_open()) return false;
    if (now >= deadline_) {
      Close();
      return false;
    }
    return true;
  }

  // At shutdown: a connection waiting for its next request is closed now; one with a
  // request in flight answers it (Connection: close) first.
  void CloseIfIdle() {
    net::post(loop_, [self = shared_from_this()] {
      if (self->idle_) self->Close();
    });
  }

 private:
  using Ms = std::chrono::milliseconds;
  static constexpr std::size_t kReadChunk = 16 * 1024;
  static constexpr int kMaxInlineRequests = 16;

  void ExpiresAfter(std::uint32_t ms) { deadline_ = Clock::now() + Ms(ms); }
  void ExpiresNever() { deadline_ = Clock::time_point::max(); }

  // Waits for the next request with the idle deadline; once its first bytes arrive, the
  // whole request must follow within the request deadline. The socket is non-blocking:
  // reads and sends are tried at once and only wait in epoll when the kernel has nothing
  // to read (or no room to send), and bytes already buffered are parsed in place, so a
  // busy connection runs one handler per request rather than one per step.
  void WaitForRequest() {
    if (srv_.stopping) return Close();
    idle_ = true;
    parser_.reset();
    ExpiresAfter(limits_->idle_timeout_ms);
    Parse();
  }

  void StartRequest() {
    idle_ = false;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(limits_->max_header_bytes));
    parser_->body_limit(limits_->max_body_bytes);
    header_seen_ = false;
    ExpiresAfter(limits_->request_timeout_ms);
  }

  // Feeds what is buffered to the parser, reading more while the request is incomplete.
  void Parse() {
    for (;;) {
      while (buffer_.size() > 0) {
        if (!parser_) StartRequest();
        beast::error_code ec;
        net::mutable_buffer bytes = buffer_.data();
        std::size_t used = parser_->put(net::const_buffer(bytes), ec);
        SecureWipe(bytes.data(), used);  // parsed: what matters is in the request now
        buffer_.consume(used);
        if (ec == http::error::need_more) break;
        if (ec) return OnReadError(ec);
        if (parser_->is_header_done() && !header_seen_) {
          header_seen_ = true;
          if (!OnHeader()) return;
        }
        if (parser_->is_done()) return OnRequest();
        if (used == 0) break;
      }
      beast::error_code ec;
      std::size_t n = stream_.read_some(buffer_.prepare(kReadChunk), ec);
      if (ec == net::error::would_block || ec == net::error::try_again) {
        stream_.async_wait(Local::socket::wait_read, [self = shared_from_this()](beast::error_code e) {
          if (e) return self->Close();
          self->inline_requests_ = 0;
          self->Parse();
        });
        return;
      }
      if (ec) return Close();  // end of stream or reset: the peer is gone, nothing to answer
      buffer_.commit(n);
    }
  }

  // The header is complete. False when the session goes on elsewhere (a 100 Continue).
  bool OnHeader() {
    auto& req = parser_->get();
    // A request without Content-Length or chunked encoding has no body (RFC 9112 §6.3), so
    // a PUT's value sent that way would be read as the next request. Every PUT carries a
    // value: say what is missing, and close, since the bytes that follow cannot be framed.
    if (req.method() == http::verb::put && !parser_->content_length() && !parser_->chunked()) {
      keep_alive_ = false;
      std::string id = srv_.NextRequestId();
      parser_.reset();
      Write(Api::Error(411, "length_required", "a PUT needs Content-Length or chunked encoding", id), id);
      return false;
    }
    // A length given: one allocation, no reallocation. Chunked: a first block, then growth
    // through the wiping allocator. Never the string's inline buffer, which nothing wipes.
    std::size_t reserve = 1024;
    if (auto len = parser_->content_length(); len && *len <= limits_->max_body_bytes) {
      reserve = static_cast<std::size_t>(*len);
    }
    req.body().reserve(std::max<std::size_t>(reserve, 64));
    if (!parser_->is_done() && buffer_.size() == 0 &&
        beast::iequals(req[http::field::expect], "100-continue")) {
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      net::async_write(stream_, net::buffer(kContinue),
                       [self = shared_from_this()](beast::error_code e, std::size_t) {
                         if (e) return self->Close();
                         self->Parse();
                       });
      return false;
    }
    return true;
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset) {
      return Close();  // gone, or too slow: nothing to answer
    }
    keep_alive_ = false;
    std::string id = srv_.NextRequestId();
    if (ec == http::error::header_limit) {
      return Write(Api::Error(431, "headers_too_large", "the request headers are larger than the limit", id),
                   id);
    }
    if (ec == http::error::body_limit) {
      return Write(Api::Error(413, "body_too_large", "the request body is larger than the limit", id), id);
    }
    return Write(Api::Error(400, "bad_request", "malformed HTTP request: " + ec.message(), id), id);
  }

  void OnRequest() {
    ExpiresNever();
    http::request<RequestBody> req = parser_->release();
    parser_.reset();
    keep_alive_ = req.keep_alive() && !srv_.stopping;
    auto ar = std::make_shared<ApiRequest>();
    ar->method = std::string(req.method_string());
    ar->target = std::string(req.target());
    ar->body = std::move(req.body());
    ar->idempotency_key = std::string(req["Idempotency-Key"]);
    ar->subject = subject_;
    ar->request_id = srv_.NextRequestId();
    std::string id = ar->request_id;
    RouteResult rr = MatchRoute(ar->method, ar->target);
    if (!rr.match) {
      Wipe(ar->body);
      if (rr.error == RouteError::kMethodNotAllowed) {
        return Write(
            Api::Error(405, "method_not_allowed", "this route does not take " + ar->method.substr(0, 16), id),
            id);
      }
      if (rr.error == RouteError::kBadTarget)
        return Write(Api::Error(400, "bad_request", "malformed request target", id), id);
      return Write(Api::Error(404, "no_route", "no such route", id), id);
    }
    if (!IsBlockingRoute(rr.match->route)) {
      ApiResponse resp = srv_.api.Handle(*ar, *rr.match);
      Wipe(ar->body);
      return Write(std::move(resp), id);
    }
    auto match = std::make_shared<RouteMatch>(std::move(*rr.match));
    // Keeps the I/O context running while the worker computes the answer (draining at
    // shutdown must still send it).
    auto work =
        std::make_shared<net::executor_work_guard<net::io_context::executor_type>>(loop_.get_executor());
    net::post(srv_.workers, [self = shared_from_this(), ar, match, id, work]() mutable {
      auto resp = std::make_shared<ApiResponse>(self->srv_.api.Handle(*ar, *match));
      Wipe(ar->body);
      net::post(self->loop_, [self, resp, id, work]() mutable {
        self->Write(std::move(*resp), id);
        work->reset();
      });
    });
  }

  // The status line and headers go into head_ (reused, so no allocation once warm); the
  // body is sent from where it is, with one sendmsg for both, and never copied.
  void Write(ApiResponse r, const std::string& id) {
    keep_open_ = keep_alive_ && !srv_.stopping;
    head_.clear();
    head_ += "HTTP/1.1 ";
    head_ += std::to_string(r.status);
    head_ += ' ';
    head_ += http::obsolete_reason(static_cast<http::status>(r.status));
    head_ += "\r\nServer: sealkeepd\r\nContent-Type: ";
    head_ += r.content_type;
    head_ += "\r\nX-Request-Id: ";
    head_ += id;
    head_ += "\r\nCache-Control: no-store\r\n";
    for (const auto& [k, v] : r.headers) {
      if (k.find_first_of("\r\n:") != std::string::npos || v.find_first_of("\r\n") != std::string::npos)
        continue;
      head_ += k;
      head_ += ": ";
      head_ += v;
      head_ += "\r\n";
    }
    if (!keep_open_) head_ += "Connection: close\r\n";
    head_ += "Content-Length: ";
    head_ += std::to_string(r.body.size());
    head_ += "\r\n\r\n";
    body_ = std::move(r.body);
    secret_ = r.secret;
    ExpiresAfter(limits_->request_timeout_ms);  // a client that never reads is dropped too
    sent_ = 0;
    Send();
  }

  void Send() {
    const std::size_t total = head_.size() + body_.size();
    while (sent_ < total) {
      net::const_buffer head = net::buffer(head_), body = net::buffer(body_);
      if (sent_ < head.size()) {
        head += sent_;
      } else {
        body += sent_ - head.size();
        head = net::const_buffer();
      }
      std::array<net::const_buffer, 2> bufs{head, body};
      beast::error_code ec;
      std::size_t n = stream_.send(bufs, 0, ec);
      if (ec == net::error::would_block || ec == net::error::try_again) {
        stream_.async_wait(Local::socket::wait_write, [self = shared_from_this()](beast::error_code e) {
          if (e) return self->OnWrite(e);
          self->inline_requests_ = 0;
          self->Send();
        });
        return;
      }
      if (ec) return OnWrite(ec);
      sent_ += n;
    }
    OnWrite({});
  }

  void OnWrite(beast::error_code ec) {
    if (secret_) {
      Wipe(body_);
    } else {
      body_.clear();
    }
    ExpiresNever();
    if (ec || !keep_open_) return Close();
    // A client that keeps its pipe full would otherwise be served by ever deeper calls.
    if (++inline_requests_ >= kMaxInlineRequests) {
      inline_requests_ = 0;
      net::post(loop_, [self = shared_from_this()] { self->WaitForRequest(); });
      return;
    }
    WaitForRequest();
  }

  void Close() {
    beast::error_code ec;
    if (!stream_.is_open()) return;
    stream_.shutdown(Local::socket::shutdown_both, ec);
    stream_.close(ec);
  }

  Server::Impl& srv_;
  std::size_t loop_index_;
  net::io_context& loop_;  // the one thread that runs this connection's handlers
  Local::socket stream_;
  Clock::time_point deadline_ = Clock::time_point::max();  // checked by the loop's sweep
  beast::basic_flat_buffer<WipingAllocator<char>> buffer_;
  std::optional<http::request_parser<RequestBody>> parser_;
  std::string head_;  // the response's status line and headers
  std::string body_;  // the response's body (wiped after sending when it held a value)
  bool keep_open_ = true;
  bool header_seen_ = false;
  std::size_t sent_ = 0;     // bytes of head_ + body_ sent so far
  int inline_requests_ = 0;  // requests served since this connection last waited
  policy::Subject subject_;
  std::uint32_t uid_;
  std::shared_ptr<const config::Limits> limits_;
  bool keep_alive_ = true;
  bool secret_ = false;
  bool idle_ = false;
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
      std::shared_ptr<int> owned(new int(fd), [](int* p) {
        ::close(*p);
        delete p;
      });
      net::post(workers, [this, owned, id = NextRequestId()] { ServeCredentialConnection(api, *owned, id); });
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
    std::string body = ErrorBody("too_many_connections", "connection limit reached; retry later", id);
    std::string msg =
        "HTTP/1.1 429 Too Many Requests\r\nServer: sealkeepd\r\nContent-Type: application/json\r\n"
        "X-Request-Id: " +
        id + "\r\nCache-Control: no-store\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
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
  auto session = std::make_shared<Session>(*this, loop, std::move(sock), std::move(s), cred.uid, l);
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
void Server::Impl::RunLoop(net::io_context& loop) const {
  if (spin.count() == 0) {
    loop.run();
    return;
  }
  using Clock = std::chrono::steady_clock;
  while (loop.run_one() > 0) {
    auto until = Clock::now() + spin;
    for (;;) {
      if (loop.poll() > 0) {
        until = Clock::now() + spin;
      } else if (loop.stopped()) {
        return;
      } else if (Clock::now() >= until) {
        break;
      } else {
        std::this_thread::yield();
      }
    }
  }
}

Server::~Server() { impl_->workers.join(); }

Status Server::Listen(int fd) {
  beast::error_code ec;
  // The acceptor lives on the control strand, so StopNow's close never races an accept.
  impl_->acceptor.emplace(impl_->control);
  impl_->acceptor->assign(Local(), fd, ec);
  if (ec) return Unavailable("adopting the listening socket: " + ec.message(), "socket_error");
  net::post(impl_->control, [this] { impl_->DoAccept(); });
  return OkStatus();
}

Status Server::ListenCredentials(int fd) {
  beast::error_code ec;
  impl_->creds_acceptor.emplace(impl_->control);
  impl_->creds_acceptor->assign(Local(), fd, ec);
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
    threads.emplace_back([this, i] { impl_->RunLoop(*impl_->loops[i]); });
  }
  impl_->RunLoop(impl_->ioc);
  for (auto& t : threads) t.join();
  impl_->workers.join();
}

}  // namespace sk::api
