// The daemon kill loop (issue 18): a real sealkeepd (SoftHSM2 token, epoch anchoring) serves
// 16 concurrent clients doing puts, compare-and-set puts, transactions and gets over its
// socket, and is killed with SIGKILL at moments chosen by the clients' progress (after a
// random number of completed requests), then restarted, again and again. Every write carries
// an idempotency key; after a request that got no answer, a client either retries it with
// the same key once the daemon is back (it must then apply once) or abandons it (it must
// then have applied entirely or not at all). At the end every version of every path is
// read back and the history checker (history_checker.h) verifies the whole run.
//
// SK_KILL_LOOP_KILLS sets the number of kills (default 20, what CI runs; the long run is
// SK_KILL_LOOP_KILLS=200, docs/reliability.md). SK_KILL_LOOP_SEED fixes the randomness.
#include <signal.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "tests/api/history_checker.h"
#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/temp_dir.h"

namespace sk::testing {
namespace {

using json = nlohmann::json;
using Kind = HistoryOp::Kind;
using Outcome = HistoryOp::Outcome;

constexpr int kClients = 16;
constexpr int kPaths = 8;

std::int64_t Now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

std::string PathName(int i) { return "kl/k" + std::to_string(i); }

// What the run shares: the daemon's socket, the progress the killer waits on, the history.
struct Shared {
  std::string socket;
  std::mutex mu;
  std::condition_variable progress;
  std::uint64_t completed = 0;  // definite answers so far
  bool stop = false;
  std::vector<HistoryOp> history;
  std::atomic<std::uint64_t> unknown{0}, retried{0}, replayed{0}, abandoned{0};

  void Record(HistoryOp op) {
    std::lock_guard<std::mutex> lock(mu);
    if (op.outcome != Outcome::kUnknown) ++completed;
    history.push_back(std::move(op));
    progress.notify_all();
  }
  bool stopping() {
    std::lock_guard<std::mutex> lock(mu);
    return stop;
  }
};

// Waits until the daemon answers /v1/health with 200 (it was killed, or is unsealing).
bool WaitHealthy(Shared& run) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (Http(run.socket, "GET", "/v1/health").status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

class Client {
 public:
  Client(Shared& run, int id, std::uint32_t seed) : run_(run), id_(id), rng_(seed) {}

  void Loop() {
    while (!run_.stopping()) Step();
  }

 private:
  // One request, answered definitely (status != 0 and not 503), or unknown.
  HttpResponse Call(const std::string& method, const std::string& target, const std::string& body,
                    const std::string& key) {
    if (!conn_ || !conn_->connected()) conn_ = std::make_unique<HttpConnection>(run_.socket);
    std::vector<std::pair<std::string, std::string>> headers;
    if (!key.empty() && method == "PUT") headers.emplace_back("Idempotency-Key", key);
    HttpResponse r = conn_->Request(method, target, body, headers);
    if (r.status == 0 || r.status >= 500) conn_.reset();
    return r;
  }

  void Step() {
    const int dice = static_cast<int>(rng_() % 100);
    const int p = static_cast<int>(rng_() % kPaths);
    HistoryOp op;
    op.client = id_;
    const std::string n = std::to_string(++seq_);
    op.label = "c" + std::to_string(id_) + "#" + n;
    std::string method, target, body, key = "c" + std::to_string(id_) + "-" + n;
    if (dice < 20) {  // a read
      op.kind = Kind::kGet;
      op.read_path = PathName(p);
      op.label += " get";
      op.invoke_ns = Now();
      HttpResponse r = Call("GET", "/v1/secrets/" + PathName(p), "", "");
      op.complete_ns = Now();
      if (r.status == 200) {
        json j = r.Json();
        op.outcome = Outcome::kOk;
        op.read_version = j.value("version", 0ULL);
        op.read_value = j.value("value", "");
        known_[p] = op.read_version;
      } else if (r.status == 404) {
        op.outcome = Outcome::kOk;
        op.read_none = true;
      } else {
        if (r.status == 0 || r.status >= 500) (void)WaitHealthy(run_);
        return;  // a read with no answer says nothing
      }
      run_.Record(std::move(op));
      return;
    }
    if (dice < 70) {  // a put, compare-and-set when this client knows a version
      op.kind = Kind::kPut;
      HistoryWrite w{PathName(p), "v-" + key, std::nullopt, 0};
      json b = {{"value", w.value}};
      if (dice >= 50 && known_.count(p) != 0) {
        w.cas = known_[p];
        b["cas"] = *w.cas;
        op.label += " cas";
      } else {
        op.label += " put";
      }
      op.writes.push_back(w);
      method = "PUT";
      target = "/v1/secrets/" + w.path;
      body = b.dump();
    } else {  // a transaction over 2 or 3 paths
      op.kind = Kind::kTxn;
      op.label += " txn";
      json ops = json::array();
      const int count = 2 + static_cast<int>(rng_() % 2);
      for (int i = 0; i < count; ++i) {
        HistoryWrite w{PathName((p + i * 3) % kPaths), "v-" + key + "-" + std::to_string(i), std::nullopt, 0};
        ops.push_back({{"op", "put"}, {"path", w.path}, {"value", w.value}});
        op.writes.push_back(w);
      }
      method = "POST";
      target = "/v1/txn";
      body = json{{"ops", ops}, {"idempotency_key", key}}.dump();
    }
    op.invoke_ns = Now();
    bool retrying = false;
    for (;;) {
      HttpResponse r = Call(method, target, body, key);
      if (r.status == 200) {
        json j = r.Json();
        op.outcome = Outcome::kOk;
        op.complete_ns = Now();
        if (j.value("replayed", false)) ++run_.replayed;
        if (op.kind == Kind::kPut) {
          op.writes[0].version = j.value("version", 0ULL);
          known_[p] = op.writes[0].version;
        } else {
          const json& results = j.value("results", json::array());
          for (std::size_t i = 0; i < op.writes.size() && i < results.size(); ++i)
            op.writes[i].version = results[i].value("version", 0ULL);
        }
        break;
      }
      if (r.status != 0 && r.status < 500) {
        op.outcome = Outcome::kFailed;  // cas_mismatch, say: nothing applied
        op.complete_ns = Now();
        known_.erase(p);
        break;
      }
      // No answer (or the daemon going down): unknown. Retry with the same key once it is
      // back, or abandon the request.
      if (!retrying) ++run_.unknown;
      if (!WaitHealthy(run_) || rng_() % 2 == 0 || run_.stopping()) {
        op.outcome = Outcome::kUnknown;
        ++run_.abandoned;
        break;
      }
      if (!retrying) ++run_.retried;
      retrying = true;
    }
    run_.Record(std::move(op));
  }

  Shared& run_;
  int id_;
  std::mt19937 rng_;
  std::uint64_t seq_ = 0;
  std::map<int, std::uint64_t> known_;  // path -> the version this client last saw
  std::unique_ptr<HttpConnection> conn_;
};

TEST(KillLoopTest, SixteenClientsAndRepeatedKillsLeaveAHistoryTheCheckerAccepts) {
  ::signal(SIGPIPE, SIG_IGN);
  const int kills = EnvInt("SK_KILL_LOOP_KILLS", 20);
  const std::uint32_t seed = static_cast<std::uint32_t>(
      EnvInt("SK_KILL_LOOP_SEED", static_cast<int>(std::random_device{}() & 0x7fffffff)));
  std::printf("kill loop: %d kills, seed %u (SK_KILL_LOOP_SEED=%u reruns it)\n", kills, seed, seed);
  TempDir dir("killloop");
  AgentProcess agent(dir.path());
  agent.Start();
  Shared run;
  run.socket = agent.socket();
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<Client>(run, i, seed + static_cast<std::uint32_t>(i) * 7919u));
    threads.emplace_back([c = clients.back().get()] { c->Loop(); });
  }
  std::mt19937 rng(seed);
  for (int k = 0; k < kills; ++k) {
    // Kill after a random number of answers since the last restart: the clients' own
    // progress decides when, so the kill lands mid-traffic on any machine speed.
    const std::uint64_t more = 20 + rng() % 200;
    {
      std::unique_lock<std::mutex> lock(run.mu);
      const std::uint64_t target = run.completed + more;
      ASSERT_TRUE(
          run.progress.wait_for(lock, std::chrono::seconds(120), [&] { return run.completed >= target; }))
          << "no progress after kill " << k;
    }
    ASSERT_EQ(agent.Stop(9), 128 + 9) << "kill " << k;
    agent.Start();
  }
  {
    std::unique_lock<std::mutex> lock(run.mu);
    const std::uint64_t target = run.completed + 100;  // traffic after the last restart too
    run.progress.wait_for(lock, std::chrono::seconds(120), [&] { return run.completed >= target; });
    run.stop = true;
  }
  for (auto& t : threads) t.join();

