// API benchmark: starts sealkeepd on a temp state folder with a SoftHSM2 token (or drives
// a running agent with --socket), then measures over the Unix socket, with keep-alive
// clients written for speed (one pre-built request, a minimal response parser):
//   GET with the data key cached, GET with no cache (every read unwraps in the HSM), PUT;
//   p50/p99 latency with 1 client and throughput with 16 clients.
// --matrix also compares policy + audit on against both off (issue: <= 20% loss).
//
//   build/tools/bench/sk_bench_api [--seconds S] [--reps N] [--matrix] [--socket PATH]
//                                  [--io-spin-us US]   (the agent's io_spin_us; default its own)
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/temp_dir.h"

namespace {

using Clock = std::chrono::steady_clock;

class Client {
 public:
  explicit Client(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      std::perror("connect");
      std::exit(1);
    }
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends a request and reads its response; returns the status code.
  int Do(const std::string& req) {
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) return 0;
    std::size_t need = 0;
    for (;;) {
      std::size_t head = buf_.find("\r\n\r\n");
      if (head != std::string::npos) {
        if (need == 0) {
          std::size_t cl = buf_.find("Content-Length: ");
          if (cl == std::string::npos || cl > head) cl = buf_.find("content-length: ");
          need = head + 4 + std::strtoul(buf_.c_str() + cl + 16, nullptr, 10);
        }
        if (buf_.size() >= need) {
          int status = std::atoi(buf_.c_str() + 9);
          buf_.erase(0, need);
          return status;
        }
      }
      char tmp[65536];
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) return 0;
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_;
  std::string buf_;
};

std::string Get(const std::string& path) {
  return "GET /v1/secrets/" + path + " HTTP/1.1\r\nHost: b\r\n\r\n";
}
std::string Put(const std::string& path, const std::string& value) {
  std::string body = "{\"value\":\"" + value + "\"}";
  return "PUT /v1/secrets/" + path +
         " HTTP/1.1\r\nHost: b\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

double Pct(std::vector<double>& v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0
                   : v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}
double Median(std::vector<double> v) { return Pct(v, 0.5); }

struct Result {
  double p50_us = 0, p99_us = 0, per_s = 0;
};

// kind: 0 GET (one hot path per client), 1 PUT, 2 GET /v1/health (the transport alone: no
// store, no audit). Latency from 1 client, throughput from `clients`.
std::string RequestFor(int kind, int client) {
  if (kind == 2) return "GET /v1/health HTTP/1.1\r\nHost: b\r\n\r\n";
  if (kind == 0) return Get("bench/k" + std::to_string(client % 16));
  return client < 0 ? Put("bench/lat", "v") : Put("bench/w" + std::to_string(client), "v");
}

Result Measure(const std::string& sock, int kind, int clients, double seconds) {
  Result r;
  {
    Client c(sock);
    std::vector<double> lat;
    std::string req = RequestFor(kind, kind == 0 ? 0 : -1);
    auto end = Clock::now() + std::chrono::duration<double>(seconds);
    while (Clock::now() < end) {
      auto t0 = Clock::now();
      int st = c.Do(req);
      auto t1 = Clock::now();
      if (st != 200) {
        std::fprintf(stderr, "request failed with %d\n", st);
        std::exit(1);
      }
      lat.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    r.p50_us = Pct(lat, 0.5);
    r.p99_us = Pct(lat, 0.99);
  }
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      Client c(sock);
      std::string req = RequestFor(kind, t);
      std::uint64_t n = 0;
      while (!stop) {
        if (c.Do(req) != 200) {
          std::fprintf(stderr, "request failed\n");
          std::exit(1);
        }
        ++n;
      }
      done += n;
    });
  }
  auto start = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : threads) th.join();
  r.per_s = static_cast<double>(done.load()) / std::chrono::duration<double>(Clock::now() - start).count();
  return r;
}

void Seed(const std::string& sock) {
  Client c(sock);
  for (int i = 0; i < 16; ++i) {
    if (c.Do(Put("bench/k" + std::to_string(i), "a-32-byte-secret-value-for-bench")) != 200) {
      std::fprintf(stderr, "seeding failed\n");
      std::exit(1);
    }
  }
}

struct Row {
  const char* name;
  std::vector<double> p50, p99, tput;
};

void Print(const Row& row) {
  std::printf("%-26s %10.0f %10.0f %14.0f\n", row.name, Median(row.p50), Median(row.p99), Median(row.tput));
  std::fflush(stdout);
}

// Runs one configuration of the agent and measures kinds into rows.
// The agent's io_spin_us (-1: its default).
int g_io_spin_us = -1;

