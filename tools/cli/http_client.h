// A small blocking HTTP/1.1 client over a Unix socket: how the sealkeep CLI talks to a
// running sealkeepd (docs/api.md).
//
// One request per connection (`Connection: close`): connect, write the request, read one
// response whose body length is given by Content-Length (sealkeepd always sends it;
// chunked bodies are refused as malformed). The whole exchange has one deadline.
//
// The response parser, ParseResponseHead(), is a pure function over bytes so tests and the
// fuzzer (tests/fuzz/fuzz_http_response.cc) can drive it without a socket. It caps the head at 64 KiB and the
// body at 64 MiB.
//
// Bodies may hold secret values (a PUT's request, a GET's answer): the client never logs
// them, the request body is borrowed (the caller wipes it), and an HttpResponse wipes its
// body when it goes away. Every transport failure is a Status with kUnavailable (exit 6),
// whose message says what to check (no socket, permission, refused, timeout, malformed).
//
// Thread-safety: plain functions and values; no shared state.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crypto/status.h"

namespace sk::cli {

struct ResponseLimits {
  std::size_t max_head_bytes = 64 * 1024;         // status line + headers + blank line
  std::size_t max_body_bytes = 64 * 1024 * 1024;  // Content-Length
};

using HttpHeader = std::pair<std::string, std::string>;  // name lower-cased, value trimmed

// The status line and headers of a response; the body is the next content_length bytes
// after head_size.
struct ResponseHead {
  int status = 0;
  std::string reason;
  std::vector<HttpHeader> headers;
  std::size_t head_size = 0;       // bytes up to and including the blank line
  std::size_t content_length = 0;  // 0 for 1xx/204/304
};

// Parses the head of an HTTP/1.x response at the start of `bytes`. Returns nullopt while
// the head is incomplete (read more and call again), the head once it is complete, or an
// error (kUnavailable, reason bad_response or response_too_large) when the bytes cannot
// be a valid response within `limits`: bad status line, bad header line, missing,
// malformed or conflicting Content-Length, Transfer-Encoding, oversized head or body.
Result<std::optional<ResponseHead>> ParseResponseHead(std::string_view bytes,
                                                      const ResponseLimits& limits = {});

// Overwrites a string's whole buffer with zeros, then empties it.
void WipeString(std::string& s);

// Wipes a string when the scope ends, also when an error unwinds it.
class WipeOnExit {
 public:
  explicit WipeOnExit(std::string& s) : s_(s) {}
  ~WipeOnExit() { WipeString(s_); }
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;

 private:
  std::string& s_;
};

// A response. Move-only; the body is wiped when the response is destroyed or moved from.
class HttpResponse {
 public:
  HttpResponse() = default;
  HttpResponse(HttpResponse&& other) noexcept;
  HttpResponse& operator=(HttpResponse&& other) noexcept;
  HttpResponse(const HttpResponse&) = delete;
  HttpResponse& operator=(const HttpResponse&) = delete;
  ~HttpResponse();

  int status = 0;
  std::string reason;
  std::vector<HttpHeader> headers;
  std::string body;

  // The value of the first header called `name` (lower-case), or nullopt.
  std::optional<std::string_view> Header(std::string_view name) const;
};

struct HttpRequest {
  HttpRequest(std::string method_in, std::string target_in, std::string_view body_in = {},
              std::chrono::milliseconds timeout_in = std::chrono::milliseconds(30'000))
      : method(std::move(method_in)), target(std::move(target_in)), body(body_in), timeout(timeout_in) {}

  std::string method;  // GET, PUT, POST, DELETE
  std::string target;  // "/v1/secrets/db/pw?version=2": the caller escapes it
  // Borrowed, may be a secret: written as is, never copied into another buffer. A body
  // (even empty) is sent with Content-Type: application/json for PUT and POST.
  std::string_view body;
  std::chrono::milliseconds timeout;  // the whole exchange
  std::vector<HttpHeader> headers;    // extra headers (e.g. Idempotency-Key); no CR/LF in them
};

// Performs one request on a fresh connection to `socket_path`. Errors (all kUnavailable
// unless said): no_socket, socket_permission_denied, connection_refused, not_a_socket,
// connect_failed, send_failed, timeout, connection_closed, bad_response,
// response_too_large; bad_socket_path (kInvalidArgument) when the path does not fit in
// sockaddr_un. An HTTP error status is not an error here: the caller reads `status`.
Result<HttpResponse> HttpCall(const std::string& socket_path, const HttpRequest& request,
                              const ResponseLimits& limits = {});

}  // namespace sk::cli
