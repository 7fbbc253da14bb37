// Hostile and broken clients: each gets its documented error (or is dropped) while other
// clients keep being served, and nothing is stored.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdio>
#include <thread>

#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/temp_dir.h"

namespace sk::testing {
namespace {

class BadInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("badinput");
    AgentProcess::Options o;
    o.limits =
        "max_header_bytes = 8192\nmax_body_bytes = 262144\nrequest_timeout_ms = 1500\nidle_timeout_ms = "
        "3000\n"
        "max_connections = 3000\nmax_connections_per_uid = 1000";
    agent_ = new AgentProcess(dir_->path(), o);
    agent_->Start();
    ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/canary", R"({"value":"alive"})").status, 200);
  }
  static void TearDownTestSuite() {
    delete agent_;
    delete dir_;
  }
  // Another client is served, and the canary is intact.
  static void ExpectOthersServed() {
    auto r = agent_->Call("GET", "/v1/secrets/canary");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.Json()["value"], "alive");
  }
  static HttpResponse Raw(const std::string& bytes) {
    HttpConnection c(agent_->socket());
    // The server may answer and close before an oversized request is fully sent: the
    // send then fails, and the answer is still there to read.
    (void)c.SendRaw(bytes);
    return c.ReadResponse(5000);
  }
  static TempDir* dir_;
  static AgentProcess* agent_;
};
TempDir* BadInputTest::dir_ = nullptr;
AgentProcess* BadInputTest::agent_ = nullptr;

TEST_F(BadInputTest, MalformedHttpGetsBadRequestAndTheConnectionCloses) {
  for (const char* junk :
       {"GARBAGE\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "GET /v1/health HTTP/1.1\r\nBad Header\r\n\r\n",
        "PUT /v1/secrets/a HTTP/1.1\r\nContent-Length: abc\r\n\r\n"}) {
    SCOPED_TRACE(junk);
    HttpConnection c(agent_->socket());
    ASSERT_TRUE(c.SendRaw(junk));
    auto r = c.ReadResponse(5000);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.ErrorCode(), "bad_request");
    EXPECT_TRUE(c.WaitClosed(3000));
  }
  ExpectOthersServed();
}

TEST_F(BadInputTest, MalformedNestedAndNonUtf8JsonIsRefused) {
  EXPECT_EQ(agent_->Call("PUT", "/v1/secrets/j", "{\"value\":").ErrorCode(), "bad_json");
  EXPECT_EQ(agent_->Call("PUT", "/v1/secrets/j", "[\"value\"]").ErrorCode(), "bad_json");
  std::string deep;
  for (int i = 0; i < 10000; ++i) deep += "{\"a\":";
  EXPECT_EQ(agent_->Call("PUT", "/v1/secrets/j", deep).ErrorCode(), "bad_json");
  EXPECT_EQ(agent_->Call("PUT", "/v1/secrets/j", "{\"value\":\"\xc3\x28\"}").ErrorCode(), "bad_json");
  EXPECT_EQ(agent_->Call("PUT", "/v1/secrets/j", R"({"value":"a","value":"b"})").ErrorCode(), "bad_json");
  EXPECT_EQ(agent_->Call("PUT", "/v1/secrets/j", R"({"value":5})").ErrorCode(), "bad_request");
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/j").status, 404) << "nothing was stored";
  ExpectOthersServed();
}

TEST_F(BadInputTest, AMalformedBodyNeverEchoesItsBytesToTheClientOrTheCli) {
  const std::string secret = "hunter2-Zq7xK";
  for (const std::string& body : {"{\"value\":\"" + secret, "{\"value\":\"" + secret + "\x01\"}",
                                  "{\"value\":\"" + secret + "\\q\"}"}) {
    SCOPED_TRACE(::testing::PrintToString(body));
    auto r = agent_->Call("PUT", "/v1/secrets/echo", body);
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.ErrorCode(), "bad_json");
    EXPECT_EQ(r.body.find("Zq7xK"), std::string::npos) << r.body;
  }
  // `sealkeep txn FILE` sends the file as it is and prints the server's message.
  WriteFile(dir_->Join("txn.json"), "{\"ops\":[{\"op\":\"put\",\"path\":\"echo\",\"value\":\"" + secret,
            0600);
  int status = 0;
  std::string out = agent_->Cli("txn " + dir_->Join("txn.json"), &status, "", /*with_stderr=*/true);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("malformed JSON"), std::string::npos) << out;
  EXPECT_EQ(out.find("Zq7xK"), std::string::npos) << out;
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/echo").status, 404);
  ExpectOthersServed();
}

TEST_F(BadInputTest, OversizedHeadersAndBodiesAreRefused) {
  auto big_header = Raw("GET /v1/health HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n");
  EXPECT_EQ(big_header.status, 431);
  EXPECT_EQ(big_header.ErrorCode(), "headers_too_large");
  std::string body = "{\"value\":\"" + std::string(400000, 'x') + "\"}";
  auto big_body = Raw("PUT /v1/secrets/big HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) +
                      "\r\n\r\n" + body);
  EXPECT_EQ(big_body.status, 413);
  EXPECT_EQ(big_body.ErrorCode(), "body_too_large");
  // Within the body limit but over the value limit (64 KiB).
  auto big_value = agent_->Call("PUT", "/v1/secrets/big", "{\"value\":\"" + std::string(70000, 'x') + "\"}");
  EXPECT_EQ(big_value.status, 413);
  EXPECT_EQ(big_value.ErrorCode(), "value_too_large");
  ExpectOthersServed();
}

