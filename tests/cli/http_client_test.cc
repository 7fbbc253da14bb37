// The CLI's HTTP client: the pure response parser on valid, malformed, truncated and
// oversized inputs (and random mutations of them), and HttpCall against fake servers
// on a Unix socket that answer badly, slowly, or not at all.
#include "tools/cli/http_client.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "tests/fixtures/temp_dir.h"

namespace sk::cli {
namespace {

using sk::testing::TempDir;

const std::string kOk =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Request-Id: 42\r\nContent-Length: "
    "11\r\n\r\n{\"a\":\"bc\"}\n";

std::string ReasonOf(std::string_view bytes, const ResponseLimits& limits = {}) {
  auto r = ParseResponseHead(bytes, limits);
  if (r.ok()) return r->has_value() ? "complete" : "incomplete";
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  return std::string(r.status().reason());
}

TEST(ResponseParser, CompleteResponseGivesStatusHeadersAndBodyBounds) {
  auto r = ParseResponseHead(kOk);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->has_value());
  const ResponseHead& h = **r;
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.reason, "OK");
  EXPECT_EQ(h.content_length, 11u);
  EXPECT_EQ(kOk.substr(h.head_size, h.content_length), "{\"a\":\"bc\"}\n");
  ASSERT_EQ(h.headers.size(), 3u);
  EXPECT_EQ(h.headers[1].first, "x-request-id");
  EXPECT_EQ(h.headers[1].second, "42");
}

TEST(ResponseParser, HeaderNamesAreLowerCasedAndValuesTrimmed) {
  auto r = ParseResponseHead("HTTP/1.0 404 Not Found\r\nCONTENT-length:   3 \t\r\nX-A:\r\n\r\nabc");
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->status, 404);
  EXPECT_EQ((*r)->content_length, 3u);
  EXPECT_EQ((*r)->headers[1].first, "x-a");
  EXPECT_EQ((*r)->headers[1].second, "");
}

TEST(ResponseParser, EveryPrefixOfTheHeadIsIncomplete) {
  std::size_t head_end = kOk.find("\r\n\r\n") + 4;
  for (std::size_t n = 0; n < head_end; ++n) {
    EXPECT_EQ(ReasonOf(std::string_view(kOk).substr(0, n)), "incomplete") << n;
  }
  EXPECT_EQ(ReasonOf(std::string_view(kOk).substr(0, head_end)), "complete");
}

TEST(ResponseParser, SomethingElseThanHttpFailsAtOnce) {
  EXPECT_EQ(ReasonOf("SSH-2.0-OpenSSH"), "bad_response");
  EXPECT_EQ(ReasonOf(std::string("\0\0\0", 3)), "bad_response");
  EXPECT_EQ(ReasonOf("HTTP/2 200 OK\r\n\r\n"), "bad_response");
  EXPECT_EQ(ReasonOf("http/1.1 200 OK\r\n\r\n"), "bad_response");
}

