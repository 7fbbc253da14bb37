// Session: one client connection of the API socket, on one I/O loop: it reads requests
// (non-blocking, parsed in place, bodies grown in wiped memory), routes them, runs
// Api::Handle inline or on the worker pool for blocking routes, and writes the answers
// (head and body in one sendmsg, a body holding a value wiped after sending), keeping the
// idle and request deadlines that its loop's sweep enforces.
//
// Thread safety: every member runs on the connection's own loop, but CloseIfIdle (which
// posts to it) and the destructor (on whichever thread drops the last reference).
#pragma once

// Boost.Asio 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "agent/api/api.h"
#include "agent/api/http_wire.h"
#include "agent/api/router.h"
#include "agent/config/config.h"
#include "agent/policy/subject.h"
#include "crypto/locked_pool.h"
#include "crypto/wiping_allocator.h"

namespace sk::api {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Local = net::local::stream_protocol;

class Session;

// What a Session needs of the server that owns it (Server::Impl).
class SessionHost {
 public:
  virtual Api& SessionApi() = 0;
  virtual std::string NextRequestId() = 0;
  virtual bool Stopping() const = 0;
  virtual net::thread_pool& Workers() = 0;
  // Called on the session's loop: the loop's sweep closes it past its deadline.
  virtual void Watch(std::size_t loop, const std::shared_ptr<Session>& s) = 0;
  // The connection of `uid` is gone (its count is released).
  virtual void Release(std::uint32_t uid) = 0;
  // A request of `loop`'s is handed to a worker, and its answer is back on the loop.
  virtual void BlockingStarted(std::size_t loop) = 0;
  virtual void BlockingDone(std::size_t loop) = 0;

 protected:
  ~SessionHost() = default;
};

// A request body may hold a secret (a PUT's value): it grows in memory that is wiped when
// given back (chunked bodies grow as they arrive), and is moved, never copied, into the
// ApiRequest the server wipes after answering.
using RequestBody = http::basic_string_body<char, std::char_traits<char>, WipingAllocator<char>>;

template <class String>
void Wipe(String& s) {
  if (!s.empty()) SecureWipe(s.data(), s.size());
  s.clear();
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  using Clock = std::chrono::steady_clock;

  Session(SessionHost& srv, std::size_t loop_index, net::io_context& loop, Local::socket&& sock,
          policy::Subject subject, std::uint32_t uid, std::shared_ptr<const config::Limits> limits)
      : srv_(srv),
        loop_index_(loop_index),
        loop_(loop),
        stream_(std::move(sock)),
        subject_(std::move(subject)),
        uid_(uid),
        limits_(std::move(limits)) {}
  ~Session() { srv_.Release(uid_); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // On the connection's own loop.
  void Start();

  // The sweep (on this loop): closes the connection once its deadline has passed. An
  // operation then in progress ends with operation_aborted and the session goes away.
  // Returns false when the connection is closed.
  bool Sweep(Clock::time_point now);

  // At shutdown: a connection waiting for its next request is closed now; one with a
  // request in flight answers it (Connection: close) first.
  void CloseIfIdle();

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
  void WaitForRequest();

  void StartRequest();

  // Feeds what is buffered to the parser, reading more while the request is incomplete.
  void Parse();

  // The header is complete. False when the session goes on elsewhere (a 100 Continue).
  bool OnHeader();

  void OnReadError(beast::error_code ec);

  void OnRequest();

  // The status line and headers go into head_ (reused, so no allocation once warm); the
  // body is sent from where it is, with one sendmsg for both, and never copied.
  void Write(ApiResponse r, const std::string& id);

  void Send();

  void OnWrite(beast::error_code ec);

  void Close();

  // While a watch is parked: a client that hangs up is noticed at once, so its watch is
  // dropped and the connection (and its slot in the caller's connection limit) released,
  // not held until the watch's timeout.
  void WatchForHangUp(std::shared_ptr<std::atomic<bool>> gone, int quiet_wakes = 0);
  static constexpr int kMaxQuietWakes = 8;

  SessionHost& srv_;
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

}  // namespace sk::api
