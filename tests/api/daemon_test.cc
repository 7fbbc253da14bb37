// sealkeepd end to end: a real daemon process, a real SoftHSM2 token, raw HTTP over its
// Unix socket. Every route and its errors, keep-alive, concurrency, restarts, SIGTERM
// during load, a non-root caller, and the sealed state.
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <thread>

#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/temp_dir.h"

namespace sk::testing {
namespace {

using nlohmann::json;

std::string Body(const json& j) { return j.dump(); }

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override { agent_->Start(); }
  HttpResponse Call(const std::string& method, const std::string& target, const std::string& body = "") {
    return agent_->Call(method, target, body);
  }
  TempDir dir_{"daemon"};
  std::unique_ptr<AgentProcess> agent_ = std::make_unique<AgentProcess>(dir_.path());
};

TEST_F(DaemonTest, EveryRouteAnswersAsDocumented) {
  EXPECT_EQ(Call("GET", "/v1/health").Json()["status"], "unsealed");
  auto put =
      Call("PUT", "/v1/secrets/app/db/password", Body({{"value", "hunter2"}, {"labels", {{"env", "prod"}}}}));
  ASSERT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(put.Json()["version"], 1);
  EXPECT_FALSE(put.headers["x-request-id"].empty());
  auto get = Call("GET", "/v1/secrets/app/db/password");
  ASSERT_EQ(get.status, 200) << get.body;
  EXPECT_EQ(get.Json()["value"], "hunter2");
  EXPECT_EQ(get.Json()["labels"]["env"], "prod");
  EXPECT_EQ(get.headers["cache-control"], "no-store");
  // A binary value round-trips as base64.
  ASSERT_EQ(Call("PUT", "/v1/secrets/app/blob", Body({{"value_b64", "AP8Q"}})).status, 200);
  EXPECT_EQ(Call("GET", "/v1/secrets/app/blob").Json()["value_b64"], "AP8Q");
  EXPECT_EQ(Call("GET", "/v1/secrets/app/db/password?encoding=base64").Json()["value_b64"], "aHVudGVyMg==");

  ASSERT_EQ(Call("PUT", "/v1/secrets/app/db/password", Body({{"value", "oops"}, {"cas", 1}})).status, 200);
  auto stale = Call("PUT", "/v1/secrets/app/db/password", Body({{"value", "x"}, {"cas", 1}}));
  EXPECT_EQ(stale.status, 409);
  EXPECT_EQ(stale.ErrorCode(), "cas_mismatch");
  EXPECT_FALSE(stale.Json()["error"]["request_id"].get<std::string>().empty());

  auto list = Call("GET", "/v1/secrets?prefix=app");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.Json()["paths"].size(), 2u);
  EXPECT_EQ(list.body.find("hunter2"), std::string::npos) << "listings never hold values";

  auto rb = Call("POST", "/v1/secrets/app/db/password/rollback", Body({{"to", 1}}));
  ASSERT_EQ(rb.status, 200) << rb.body;
  EXPECT_EQ(rb.Json()["version"], 3);
  EXPECT_EQ(Call("GET", "/v1/secrets/app/db/password").Json()["value"], "hunter2");
  auto versions = Call("GET", "/v1/secrets/app/db/password/versions").Json()["versions"];
  ASSERT_EQ(versions.size(), 3u);
  EXPECT_EQ(versions[2]["kind"], "rollback");
  EXPECT_TRUE(versions[0]["verifies"].get<bool>());

  EXPECT_EQ(Call("POST", "/v1/secrets/app/db/password/floor", Body({{"floor", 2}})).status, 200);
  auto below = Call("POST", "/v1/secrets/app/db/password/rollback", Body({{"to", 1}}));
  EXPECT_EQ(below.status, 409);
  EXPECT_EQ(below.ErrorCode(), "below_floor");

  EXPECT_EQ(Call("DELETE", "/v1/secrets/app/blob").status, 200);
  auto deleted = Call("GET", "/v1/secrets/app/blob");
  EXPECT_EQ(deleted.status, 404);
  EXPECT_EQ(deleted.ErrorCode(), "deleted");
  EXPECT_EQ(Call("POST", "/v1/secrets/app/blob/undelete", "{}").status, 200);
  EXPECT_EQ(Call("GET", "/v1/secrets/app/blob").status, 200);
  EXPECT_EQ(Call("POST", "/v1/secrets/app/blob/destroy", "{}").ErrorCode(), "bad_request")
      << "destroy needs a version";
  EXPECT_EQ(Call("POST", "/v1/secrets/app/blob/destroy", Body({{"version", 1}})).status, 200);
  EXPECT_EQ(Call("GET", "/v1/secrets/app/blob").ErrorCode(), "destroyed");