TEST(ResponseParser, MalformedStatusLinesAreRefused) {
  for (const char* line :
       {"HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "HTTP/1.1 abc OK", "HTTP/1.1 099 Low", "HTTP/1.1 600 High",
        "HTTP/1.1  200 OK", "HTTP/1.1 200OK", "HTTP/1.2 200 OK", "HTTP/1.1 200 O\x01K", "HTTP/1.1"}) {
    EXPECT_EQ(ReasonOf(std::string(line) + "\r\nContent-Length: 0\r\n\r\n"), "bad_response") << line;
  }
  EXPECT_EQ(ReasonOf("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), "complete");
}

TEST(ResponseParser, MalformedHeaderLinesAreRefused) {
  for (const char* h : {"NoColon", ": empty-name", "Bad Name: x", "X-A: a\x01z", "X-A: a\rz", " folded: x",
                        "\tfolded: x", "X-A: a\nb"}) {
    EXPECT_EQ(ReasonOf(std::string("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n") + h + "\r\n\r\n"),
              "bad_response")
        << h;
  }
}

TEST(ResponseParser, ContentLengthMustBeOneDecimalNumber) {
  auto with = [](const std::string& headers) {
    return ReasonOf("HTTP/1.1 200 OK\r\n" + headers + "\r\n\r\n");
  };
  EXPECT_EQ(with("X-A: b"), "bad_response");  // missing
  for (const char* v : {"-1", "+1", "1e3", "0x10", "12 34", "", "99999999999999999999"}) {
    EXPECT_EQ(with(std::string("Content-Length: ") + v), "bad_response") << v;
  }
  EXPECT_EQ(with("Content-Length: 2\r\nContent-Length: 3"), "bad_response");
  EXPECT_EQ(with("Content-Length: 2\r\nContent-Length: 2"), "complete");
  EXPECT_EQ(with("Transfer-Encoding: chunked"), "bad_response");
  EXPECT_EQ(with("Content-Length: 2\r\nTransfer-Encoding: chunked"), "bad_response");
}

TEST(ResponseParser, BodilessStatusesNeedNoLengthAndInterimOnesAreRefused) {
  EXPECT_EQ(ReasonOf("HTTP/1.1 204 No Content\r\n\r\n"), "complete");
  EXPECT_EQ(ReasonOf("HTTP/1.1 304 Not Modified\r\n\r\n"), "complete");
  EXPECT_EQ(ReasonOf("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"), "bad_response");
  EXPECT_EQ(ReasonOf("HTTP/1.1 100 Continue\r\n\r\n"), "bad_response");
}

TEST(ResponseParser, OversizedHeadsAndBodiesAreRefused) {
  std::string big = "HTTP/1.1 200 OK\r\nX-Pad: " + std::string(70 * 1024, 'a');
  EXPECT_EQ(ReasonOf(big), "response_too_large");  // no end of head in sight
  EXPECT_EQ(ReasonOf(big + "\r\nContent-Length: 0\r\n\r\n"), "response_too_large");
  EXPECT_EQ(ReasonOf("HTTP/1.1 200 OK\r\nContent-Length: 67108865\r\n\r\n"), "response_too_large");
  EXPECT_EQ(ReasonOf("HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\n"), "complete");
  ResponseLimits small{.max_head_bytes = 64, .max_body_bytes = 10};
  EXPECT_EQ(ReasonOf("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", small), "response_too_large");
  EXPECT_EQ(ReasonOf("HTTP/1.1 200 OK\r\nX: " + std::string(60, 'b') + "\r\n\r\n", small),
            "response_too_large");
}

// Random byte flips, insertions and truncations of valid responses: the parser answers
// (complete, incomplete or an error) and never reads out of bounds (ASan build).
TEST(ResponseParser, RandomMutationsNeverCrash) {
  std::mt19937 rng(1234);
  const std::string seeds[] = {kOk, "HTTP/1.1 204 No Content\r\n\r\n",
                               "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\nA: b\r\n\r\n{}"};
  std::size_t complete = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = seeds[i % 3];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      std::size_t at = rng() % s.size();
      switch (rng() % 4) {
        case 0:
          s[at] = static_cast<char>(rng() & 0xff);
          break;
        case 1:
          s.insert(at, 1, "\r\n: 0\x7f"[rng() % 6]);
          break;
        case 2:
          s.erase(at, 1);
          break;
        default:
          s.resize(at);
          break;
      }
    }
    auto r = ParseResponseHead(s);
    if (r.ok() && r->has_value()) {
      ++complete;
      EXPECT_LE((*r)->head_size, s.size());
      EXPECT_GE((*r)->status, 200);
    }
  }
  EXPECT_GT(complete, 0u);
}

TEST(WipeString, LeavesAnEmptyString) {
  std::string s(100, 'x');
  WipeString(s);
  EXPECT_TRUE(s.empty());
  std::string small = "abc";
  WipeString(small);
  EXPECT_TRUE(small.empty());
}

// A one-connection server on a Unix socket that reads the request head, then answers
// `reply` (and closes) or, when `stall`, waits without answering.
class FakeServer {
 public:
  FakeServer(const std::string& path, std::string reply, bool stall = false) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    thread_ = std::thread([this, reply = std::move(reply), stall] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string got;
      char buf[4096];
      while (got.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        got.append(buf, static_cast<std::size_t>(n));
      }
      request_ = got;
      if (stall) {
        ::recv(c, buf, sizeof buf, 0);  // until the client gives up and closes
      } else {
        (void)::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
      }
      ::close(c);
    });
  }
  ~FakeServer() {
    Join();
    ::close(fd_);
  }
  // Waits for the exchange to end; returns the request head the server read.
  std::string Join() {
    if (thread_.joinable()) {
      ::shutdown(fd_, SHUT_RDWR);
      thread_.join();
    }
    return request_;
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::thread thread_;
  std::string request_;
};