void RunConfig(const std::string& tag, bool cache, bool policy, bool audit, double seconds, int reps,
               std::vector<Row*> rows, std::vector<int> kinds) {
  for (int rep = 0; rep < reps; ++rep) {
    sk::testing::TempDir dir("bench-api-" + tag);
    sk::testing::AgentProcess::Options o;
    o.policy = policy;
    o.audit = audit;
    if (!cache) o.extra_config = "\n[cache]\ndek_entries = 0\n";
    if (g_io_spin_us >= 0) o.agent_config = "io_spin_us = " + std::to_string(g_io_spin_us) + "\n";
    sk::testing::AgentProcess agent(dir.path(), o);
    if (policy) {
      sk::testing::WriteFile(
          agent.state_dir() + "/policy.toml",
          "version = 1\n[roles.admin]\ngrants = [{ capabilities = [\"read\", \"list\", \"write\", "
          "\"delete\", \"destroy\", \"rollback\", \"snapshot\", \"admin\"], paths = [\"**\"] }]\n"
          "[roles.reader]\ngrants = [{ capabilities = [\"read\"], paths = [\"app/**\"] }]\n"
          "[[bindings]]\nname = \"svc\"\nroles = [\"reader\"]\nmatch = { unit = \"web.service\" }\n"
          "[[bindings]]\nname = \"root\"\nroles = [\"admin\"]\nmatch = { uid = 0 }\n",
          0640);
    }
    agent.Start();
    Seed(agent.socket());
    for (std::size_t i = 0; i < kinds.size(); ++i) {
      Result r = Measure(agent.socket(), kinds[i], 16, seconds);
      rows[i]->p50.push_back(r.p50_us);
      rows[i]->p99.push_back(r.p99_us);
      rows[i]->tput.push_back(r.per_s);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 2;
  int reps = 3;
  bool matrix = false;
  std::string socket;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc)
      seconds = std::atof(argv[++i]);
    else if (a == "--reps" && i + 1 < argc)
      reps = std::atoi(argv[++i]);
    else if (a == "--socket" && i + 1 < argc)
      socket = argv[++i];
    else if (a == "--matrix")
      matrix = true;
    else if (a == "--io-spin-us" && i + 1 < argc)
      g_io_spin_us = std::atoi(argv[++i]);
  }
  std::printf(
      "== sealkeepd over its Unix socket (keep-alive HTTP/1.1; 32-byte values; medians of %d runs of %.0f "
      "s)\n",
      reps, seconds);
  std::printf("%-26s %10s %10s %14s\n", "", "p50 (us)", "p99 (us)", "req/s (16 cl.)");
  if (!socket.empty()) {
    Seed(socket);
    Row get{"GET (running agent)", {}, {}, {}}, health{"GET /v1/health (transport)", {}, {}, {}};
    for (auto [row, kind] : {std::pair{&get, 0}, std::pair{&health, 2}}) {
      for (int r = 0; r < reps; ++r) {
        Result m = Measure(socket, kind, 16, seconds);
        row->p50.push_back(m.p50_us);
        row->p99.push_back(m.p99_us);
        row->tput.push_back(m.per_s);
      }
      Print(*row);
    }
    return 0;
  }
  Row cached{"GET, data key cached", {}, {}, {}}, put{"PUT (durable commit)", {}, {}, {}};
  Row health{"GET /v1/health (transport)", {}, {}, {}};
  RunConfig("cached", true, false, true, seconds, reps, {&cached, &put, &health}, {0, 1, 2});
  Print(cached);
  Print(put);
  Print(health);
  Row cold{"GET, cold (HSM unwrap)", {}, {}, {}};
  RunConfig("cold", false, false, true, seconds, reps, {&cold}, {0});
  Print(cold);
  if (matrix) {
    // Off and on alternate, run by run, and the cost is the median of each pair's ratio:
    // these machines drift by more than the difference being measured.
    Row off{"GET, policy+audit off", {}, {}, {}}, on{"GET, policy+audit on", {}, {}, {}};
    std::vector<double> cost;
    for (int r = 0; r < reps; ++r) {
      RunConfig("off", true, false, false, seconds, 1, {&off}, {0});
      RunConfig("on", true, true, true, seconds, 1, {&on}, {0});
      cost.push_back(100.0 * (1.0 - on.tput.back() / off.tput.back()));
    }
    Print(off);
    Print(on);
    std::printf("policy+audit cost on GET throughput: %.1f%% (median of %d alternating pairs)\n",
                Median(cost), reps);
  }
  return 0;
}