  auto txn = Call("POST", "/v1/txn",
                  Body({{"ops", json::array({{{"op", "put"}, {"path", "t/a"}, {"value", "1"}},
                                             {{"op", "put"}, {"path", "t/b"}, {"value", "2"}},
                                             {{"op", "check"}, {"path", "t/c"}, {"version", 0}}})},
                        {"idempotency_key", "k-1"}}));
  ASSERT_EQ(txn.status, 200) << txn.body;
  EXPECT_EQ(txn.Json()["results"].size(), 3u);
  auto again = Call("POST", "/v1/txn",
                    Body({{"ops", json::array({{{"op", "put"}, {"path", "t/a"}, {"value", "1"}},
                                               {{"op", "put"}, {"path", "t/b"}, {"value", "2"}},
                                               {{"op", "check"}, {"path", "t/c"}, {"version", 0}}})},
                          {"idempotency_key", "k-1"}}));
  EXPECT_TRUE(again.Json()["replayed"].get<bool>());
  auto failing = Call("POST", "/v1/txn",
                      Body({{"ops", json::array({{{"op", "put"}, {"path", "t/a"}, {"value", "9"}},
                                                 {{"op", "rollback"}, {"path", "t/b"}, {"to", 7}}})}}));
  EXPECT_EQ(failing.status, 404) << failing.body;
  EXPECT_EQ(Call("GET", "/v1/secrets/t/a").Json()["value"], "1") << "all or nothing";

  auto snap = Call("POST", "/v1/snapshots", Body({{"name", "rel-1"}, {"prefix", "t"}}));
  ASSERT_EQ(snap.status, 200) << snap.body;
  EXPECT_EQ(snap.Json()["versions"]["t/a"], 1);
  ASSERT_EQ(Call("PUT", "/v1/secrets/t/a", Body({{"value", "changed"}})).status, 200);
  EXPECT_EQ(Call("GET", "/v1/snapshots/rel-1").Json()["verifies"], true);
  auto restored = Call("POST", "/v1/snapshots/rel-1/restore");
  ASSERT_EQ(restored.status, 200) << restored.body;
  EXPECT_EQ(Call("GET", "/v1/secrets/t/a").Json()["value"], "1");
  EXPECT_EQ(Call("POST", "/v1/snapshots", Body({{"name", "rel-1"}})).ErrorCode(), "snapshot_exists");

  auto status = Call("GET", "/v1/sys/status").Json();
  EXPECT_EQ(status["state"], "unsealed");
  EXPECT_EQ(status["backend"]["kind"], "pkcs11");
  EXPECT_GT(status["journal"]["head_seq"].get<int>(), 10);
  auto rotate = Call("POST", "/v1/sys/rotate");
  ASSERT_EQ(rotate.status, 200) << rotate.body;
  EXPECT_EQ(rotate.Json()["generation"], 2);
  EXPECT_EQ(Call("GET", "/v1/secrets/app/db/password").Json()["value"], "hunter2");
  auto verify = Call("GET", "/v1/sys/journal/verify").Json();
  EXPECT_TRUE(verify["ok"].get<bool>()) << verify.dump();
  auto audit = Call("GET", "/v1/sys/audit/verify");
  ASSERT_EQ(audit.status, 200) << audit.body;
  EXPECT_TRUE(audit.Json()["ok"].get<bool>()) << audit.body;
  EXPECT_GT(audit.Json()["records"].get<int>(), 20);
  auto metrics = Call("GET", "/metrics");
  EXPECT_NE(metrics.body.find("sealkeep_commits_total"), std::string::npos);
  EXPECT_EQ(metrics.headers["content-type"].rfind("text/plain", 0), 0u);

  EXPECT_EQ(Call("GET", "/v1/nothing").ErrorCode(), "no_route");
  EXPECT_EQ(Call("PATCH", "/v1/secrets/a").status, 405);
  EXPECT_EQ(Call("GET", "/v1/secrets/never/there").status, 404);
  EXPECT_EQ(Call("PUT", "/v1/secrets/x", Body({{"value", "v"}, {"bogus", 1}})).ErrorCode(), "bad_request");
  EXPECT_EQ(Call("PUT", "/v1/secrets/x", Body({{"value", std::string(70000, 'x')}})).status, 413);
  EXPECT_EQ(Call("GET", "/v1/secrets/x?version=abc").ErrorCode(), "bad_request");