TEST_F(BadInputTest, APutWithoutALengthGetsLengthRequiredAndChunkedIsAccepted) {
  HttpConnection c(agent_->socket());
  ASSERT_TRUE(c.SendRaw("PUT /v1/secrets/nolen HTTP/1.1\r\nHost: x\r\n\r\n{\"value\":\"x\"}"));
  auto r = c.ReadResponse(5000);
  EXPECT_EQ(r.status, 411) << r.body;
  EXPECT_EQ(r.ErrorCode(), "length_required");
  EXPECT_NE(r.Json()["error"]["request_id"], "");
  EXPECT_TRUE(c.WaitClosed(3000)) << "the bytes after the header cannot be framed";
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/nolen").status, 404);
  const std::string body = R"({"value":"chunked"})";
  char size[16];
  std::snprintf(size, sizeof size, "%zx", body.size());
  auto chunked = Raw("PUT /v1/secrets/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                     std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n");
  EXPECT_EQ(chunked.status, 200) << chunked.body;
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/chunked").Json()["value"], "chunked");
  ExpectOthersServed();
}

TEST_F(BadInputTest, BadPathsAreRefused) {
  for (std::string path : {std::string("a/../b"), std::string(".."), std::string("a//b"), std::string("a/"),
                           std::string(300, 'p'), std::string("a/b c"), std::string("caf\xc3\xa9")}) {
    SCOPED_TRACE(path);
    auto r = agent_->Call("PUT", "/v1/secrets/" + path, R"({"value":"x"})");
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_TRUE(r.ErrorCode() == "bad_path" || r.ErrorCode() == "bad_request") << r.ErrorCode();
  }
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/a%00b").status, 400) << "no escapes, so no NUL bytes";
  auto nul = Raw(std::string("GET /v1/secrets/a\0b HTTP/1.1\r\n\r\n", 32));
  EXPECT_EQ(nul.status, 400);
  ExpectOthersServed();
}

TEST_F(BadInputTest, ASlowlorisClientIsDroppedWhileOthersAreServed) {
  HttpConnection slow(agent_->socket());
  std::string req = "PUT /v1/secrets/slow HTTP/1.1\r\nContent-Length: 20\r\n\r\n{\"value\":\"abcdefg\"}";
  auto start = std::chrono::steady_clock::now();
  bool dropped = false;
  for (char ch : req) {
    if (!slow.SendRaw(std::string(1, ch))) {
      dropped = true;
      break;
    }
    auto t0 = std::chrono::steady_clock::now();
    ExpectOthersServed();  // the slow client does not hold anything others need
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
    if (slow.WaitClosed(200)) {
      dropped = true;
      break;
    }
  }
  EXPECT_TRUE(dropped)
      << "a client sending a byte every 200 ms must be dropped at the 1.5 s request deadline";
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/slow").status, 404);
}

TEST_F(BadInputTest, IdleKeptAliveConnectionsAreClosed) {
  HttpConnection c(agent_->socket());
  EXPECT_EQ(c.Request("GET", "/v1/health").status, 200);
  EXPECT_TRUE(c.WaitClosed(6000)) << "idle_timeout_ms is 3000";
}

TEST_F(BadInputTest, TwoThousandConnectionsAtOnceGetAnswersOrAPoliteRefusal) {
  rlimit fds{};
  ::getrlimit(RLIMIT_NOFILE, &fds);
  fds.rlim_cur = fds.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &fds);
  ASSERT_GE(fds.rlim_cur, 2200u);
  HttpConnection before(agent_->socket());  // a client that was already connected
  ASSERT_EQ(before.Request("GET", "/v1/secrets/canary").status, 200);
  std::vector<std::unique_ptr<HttpConnection>> flood;
  for (int i = 0; i < 2000; ++i) flood.push_back(std::make_unique<HttpConnection>(agent_->socket()));
  int served = 0, refused = 0, other = 0;
  for (auto& c : flood) {
    if (!c->connected()) {
      ++other;
      continue;
    }
    c->SendRaw("GET /v1/health HTTP/1.1\r\n\r\n");
  }
  for (auto& c : flood) {
    if (!c->connected()) continue;
    auto r = c->ReadResponse(10000);
    if (r.status == 200) {
      ++served;
    } else if (r.status == 429 && r.ErrorCode() == "too_many_connections") {
      ++refused;
    } else {
      ++other;
    }
  }
  EXPECT_EQ(other, 0);
  EXPECT_GT(served, 900) << "per-uid limit is 1000";
  EXPECT_GT(refused, 900);
  EXPECT_EQ(before.Request("GET", "/v1/secrets/canary").status, 200)
      << "an existing client keeps being served";
  flood.clear();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ExpectOthersServed();
}

}  // namespace
}  // namespace sk::testing