TEST(HttpCall, ReadsAResponseAndSendsAWellFormedRequest) {
  TempDir dir("cli-http");
  std::string sock = dir.Join("s.sock");
  FakeServer server(sock, kOk);
  auto r = HttpCall(sock, {"GET", "/v1/secrets/a"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "{\"a\":\"bc\"}\n");
  EXPECT_EQ(r->Header("x-request-id").value_or(""), "42");
  HttpResponse moved = std::move(r).value();
  EXPECT_EQ(moved.body, "{\"a\":\"bc\"}\n");
  EXPECT_EQ(server.Join().rfind("GET /v1/secrets/a HTTP/1.1\r\n", 0), 0u);
}

TEST(HttpCall, RequestHeadCarriesLengthAndHeaders) {
  TempDir dir("cli-http");
  std::string sock = dir.Join("s.sock");
  FakeServer server(sock, kOk);
  HttpRequest req("POST", "/v1/txn", "{\"ops\":[]}");
  req.headers = {{"Idempotency-Key", "k1"}};
  auto r = HttpCall(sock, req);
  ASSERT_TRUE(r.ok());
  std::string head = server.Join();
  EXPECT_EQ(head.rfind("POST /v1/txn HTTP/1.1\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("\r\nIdempotency-Key: k1\r\n"), std::string::npos);
  EXPECT_NE(head.find("\r\nContent-Length: 10\r\n"), std::string::npos);
  EXPECT_NE(head.find("\r\nContent-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(head.find("\r\nConnection: close\r\n"), std::string::npos);
}

TEST(HttpCall, TruncatedBodyIsAMalformedResponse) {
  TempDir dir("cli-http");
  std::string sock = dir.Join("s.sock");
  FakeServer server(sock, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"short\":");
  auto r = HttpCall(sock, {"GET", "/v1/health"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().reason(), "bad_response");
  EXPECT_NE(r.status().message().find("truncated"), std::string_view::npos);
}

TEST(HttpCall, GarbageAndOversizedAnswersAreRefused) {
  TempDir dir("cli-http");
  std::string sock = dir.Join("s.sock");
  {
    FakeServer server(sock, "hello, this is not http\r\n\r\n");
    auto r = HttpCall(sock, {"GET", "/v1/health"});
    EXPECT_EQ(r.status().reason(), "bad_response");
  }
  ::unlink(sock.c_str());
  {
    FakeServer server(sock, "HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n");
    auto r = HttpCall(sock, {"GET", "/v1/health"});
    EXPECT_EQ(r.status().reason(), "response_too_large");
    EXPECT_EQ(r.status().code(), Code::kUnavailable);
  }
}

TEST(HttpCall, AClosedConnectionWithoutAnswerIsReported) {
  TempDir dir("cli-http");
  std::string sock = dir.Join("s.sock");
  FakeServer server(sock, "");
  auto r = HttpCall(sock, {"GET", "/v1/health"});
  EXPECT_EQ(r.status().reason(), "connection_closed");
}

TEST(HttpCall, ASilentServerTimesOut) {
  TempDir dir("cli-http");
  std::string sock = dir.Join("s.sock");
  FakeServer server(sock, "", /*stall=*/true);
  auto started = std::chrono::steady_clock::now();
  auto r = HttpCall(sock, {"GET", "/v1/health", {}, std::chrono::milliseconds(300)});
  EXPECT_EQ(r.status().reason(), "timeout");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
}

TEST(HttpCall, AMissingSocketAsksWhetherTheAgentRuns) {
  TempDir dir("cli-http");
  auto r = HttpCall(dir.Join("nope.sock"), {"GET", "/v1/health"});
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(r.status().reason(), "no_socket");
  EXPECT_NE(r.status().message().find("is sealkeepd running? no socket at " + dir.Join("nope.sock")),
            std::string_view::npos);
}

TEST(HttpCall, ASocketNobodyListensOnIsRefused) {
  TempDir dir("cli-http");
  std::string sock = dir.Join("stale.sock");
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, sock.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);  // bound, never listened: a stale socket file
  auto r = HttpCall(sock, {"GET", "/v1/health"});
  EXPECT_EQ(r.status().reason(), "connection_refused");
}

TEST(HttpCall, ALongSocketPathIsAUsageError) {
  auto r = HttpCall("/tmp/" + std::string(200, 'x'), {"GET", "/v1/health"});
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
}

TEST(HttpCall, HeadersWithLineBreaksAreNeverSent) {
  TempDir dir("cli-http");
  HttpRequest req("GET", "/v1/health");
  req.headers = {{"X-A", "a\r\nX-Injected: 1"}};
  auto r = HttpCall(dir.Join("nope.sock"), req);
  EXPECT_EQ(r.status().code(), Code::kInternal);
}

}  // namespace
}  // namespace sk::cli
