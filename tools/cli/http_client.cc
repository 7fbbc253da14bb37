#include "tools/cli/http_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "crypto/locked_pool.h"
#include "crypto/unique_fd.h"
#include "sealkeep_version.h"

namespace sk::cli {
namespace {

using Clock = std::chrono::steady_clock;

Status Bad(const std::string& what) {
  return Status(Code::kUnavailable, "bad_response", "malformed response from sealkeepd: " + what);
}

Status TooLarge(const std::string& what) {
  return Status(Code::kUnavailable, "response_too_large", "response from sealkeepd too large: " + what);
}

bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Visible ASCII, obs-text and horizontal tab are allowed in field values and reasons.
bool IsFieldChar(char c) {
  auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Digits only, at most 19 of them (no overflow); nullopt otherwise.
std::optional<std::size_t> ParseLength(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  std::size_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::size_t>(c - '0');
  }
  return v;
}

// True when `bytes` could still grow into "HTTP/1.x ": lets garbage fail at once
// instead of waiting for the deadline.
bool PlausibleStart(std::string_view bytes) {
  constexpr std::string_view kPrefix = "HTTP/1.";
  std::size_t n = std::min(bytes.size(), kPrefix.size());
  return bytes.substr(0, n) == kPrefix.substr(0, n);
}

Status ParseStatusLine(std::string_view line, ResponseHead& head) {
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || (line[7] != '0' && line[7] != '1') ||
      line[8] != ' ') {
    return Bad("bad status line");
  }
  int code = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return Bad("bad status code");
    code = code * 10 + (line[i] - '0');
  }
  if (code < 100 || code > 599) return Bad("status code " + std::to_string(code) + " out of range");
  if (line.size() > 12 && line[12] != ' ') return Bad("bad status line");
  std::string_view reason = line.size() > 13 ? line.substr(13) : std::string_view();
  if (!std::all_of(reason.begin(), reason.end(), IsFieldChar))
    return Bad("control character in the status line");
  head.status = code;
  head.reason = std::string(reason);
  return OkStatus();
}

Status ParseHeaderLine(std::string_view line, ResponseHead& head, std::optional<std::size_t>& length,
                       const ResponseLimits& limits) {
  if (line.empty() || line.front() == ' ' || line.front() == '\t') return Bad("folded or empty header line");
  std::size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return Bad("header line without a name");
  std::string_view name = line.substr(0, colon);
  if (!std::all_of(name.begin(), name.end(), IsTokenChar)) return Bad("bad header name");
  std::string_view value = Trim(line.substr(colon + 1));
  if (!std::all_of(value.begin(), value.end(), IsFieldChar))
    return Bad("control character in a header value");
  std::string lname = Lower(name);
  if (lname == "transfer-encoding")
    return Bad("Transfer-Encoding is not supported (sealkeepd sends Content-Length)");
  if (lname == "content-length") {
    auto n = ParseLength(value);
    if (!n) return Bad("bad Content-Length '" + std::string(value.substr(0, 32)) + "'");
    if (length && *length != *n) return Bad("conflicting Content-Length headers");
    if (*n > limits.max_body_bytes) {
      return TooLarge("a body of " + std::to_string(*n) + " bytes (the cap is " +
                      std::to_string(limits.max_body_bytes) + ")");
    }
    length = n;
  }
  head.headers.emplace_back(std::move(lname), std::string(value));
  return OkStatus();
}

}  // namespace