  // Expiry.
  ASSERT_EQ(Call("PUT", "/v1/secrets/tmp/tok", Body({{"value", "t"}, {"expires_in", 1}})).status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  auto expired = Call("GET", "/v1/secrets/tmp/tok");
  EXPECT_EQ(expired.status, 410);
  EXPECT_EQ(expired.ErrorCode(), "expired");

  // Seal drops the keys: secrets answer 503 with the reason; unseal brings them back.
  ASSERT_EQ(Call("POST", "/v1/sys/seal").status, 200);
  auto sealed = Call("GET", "/v1/secrets/app/db/password");
  EXPECT_EQ(sealed.status, 503);
  EXPECT_EQ(sealed.ErrorCode(), "sealed");
  EXPECT_EQ(Call("GET", "/v1/health").status, 503);
  ASSERT_EQ(Call("POST", "/v1/sys/unseal").status, 200);
  EXPECT_EQ(Call("GET", "/v1/secrets/app/db/password").Json()["value"], "hunter2");
}

TEST_F(DaemonTest, KeepAliveServesManyRequestsOnOneConnection) {
  HttpConnection c(agent_->socket());
  ASSERT_TRUE(c.connected());
  for (int i = 0; i < 50; ++i) {
    auto r =
        c.Request("PUT", "/v1/secrets/ka/" + std::to_string(i % 5), Body({{"value", std::to_string(i)}}));
    ASSERT_EQ(r.status, 200) << i << " " << r.body;
    EXPECT_EQ(c.Request("GET", "/v1/secrets/ka/" + std::to_string(i % 5)).Json()["value"], std::to_string(i));
  }
  // Pipelined: two requests in one write, two answers in order.
  ASSERT_TRUE(c.SendRaw(
      "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/secrets/ka/1 HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(c.ReadResponse().status, 200);
  EXPECT_EQ(c.ReadResponse().Json()["value"], "46");

  // A client that pipelines 2,000 requests in one go gets 2,000 answers, in order.
  std::string many;
  for (int i = 0; i < 2000; ++i)
    many += "GET /v1/secrets/ka/" + std::to_string(i % 5) + " HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_TRUE(c.SendRaw(many));
  for (int i = 0; i < 2000; ++i) {
    auto r = c.ReadResponse();
    ASSERT_EQ(r.status, 200) << "answer " << i;
    ASSERT_EQ(r.Json()["path"], "ka/" + std::to_string(i % 5)) << "answer " << i;
  }

  // Expect: 100-continue: the interim answer first, then the body is read and applied.
  const std::string body = Body({{"value", "after-continue"}});
  ASSERT_TRUE(
      c.SendRaw("PUT /v1/secrets/ka/c HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Expect: 100-continue\r\nContent-Length: " +
                std::to_string(body.size()) + "\r\n\r\n"));
  EXPECT_EQ(c.ReadResponse().status, 100);
  ASSERT_TRUE(c.SendRaw(body));
  EXPECT_EQ(c.ReadResponse().status, 200);
  EXPECT_EQ(c.Request("GET", "/v1/secrets/ka/c").Json()["value"], "after-continue");
}

TEST_F(DaemonTest, SixtyFourConcurrentClientsAreAllServed) {
  std::atomic<int> ok{0}, bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 64; ++t) {
    threads.emplace_back([&, t] {
      HttpConnection c(agent_->socket());
      for (int i = 0; i < 10; ++i) {
        std::string path = "/v1/secrets/conc/" + std::to_string(t);
        auto w = c.Request("PUT", path, Body({{"value", std::to_string(i)}}));
        auto r = c.Request("GET", path);
        if (w.status == 200 && r.status == 200 && r.Json()["value"] == std::to_string(i)) {
          ++ok;
        } else {
          ++bad;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(ok.load(), 640);
  auto status = Call("GET", "/v1/sys/status").Json();
  EXPECT_LT(status["batches"].get<int>(), status["commits"].get<int>()) << "concurrent writers share commits";
}

TEST_F(DaemonTest, RestartKeepsEverything) {
  ASSERT_EQ(Call("PUT", "/v1/secrets/keep/me", Body({{"value", "v1"}})).status, 200);
  ASSERT_EQ(Call("PUT", "/v1/secrets/keep/me", Body({{"value", "v2"}})).status, 200);
  EXPECT_EQ(agent_->Stop(), 0) << "SIGTERM exits 0";
  agent_->Start();
  EXPECT_EQ(Call("GET", "/v1/secrets/keep/me").Json()["value"], "v2");
  EXPECT_EQ(Call("GET", "/v1/secrets/keep/me?version=1").Json()["value"], "v1");
  EXPECT_TRUE(Call("GET", "/v1/sys/journal/verify").Json()["ok"].get<bool>());
}

TEST_F(DaemonTest, SigtermDuringLoadLosesNoAcknowledgedWrite) {
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> acked;
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&, t] {
      HttpConnection c(agent_->socket());
      for (int i = 0; !stop; ++i) {
        std::string path = "load/" + std::to_string(t) + "/" + std::to_string(i);
        auto r = c.Request("PUT", "/v1/secrets/" + path, Body({{"value", path}}));
        if (r.status != 200) break;  // the agent is going away
        std::lock_guard lock(mu);
        acked.emplace_back(path, path);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(agent_->Stop(), 0) << agent_->Log();
  stop = true;
  for (auto& w : writers) w.join();
  ASSERT_GT(acked.size(), 8u);
  agent_->Start();
  for (const auto& [path, value] : acked) {
    auto r = Call("GET", "/v1/secrets/" + path);
    ASSERT_EQ(r.status, 200) << "acknowledged write lost: " << path;
    EXPECT_EQ(r.Json()["value"], value);
  }
}

TEST_F(DaemonTest, SigtermExitsPromptlyEveryTimeWhateverIsInFlight) {
  // Shutdown races (a signal wait re-armed while another thread cancels it) show up as a
  // daemon that never exits; run many cycles with readers and writers in flight.
  for (int cycle = 0; cycle < 15; ++cycle) {
    SCOPED_TRACE("cycle " + std::to_string(cycle));
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t) {
      clients.emplace_back([&, t] {
        HttpConnection c(agent_->socket());
        for (int i = 0; !stop && c.connected(); ++i) {
          auto r = (t % 2 == 0)
                       ? c.Request("PUT", "/v1/secrets/cyc/" + std::to_string(t), Body({{"value", "v"}}))
                       : c.Request("GET", "/v1/health");
          if (r.status == 0) break;
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + 10 * (cycle % 5)));
    auto t0 = std::chrono::steady_clock::now();
    int rc = agent_->Stop();
    auto took = std::chrono::steady_clock::now() - t0;
    stop = true;
    for (auto& c : clients) c.join();
    ASSERT_EQ(rc, 0) << agent_->Log();
    EXPECT_LT(took, std::chrono::seconds(5));
    agent_->Start();
  }
}

// CPU time (user + system, in clock ticks) the process has used so far.
long CpuTicks(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));  // fields from 3 (state) on
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

// Busy-polling I/O threads (io_spin_us, 50 by default) and sleeping ones (0) both serve
// concurrent keep-alive clients and stop on SIGTERM; a polling agent goes back to sleep
// once the clients are gone instead of burning a core while idle.
TEST(DaemonIoSpin, PollingAndSleepingLoopsServeStopAndAPollingAgentSleepsWhenIdle) {
  for (int spin : {0, 50}) {
    SCOPED_TRACE("io_spin_us = " + std::to_string(spin));
    TempDir dir("daemon-spin");
    AgentProcess::Options o;
    o.agent_config = "io_spin_us = " + std::to_string(spin) + "\n";
    AgentProcess agent(dir.path(), o);
    agent.Start();
    std::atomic<int> ok{0}, bad{0};
    std::vector<std::thread> clients;
    for (int t = 0; t < 16; ++t) {
      clients.emplace_back([&, t] {
        HttpConnection c(agent.socket());
        std::string path = "/v1/secrets/spin/" + std::to_string(t);
        for (int i = 0; i < 20; ++i) {
          auto w = c.Request("PUT", path, Body({{"value", std::to_string(i)}}));
          auto r = c.Request("GET", path);
          (w.status == 200 && r.status == 200 && r.Json()["value"] == std::to_string(i)) ? ++ok : ++bad;
        }
      });
    }
    for (auto& c : clients) c.join();
    EXPECT_EQ(bad.load(), 0);
    EXPECT_EQ(ok.load(), 16 * 20);
    // Idle: two seconds in which only the daemon's own 1 s tick runs. A loop that kept
    // polling would use about two seconds of CPU (200 ticks at 100 Hz); allow a tenth.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    long before = CpuTicks(agent.pid());
    std::this_thread::sleep_for(std::chrono::seconds(2));
    long used = CpuTicks(agent.pid()) - before;
    EXPECT_LT(used, ::sysconf(_SC_CLK_TCK) / 5) << "the idle agent used " << used << " ticks in 2 s";
    EXPECT_EQ(agent.Stop(), 0) << agent.Log();
  }
}

// Runs `fn` in a child process as the `nobody` user; returns its exit code.
int AsNobody(const std::function<int()>& fn) {
  passwd* pw = ::getpwnam("nobody");
  if (pw == nullptr) return 99;
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(pw->pw_gid) != 0 || ::setuid(pw->pw_uid) != 0) ::_exit(98);
    ::_exit(fn());
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 97;
}

TEST(DaemonAccess, ANonRootCallerIsRefusedAndLearnsNothing) {
  ASSERT_EQ(::geteuid(), 0u) << "this test runs clients as nobody: run it as root";
  TempDir dir("daemon-nobody");
  // The socket's group is nobody's group, so nobody can connect; the folders are
  // traversable. The agent itself decides (no policy: only root and its own uid).
  AgentProcess::Options o;
  o.extra_config = "";
  AgentProcess agent(dir.path(), o);
  agent.LetUserConnect("nobody", dir.path());
  agent.Start();
  ASSERT_EQ(agent.Call("PUT", "/v1/secrets/root/only", Body({{"value", "s3cret"}})).status, 200);
  std::string sock = agent.socket();
  int rc = AsNobody([&] {
    if (Http(sock, "GET", "/v1/health").status != 200) return 1;
    auto existing = Http(sock, "GET", "/v1/secrets/root/only");
    auto missing = Http(sock, "GET", "/v1/secrets/no/such/path");
    if (existing.status != 403 || missing.status != 403) return 2;
    if (existing.ErrorCode() != missing.ErrorCode()) return 3;  // existence is not revealed
    if (existing.body.find("s3cret") != std::string::npos) return 4;
    if (Http(sock, "PUT", "/v1/secrets/x", Body({{"value", "v"}})).status != 403) return 5;
    if (Http(sock, "POST", "/v1/sys/seal").status != 403) return 6;
    if (!Http(sock, "GET", "/v1/secrets").Json()["paths"].empty()) return 7;
    return 0;
  });
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(agent.Call("GET", "/v1/secrets/root/only").Json()["value"], "s3cret") << "root still served";
}

TEST(DaemonSealed, AWrongPinKeepsTheAgentUpSealedAndUnsealRetries) {
  TempDir dir("daemon-pin");
  AgentProcess agent(dir.path());
  std::string pin = ReadFile(agent.token().pin_file());
  WriteFile(agent.token().pin_file(), "000000");
  agent.Start();
  auto health = agent.Call("GET", "/v1/health");
  EXPECT_EQ(health.status, 503);
  EXPECT_EQ(health.Json()["status"], "sealed");
  EXPECT_EQ(health.Json()["reason"], "pin_incorrect") << health.body;
  EXPECT_EQ(agent.Call("GET", "/v1/secrets/a").ErrorCode(), "pin_incorrect");
  EXPECT_EQ(agent.Call("GET", "/v1/sys/status").Json()["state"], "sealed");
  WriteFile(agent.token().pin_file(), pin);
  auto unseal = agent.Call("POST", "/v1/sys/unseal");
  EXPECT_EQ(unseal.status, 200) << unseal.body;
  EXPECT_EQ(agent.Call("GET", "/v1/health").Json()["status"], "unsealed");
  EXPECT_EQ(agent.Log().find(pin), std::string::npos) << "the PIN never reaches the log";
}

TEST(DaemonSealed, AReplayedStoreKeepsTheAgentSealedUntilRecover) {
  TempDir dir("daemon-replay");
  AgentProcess::Options o;
  o.notify = true;
  AgentProcess agent(dir.path(), o);
  agent.Start();
  ASSERT_EQ(agent.Call("PUT", "/v1/secrets/r/a", Body({{"value", "one"}})).status, 200);
  ASSERT_EQ(agent.Stop(), 0);
  namespace fs = std::filesystem;
  fs::create_directories(dir.Join("copy"));
  for (const char* f : {"store.db", "store.db-wal", "store.db-shm"}) {
    if (fs::exists(agent.state_dir() + "/" + f))
      fs::copy_file(agent.state_dir() + "/" + f, dir.Join("copy/") + f);
  }
  agent.Start();
  ASSERT_EQ(agent.Call("PUT", "/v1/secrets/r/a", Body({{"value", "two"}})).status, 200);
  ASSERT_EQ(agent.Call("POST", "/v1/secrets/r/a/rollback", Body({{"to", 1}})).status, 200);
  ASSERT_EQ(agent.Stop(), 0);
  for (const char* f : {"store.db", "store.db-wal", "store.db-shm"}) {
    fs::remove(agent.state_dir() + "/" + f);
    if (fs::exists(dir.Join("copy/") + f)) fs::copy_file(dir.Join("copy/") + f, agent.state_dir() + "/" + f);
  }
  std::size_t before = agent.Notifications().size();
  agent.Start();
  auto health = agent.Call("GET", "/v1/health").Json();
  EXPECT_EQ(health["reason"], "replay_detected") << health.dump();
  int status = agent.WaitForNotify("STATUS=sealed", 10000, before);
  ASSERT_GE(status, 0) << "systemd is told why the agent is not ready";
  EXPECT_NE(agent.Notifications()[static_cast<std::size_t>(status)].find("replay_detected"),
            std::string::npos)
      << agent.Notifications()[static_cast<std::size_t>(status)];
  EXPECT_LT(agent.WaitForNotify("READY=1", 0, before), 0);
  EXPECT_EQ(agent.Call("POST", "/v1/sys/unseal").ErrorCode(), "replay_detected")
      << "unseal alone does not accept it";
  EXPECT_EQ(agent.Call("POST", "/v1/sys/recover", "{}").ErrorCode(), "bad_request");
  auto recovered = agent.Call("POST", "/v1/sys/recover", Body({{"accept_rollback", true}}));
  ASSERT_EQ(recovered.status, 200) << recovered.body;
  EXPECT_EQ(agent.Call("GET", "/v1/secrets/r/a").Json()["value"], "one");
}

// --- systemd's side: sd_notify, the watchdog, socket activation, SIGHUP ---

TEST(DaemonSystemd, ReadyComesOnlyOnceUnsealedAndStatusLinesSayWhatHappens) {
  TempDir dir("daemon-notify");
  AgentProcess::Options o;
  o.notify = true;
  AgentProcess agent(dir.path(), o);
  agent.Start();
  int ready = agent.WaitForNotify("READY=1", 30000);
  ASSERT_GE(ready, 0) << agent.Log();
  EXPECT_EQ(agent.Call("GET", "/v1/health").Json()["status"], "unsealed");
  std::vector<std::string> sent = agent.Notifications();
  int unsealing = agent.WaitForNotify("STATUS=unsealing", 0);
  ASSERT_GE(unsealing, 0);
  EXPECT_LT(unsealing, ready) << "STATUS=unsealing comes first";
  for (int i = 0; i < ready; ++i)
    EXPECT_EQ(sent[static_cast<std::size_t>(i)].find("READY=1"), std::string::npos);
  EXPECT_NE(sent[static_cast<std::size_t>(ready)].find("STATUS=unsealed; journal head"), std::string::npos)
      << sent[static_cast<std::size_t>(ready)];
  EXPECT_EQ(agent.Stop(), 0);
  EXPECT_GE(agent.WaitForNotify("STOPPING=1", 5000, static_cast<std::size_t>(ready)), 0);
  EXPECT_LT(agent.WaitForNotify("WATCHDOG=1", 0), 0) << "no WATCHDOG_USEC, no pings";
}

TEST(DaemonSystemd, ASealedAgentSaysWhyAndIsReadyOnlyOnceAnUnsealSucceeds) {
  TempDir dir("daemon-notify-pin");
  AgentProcess::Options o;
  o.notify = true;
  AgentProcess agent(dir.path(), o);
  std::string pin = ReadFile(agent.token().pin_file());
  WriteFile(agent.token().pin_file(), "000000");
  agent.Start();
  int sealed = agent.WaitForNotify("STATUS=sealed", 10000);
  ASSERT_GE(sealed, 0) << agent.Log();
  EXPECT_NE(agent.Notifications()[static_cast<std::size_t>(sealed)].find("pin_incorrect"), std::string::npos)
      << agent.Notifications()[static_cast<std::size_t>(sealed)];
  EXPECT_EQ(agent.Call("POST", "/v1/sys/unseal").ErrorCode(), "pin_incorrect");
  // Everything it sent while sealed, up to its exit: no READY=1 among it.
  ASSERT_EQ(agent.Stop(), 0);
  ASSERT_GE(agent.WaitForNotify("STOPPING=1", 5000), 0);
  EXPECT_LT(agent.WaitForNotify("READY=1", 0), 0) << "READY=1 while sealed";

  std::size_t from = agent.Notifications().size();
  agent.Start();
  ASSERT_GE(agent.WaitForNotify("STATUS=sealed", 10000, from), 0);
  WriteFile(agent.token().pin_file(), pin);
  ASSERT_EQ(agent.Call("POST", "/v1/sys/unseal").status, 200);
  int ready = agent.WaitForNotify("READY=1", 10000, from);
  ASSERT_GE(ready, 0) << "a later unseal makes the agent ready";
  EXPECT_NE(agent.Notifications()[static_cast<std::size_t>(ready)].find("STATUS=unsealed"),
            std::string::npos);
  for (const std::string& m : agent.Notifications()) EXPECT_EQ(m.find(pin), std::string::npos);
}

TEST(DaemonSystemd, WatchdogPingsArriveWhenWatchdogUsecIsSet) {
  TempDir dir("daemon-watchdog");
  AgentProcess::Options o;
  o.notify = true;
  o.watchdog_usec = 300'000;  // pings every 150 ms
  AgentProcess agent(dir.path(), o);
  agent.Start();
  int first = agent.WaitForNotify("WATCHDOG=1", 10000);
  ASSERT_GE(first, 0) << agent.Log();
  EXPECT_GE(agent.WaitForNotify("WATCHDOG=1", 10000, static_cast<std::size_t>(first) + 1), 0)
      << "pings keep coming";
}

TEST(DaemonSystemd, SocketActivationServesThePassedSocketAndQueuedClients) {
  TempDir dir("daemon-activation");
  AgentProcess::Options o;
  o.socket_activation = true;
  AgentProcess agent(dir.path(), o);
  struct stat bound {};
  ASSERT_EQ(::stat(agent.socket().c_str(), &bound), 0);
  // Like a .socket unit's: a client may connect and send before the daemon runs.
  HttpConnection early(agent.socket());
  ASSERT_TRUE(early.connected());
  ASSERT_TRUE(early.SendRaw("GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"));
  agent.Start();
  EXPECT_EQ(early.ReadResponse().status, 200);
  EXPECT_EQ(agent.Call("PUT", "/v1/secrets/act/a", Body({{"value", "one"}})).status, 200);
  EXPECT_NE(agent.Log().find("using the socket passed by systemd"), std::string::npos) << agent.Log();
  struct stat now {};
  ASSERT_EQ(::stat(agent.socket().c_str(), &now), 0);
  EXPECT_EQ(now.st_ino, bound.st_ino) << "the daemon serves the socket it was given, not one of its own";
  EXPECT_EQ(now.st_mode & 07777, 0660u);

  // Across a restart the socket stays (systemd keeps it): a client queued meanwhile is served.
  ASSERT_EQ(agent.Stop(), 0);
  HttpConnection queued(agent.socket());
  ASSERT_TRUE(queued.connected());
  ASSERT_TRUE(queued.SendRaw("GET /v1/secrets/act/a HTTP/1.1\r\nHost: x\r\n\r\n"));
  agent.Start();
  auto r = queued.ReadResponse();
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["value"], "one");
}

TEST(DaemonSystemd, SighupReloadsLimitsForNewConnectionsAndABadFileKeepsThem) {
  TempDir dir("daemon-hup");
  AgentProcess::Options o;
  o.limits = "max_header_bytes = 8192";
  AgentProcess agent(dir.path(), o);
  agent.Start();
  const std::vector<std::pair<std::string, std::string>> pad = {{"X-Pad", std::string(4000, 'a')}};
  auto padded = [&] { return Http(agent.socket(), "GET", "/v1/health", "", pad); };
  ASSERT_EQ(padded().status, 200);
  HttpConnection kept(agent.socket());  // accepted under the old limits
  ASSERT_EQ(kept.Request("GET", "/v1/health").status, 200);

  std::string config = ReadFile(agent.config_path());
  std::string smaller = config;
  smaller.replace(smaller.find("max_header_bytes = 8192"), 23, "max_header_bytes = 2048");
  WriteFile(agent.config_path(), smaller);
  ASSERT_EQ(::kill(agent.pid(), SIGHUP), 0);
  // The reload happens on the daemon's own schedule: wait (bounded) for it to show.
  HttpResponse r;
  for (int i = 0; i < 500 && (r = padded()).status != 431; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(r.status, 431) << "SIGHUP applied max_header_bytes = 2048";
  EXPECT_EQ(r.ErrorCode(), "headers_too_large");
  EXPECT_EQ(kept.Request("GET", "/v1/health", "", pad).status, 200)
      << "a connection accepted before the reload keeps the limits it was accepted with";

  WriteFile(agent.config_path(), smaller + "\n[limits2]\n");
  ASSERT_EQ(::kill(agent.pid(), SIGHUP), 0);
  bool warned = false;
  for (int i = 0; i < 500 && !warned; ++i) {
    warned = agent.Log().find("the config file is not valid") != std::string::npos;
    if (!warned) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(warned) << agent.Log();
  EXPECT_EQ(padded().status, 431) << "a bad file keeps the running limits";
  EXPECT_EQ(agent.Call("GET", "/v1/health").status, 200);
}

// --- the socket and the connection limits ---

TEST(DaemonSocket, TheApiSocketIsMode0660WithTheConfiguredGroup) {
  TempDir dir("daemon-sockmode");
  group* gr = ::getgrnam("nogroup");
  if (gr == nullptr) gr = ::getgrnam("nobody");
  ASSERT_NE(gr, nullptr) << "needs a group named nogroup or nobody";
  const gid_t gid = gr->gr_gid;
  const std::string name = gr->gr_name;
  AgentProcess agent(dir.path());
  std::string config = ReadFile(agent.config_path());
  config.replace(config.find("io_threads"), 0, "socket_group = \"" + name + "\"\n");
  WriteFile(agent.config_path(), config);
  agent.Start();
  struct stat st {};
  ASSERT_EQ(::lstat(agent.socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_gid, gid) << "socket_group = " << name;
  EXPECT_EQ(st.st_uid, ::geteuid());
}

// Opens keep-alive connections until `n` are admitted (a connection the test closed just
// before may still be counted for a moment); each has had one request served.
std::vector<std::unique_ptr<HttpConnection>> HoldConnections(const std::string& sock, int n) {
  std::vector<std::unique_ptr<HttpConnection>> held;
  for (int tries = 0; static_cast<int>(held.size()) < n && tries < 500; ++tries) {
    auto c = std::make_unique<HttpConnection>(sock);
    if (c->Request("GET", "/v1/health").status == 200) {
      held.push_back(std::move(c));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  return held;
}

void ExpectPoliteRefusal(const HttpResponse& r) {
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_EQ(r.ErrorCode(), "too_many_connections");
  EXPECT_EQ(r.headers.count("retry-after"), 1u);
  ASSERT_EQ(r.headers.count("x-request-id"), 1u);
  std::string id = r.headers.at("x-request-id");
  EXPECT_NE(id, "-");
  EXPECT_GT(id.size(), 8u);
  EXPECT_EQ(r.Json()["error"]["request_id"], id) << "the body names the same request id";
}

TEST(DaemonLimits, OverTheTotalLimitANewConnectionIsRefusedPolitelyAndOpenOnesAreServed) {
  TempDir dir("daemon-maxconn");
  AgentProcess::Options o;
  o.limits = "max_connections = 4\nmax_connections_per_uid = 100";
  AgentProcess agent(dir.path(), o);
  agent.Start();
  auto held = HoldConnections(agent.socket(), 4);
  ASSERT_EQ(held.size(), 4u);
  HttpConnection extra(agent.socket());
  ASSERT_TRUE(extra.connected()) << "refused by an answer, not by the kernel";
  HttpResponse first = extra.Request("GET", "/v1/health");
  ExpectPoliteRefusal(first);
  EXPECT_TRUE(extra.WaitClosed(3000));
  HttpResponse second = Http(agent.socket(), "GET", "/v1/health");
  ExpectPoliteRefusal(second);
  EXPECT_NE(first.headers["x-request-id"], second.headers["x-request-id"]) << "each refusal has its own id";
  for (auto& c : held) EXPECT_EQ(c->Request("GET", "/v1/health").status, 200) << "open ones are served";
  held.pop_back();  // a slot frees up
  EXPECT_EQ(HoldConnections(agent.socket(), 1).size(), 1u);
}

TEST(DaemonLimits, OneUidAtItsLimitDoesNotLockOutAnotherUid) {
  ASSERT_EQ(::geteuid(), 0u) << "this test runs a client as nobody: run it as root";
  TempDir dir("daemon-peruid");
  AgentProcess::Options o;
  o.limits = "max_connections = 100\nmax_connections_per_uid = 3";
  AgentProcess agent(dir.path(), o);
  agent.LetUserConnect("nobody", dir.path());
  agent.Start();
  auto held = HoldConnections(agent.socket(), 3);
  ASSERT_EQ(held.size(), 3u);
  ExpectPoliteRefusal(Http(agent.socket(), "GET", "/v1/health"));
  std::string sock = agent.socket();
  EXPECT_EQ(AsNobody([&] { return Http(sock, "GET", "/v1/health").status == 200 ? 0 : 1; }), 0)
      << "another uid still gets in";
  for (auto& c : held) EXPECT_EQ(c->Request("GET", "/v1/health").status, 200);
}

}  // namespace
}  // namespace sk::testing
