#include "agent/api/session.h"

#include <poll.h>

namespace sk::api {

void Session::Start() {
  beast::error_code ec;
  stream_.non_blocking(true, ec);
  if (ec) return Close();
  srv_.Watch(loop_index_, shared_from_this());
  WaitForRequest();
}

bool Session::Sweep(Clock::time_point now) {
  if (!stream_.is_open()) return false;
  if (now >= deadline_) {
    Close();
    return false;
  }
  return true;
}

void Session::CloseIfIdle() {
  net::post(loop_, [self = shared_from_this()] {
    if (self->idle_) self->Close();
  });
}

void Session::WaitForRequest() {
  if (srv_.Stopping()) return Close();
  idle_ = true;
  parser_.reset();
  ExpiresAfter(limits_->idle_timeout_ms);
  Parse();
}

void Session::StartRequest() {
  idle_ = false;
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(limits_->max_header_bytes));
  parser_->body_limit(limits_->max_body_bytes);
  header_seen_ = false;
  ExpiresAfter(limits_->request_timeout_ms);
}

void Session::Parse() {
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

bool Session::OnHeader() {
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

void Session::OnReadError(beast::error_code ec) {
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

void Session::OnRequest() {
  ExpiresNever();
  http::request<RequestBody> req = parser_->release();
  parser_.reset();
  keep_alive_ = req.keep_alive() && !srv_.Stopping();
  auto ar = std::make_shared<ApiRequest>();
  ar->method = std::string(req.method_string());
  ar->target = std::string(req.target());
  ar->body = std::move(req.body());
  ar->idempotency_key = std::string(req["Idempotency-Key"]);
  ar->vault_token = req.find("X-Vault-Token") != req.end();  // its value is never read
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
  if (rr.match->route == Route::kWatch) {
    // Parked in the watch hub: the answer comes back on this connection's loop. `gone` is
    // set when the watch is over for this connection: its client hung up, or it is answered
    // (which also ends WatchForHangUp).
    auto gone = std::make_shared<std::atomic<bool>>(false);
    srv_.SessionApi().Watch(*ar, *rr.match, gone, [self = shared_from_this(), id, gone](ApiResponse resp) {
      net::post(self->loop_, [self, resp = std::move(resp), id, gone]() mutable {
        gone->store(true);
        self->Write(std::move(resp), id);
      });
    });
    WatchForHangUp(std::move(gone));
    return;
  }
  if (!IsBlockingRoute(rr.match->route)) {
    ApiResponse resp = srv_.SessionApi().Handle(*ar, *rr.match);
    Wipe(ar->body);
    return Write(std::move(resp), id);
  }
  auto match = std::make_shared<RouteMatch>(std::move(*rr.match));
  // Keeps the I/O context running while the worker computes the answer (draining at
  // shutdown must still send it).
  auto work =
      std::make_shared<net::executor_work_guard<net::io_context::executor_type>>(loop_.get_executor());
  srv_.BlockingStarted(loop_index_);
  net::post(srv_.Workers(), [self = shared_from_this(), ar, match, id, work]() mutable {
    auto resp = std::make_shared<ApiResponse>(self->srv_.SessionApi().Handle(*ar, *match));
    Wipe(ar->body);
    net::post(self->loop_, [self, resp, id, work]() mutable {
      self->srv_.BlockingDone(self->loop_index_);
      self->Write(std::move(*resp), id);
      work->reset();
    });
  });
}

void Session::Write(ApiResponse r, const std::string& id) {
  keep_open_ = keep_alive_ && !srv_.Stopping();
  head_.clear();
  AppendResponseHead(head_, r, id, keep_open_);
  if (HasNoContent(r.status)) r.body.clear();  // the head says there is none
  body_ = std::move(r.body);
  secret_ = r.secret;
  ExpiresAfter(limits_->request_timeout_ms);  // a client that never reads is dropped too
  sent_ = 0;
  Send();
}

void Session::Send() {
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

void Session::OnWrite(beast::error_code ec) {
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

void Session::WatchForHangUp(std::shared_ptr<std::atomic<bool>> gone, int quiet_wakes) {
  stream_.async_wait(Local::socket::wait_read,
                     [self = shared_from_this(), gone, quiet_wakes](beast::error_code ec) {
                       if (ec || gone->load() || !self->stream_.is_open()) return;
                       // POLLHUP on a Unix stream socket: the peer closed it. A half-close (shutdown of the
                       // client's writing side) or more bytes (a pipelined request) are not a hang-up: the
                       // watch goes on, and what follows is read after its answer.
                       pollfd p{self->stream_.native_handle(), POLLIN, 0};
                       const int ready = ::poll(&p, 1, 0);
                       if (ready == 0) {
                         // Nothing there (the reactor may report a readiness already consumed): wait again,
                         // a bounded number of times so that a reactor that keeps doing so cannot spin.
                         if (quiet_wakes < kMaxQuietWakes) self->WatchForHangUp(gone, quiet_wakes + 1);
                         return;
                       }
                       if (ready != 1 || (p.revents & POLLHUP) == 0) return;
                       gone->store(true);
                       self->srv_.SessionApi().ForgetWatches();
                       self->Close();
                     });
}

void Session::Close() {
  beast::error_code ec;
  if (!stream_.is_open()) return;
  stream_.shutdown(Local::socket::shutdown_both, ec);
  stream_.close(ec);
}

}  // namespace sk::api