Result<std::optional<ResponseHead>> ParseResponseHead(std::string_view bytes, const ResponseLimits& limits) {
  if (!PlausibleStart(bytes)) return Bad("it does not start with HTTP/1.x");
  std::size_t end = bytes.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (bytes.size() >= limits.max_head_bytes) {
      return TooLarge("headers over " + std::to_string(limits.max_head_bytes) + " bytes");
    }
    return std::optional<ResponseHead>();
  }
  ResponseHead head;
  head.head_size = end + 4;
  if (head.head_size > limits.max_head_bytes) {
    return TooLarge("headers over " + std::to_string(limits.max_head_bytes) + " bytes");
  }
  std::string_view rest = bytes.substr(0, end);
  std::optional<std::size_t> length;
  bool first = true;
  while (true) {
    std::size_t eol = rest.find("\r\n");
    std::string_view line = rest.substr(0, eol);
    if (line.find_first_of("\r\n") != std::string_view::npos) return Bad("bare CR or LF in the head");
    Status st = first ? ParseStatusLine(line, head) : ParseHeaderLine(line, head, length, limits);
    if (!st.ok()) return st;
    first = false;
    if (eol == std::string_view::npos) break;
    rest.remove_prefix(eol + 2);
  }
  const bool no_body = head.status < 200 || head.status == 204 || head.status == 304;
  if (head.status < 200) return Bad("unexpected interim response " + std::to_string(head.status));
  if (no_body) {
    if (length.value_or(0) != 0) return Bad("a body on a " + std::to_string(head.status) + " response");
  } else if (!length) {
    return Bad("no Content-Length");
  }
  head.content_length = length.value_or(0);
  return std::optional<ResponseHead>(std::move(head));
}

void WipeString(std::string& s) {
  s.resize(s.capacity());  // no reallocation: makes the whole buffer addressable
  SecureWipe(s.data(), s.size());
  s.clear();
}

HttpResponse::HttpResponse(HttpResponse&& other) noexcept
    : status(other.status),
      reason(std::move(other.reason)),
      headers(std::move(other.headers)),
      body(std::move(other.body)) {
  WipeString(other.body);
}

HttpResponse& HttpResponse::operator=(HttpResponse&& other) noexcept {
  if (this != &other) {
    WipeString(body);
    status = other.status;
    reason = std::move(other.reason);
    headers = std::move(other.headers);
    body = std::move(other.body);
    WipeString(other.body);
  }
  return *this;
}

HttpResponse::~HttpResponse() { WipeString(body); }

std::optional<std::string_view> HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return std::string_view(v);
  }
  return std::nullopt;
}

namespace {

// Grows `buf` to hold at least `need` bytes without leaving a copy of its bytes in a
// freed allocation.
void ReserveWiped(std::string& buf, std::size_t need) {
  if (need <= buf.capacity()) return;
  std::string bigger;
  bigger.reserve(std::max(need, buf.capacity() * 2));
  bigger.append(buf);
  WipeString(buf);
  buf = std::move(bigger);
}

int MillisLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1'000'000'000));
}

Status ConnectError(int err, const std::string& path) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return Unavailable("is sealkeepd running? no socket at " + path + " (set --socket or SEALKEEP_SOCKET)",
                         "no_socket");
    case EACCES:
    case EPERM:
      return Unavailable("permission denied on " + path +
                             ": the socket, or a folder above it, is not open to uid " +
                             std::to_string(::getuid()) + " (the socket is usually group sealkeep)",
                         "socket_permission_denied");
    case ECONNREFUSED:
      return Unavailable("connection refused at " + path +
                             ": nothing listens there (sealkeepd stopped and left the socket behind?)",
                         "connection_refused");
    case EAGAIN:
      return Unavailable("sealkeepd at " + path + " is not accepting connections now (backlog full); retry",
                         "connect_failed");
    default:
      return Unavailable("cannot connect to " + path + ": " + std::strerror(err), "connect_failed");
  }
}

Status Timeout(const std::string& path, std::chrono::milliseconds timeout) {
  long long ms = timeout.count();
  return Unavailable("no complete answer from sealkeepd at " + path + " within " + std::to_string(ms / 1000) +
                         "." + std::to_string((ms % 1000) / 100) + " s",
                     "timeout");
}

// Writes all of `data`; returns 0 or the errno that stopped it (ETIMEDOUT at the deadline).
int SendAll(int fd, std::string_view data, Clock::time_point deadline) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return errno;
    pollfd p{fd, POLLOUT, 0};
    int left = MillisLeft(deadline);
    if (left == 0 || ::poll(&p, 1, left) == 0) return ETIMEDOUT;
  }
  return 0;
}

bool ValidHeaderText(std::string_view s) { return s.find_first_of("\r\n") == std::string_view::npos; }