  // Every version of every path, read back.
  FinalState state;
  for (int p = 0; p < kPaths; ++p) {
    HttpResponse versions = agent.Call("GET", "/v1/secrets/" + PathName(p) + "/versions");
    if (versions.status == 404) continue;
    ASSERT_EQ(versions.status, 200) << versions.body;
    for (const json& v : versions.Json().value("versions", json::array())) {
      const std::uint64_t n = v.value("version", 0ULL);
      HttpResponse got = agent.Call("GET", "/v1/secrets/" + PathName(p) + "?version=" + std::to_string(n));
      ASSERT_EQ(got.status, 200) << PathName(p) << " v" << n << ": " << got.body;
      state[PathName(p)].push_back({n, got.Json().value("value", "")});
    }
  }
  std::uint64_t acked = 0, failed = 0, reads = 0, stored = 0;
  for (const HistoryOp& op : run.history) {
    if (op.kind == Kind::kGet) {
      ++reads;
    } else if (op.outcome == Outcome::kOk) {
      ++acked;
    } else if (op.outcome == Outcome::kFailed) {
      ++failed;
    }
  }
  for (const auto& [path, versions] : state) stored += versions.size();
  std::printf(
      "kill loop: %d kills; %zu invocations: %llu writes acknowledged, %llu refused, %llu reads; %llu "
      "without an "
      "answer (%llu retried with their key, %llu replayed, %llu abandoned); %llu versions stored\n",
      kills, run.history.size(), static_cast<unsigned long long>(acked),
      static_cast<unsigned long long>(failed), static_cast<unsigned long long>(reads),
      static_cast<unsigned long long>(run.unknown.load()),
      static_cast<unsigned long long>(run.retried.load()),
      static_cast<unsigned long long>(run.replayed.load()),
      static_cast<unsigned long long>(run.abandoned.load()), static_cast<unsigned long long>(stored));
  // The run must have exercised what it claims to check.
  EXPECT_GT(acked, 100u);
  EXPECT_GT(reads, 20u);
  EXPECT_GT(run.unknown.load(), 0u) << "no request was cut off by a kill";
  std::vector<Violation> violations = CheckHistory(run.history, state);
  for (const Violation& v : violations) ADD_FAILURE() << v.kind << ": " << v.detail;
  EXPECT_TRUE(violations.empty()) << "seed " << seed;
}

}  // namespace
}  // namespace sk::testing