Result<std::string> BuildHead(const HttpRequest& r) {
  bool ok = !r.method.empty() && std::all_of(r.method.begin(), r.method.end(), IsTokenChar) &&
            !r.target.empty() && r.target.front() == '/' &&
            r.target.find_first_of(" \t\r\n") == std::string::npos;
  for (const auto& [k, v] : r.headers) {
    ok = ok && !k.empty() && std::all_of(k.begin(), k.end(), IsTokenChar) && ValidHeaderText(v);
  }
  if (!ok) return Internal("refusing to send a malformed request line or header");
  std::string head = r.method + " " + r.target + " HTTP/1.1\r\nHost: sealkeep\r\nUser-Agent: sealkeep/" +
                     SEALKEEP_VERSION + "\r\nAccept: application/json\r\nConnection: close\r\n";
  for (const auto& [k, v] : r.headers) head += k + ": " + v + "\r\n";
  if (!r.body.empty() || r.method == "PUT" || r.method == "POST") {
    head += "Content-Type: application/json\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\n";
  }
  head += "\r\n";
  return head;
}

}  // namespace

Result<HttpResponse> HttpCall(const std::string& socket_path, const HttpRequest& request,
                              const ResponseLimits& limits) {
  const auto deadline = Clock::now() + request.timeout;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path)) {
    return InvalidArgument("socket path '" + socket_path + "' is empty or longer than " +
                               std::to_string(sizeof(addr.sun_path) - 1) + " bytes",
                           "bad_socket_path");
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  SK_ASSIGN_OR_RETURN(std::string head_text, BuildHead(request));

  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0)
    return Unavailable(std::string("cannot create a socket: ") + std::strerror(errno), "connect_failed");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return ConnectError(errno, socket_path);
  }
  (void)::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);

  // A send error is not final: sealkeepd may have answered (413, say) and closed early.
  int send_err = SendAll(fd.get(), head_text, deadline);
  if (send_err == 0) send_err = SendAll(fd.get(), request.body, deadline);
  if (send_err == ETIMEDOUT) return Timeout(socket_path, request.timeout);

  std::string buf;
  buf.reserve(16 * 1024);
  std::array<char, 16 * 1024> chunk{};
  std::optional<ResponseHead> head;
  std::size_t total = 0;
  Status failure;
  while (true) {
    if (!head) {
      auto parsed = ParseResponseHead(buf, limits);
      if (!parsed.ok()) {
        failure = parsed.status();
        break;
      }
      if (*parsed) {
        head = std::move(**parsed);
        total = head->head_size + head->content_length;
        ReserveWiped(buf, total);
      }
    }
    if (head && buf.size() >= total) break;
    std::size_t want = head ? std::min(chunk.size(), total - buf.size()) : chunk.size();
    ssize_t n = ::recv(fd.get(), chunk.data(), want, 0);
    if (n > 0) {
      ReserveWiped(buf, buf.size() + static_cast<std::size_t>(n));
      buf.append(chunk.data(), static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd.get(), POLLIN, 0};
      int left = MillisLeft(deadline);
      if (left == 0 || ::poll(&p, 1, left) == 0) {
        failure = Timeout(socket_path, request.timeout);
        break;
      }
      continue;
    }
    // Closed (or reset) before a whole response arrived.
    if (buf.empty()) {
      failure =
          Unavailable(send_err != 0 ? "sealkeepd closed the connection while the request was being sent (" +
                                          std::string(std::strerror(send_err)) + ")"
                                    : std::string("sealkeepd closed the connection without answering"),
                      "connection_closed");
    } else {
      failure = Bad("truncated: the connection closed after " + std::to_string(buf.size()) + " bytes");
    }
    break;
  }
  SecureWipe(chunk.data(), chunk.size());
  if (!failure.ok()) {
    WipeString(buf);
    return failure;
  }
  HttpResponse response;
  response.status = head->status;
  response.reason = std::move(head->reason);
  response.headers = std::move(head->headers);
  buf.erase(0, head->head_size);  // in place: the body never leaves this buffer
  response.body = std::move(buf);
  WipeString(buf);
  return response;
}

}  // namespace sk::cli
