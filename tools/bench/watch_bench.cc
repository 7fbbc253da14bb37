// GET /v1/watch benchmark (issue 16): a real sealkeepd on a SoftHSM2 token (started here),
// driven over its Unix socket.
//   1. Wake-up latency: a watcher parked on one path; a PUT to that path; the time from
//      sending the PUT to the watcher's answer, beside the PUT's own acknowledgement (the
//      durable commit). p50/p99 over --puts rounds, with 0 and with --idle other watchers
//      parked on other prefixes (every commit looks at each of them).
//   2. Idle cost: --idle watchers parked at once: the agent's RSS before and after (per
//      watcher), and its CPU time over --idle-seconds with all of them parked.
//
//   build/tools/bench/sk_bench_watch [--puts N] [--idle N] [--idle-seconds S]
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/temp_dir.h"

namespace {

using Clock = std::chrono::steady_clock;

int Connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::perror("connect");
    std::exit(1);
  }
  return fd;
}

void Send(int fd, const std::string& req) {
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    std::perror("send");
    std::exit(1);
  }
}

// Reads one whole response; returns its status.
int ReadResponse(int fd) {
  std::string buf;
  char chunk[4096];
  std::size_t need = 0;
  for (;;) {
    std::size_t head = buf.find("\r\n\r\n");
    if (head != std::string::npos && need == 0) {
      std::string lower = buf.substr(0, head);
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return std::tolower(c); });
      std::size_t cl = lower.find("content-length: ");
      need = head + 4 + (cl == std::string::npos ? 0 : std::strtoul(lower.c_str() + cl + 16, nullptr, 10));
    }
    if (need != 0 && buf.size() >= need) return std::atoi(buf.c_str() + 9);
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n <= 0) return 0;
    buf.append(chunk, static_cast<std::size_t>(n));
  }
}

std::string Get(const std::string& target) { return "GET " + target + " HTTP/1.1\r\nHost: sk\r\n\r\n"; }

std::string Put(const std::string& path, const std::string& value) {
  std::string body = "{\"value\":\"" + value + "\"}";
  return "PUT /v1/secrets/" + path +
         " HTTP/1.1\r\nHost: sk\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// The value of one metric in /metrics.
long Metric(const std::string& socket, const std::string& name) {
  sk::testing::HttpResponse r = sk::testing::Http(socket, "GET", "/metrics");
  std::istringstream in(r.body);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + " ", 0) == 0) return std::atol(line.c_str() + name.size() + 1);
  }
  return -1;
}

// Waits until the agent has `n` watchers parked.
void WaitParked(const std::string& socket, long n) {
  const auto until = Clock::now() + std::chrono::seconds(60);
  while (Metric(socket, "sealkeep_watches_parked") != n) {
    if (Clock::now() > until) {
      std::fprintf(stderr, "watchers did not park (want %ld, have %ld)\n", n,
                   Metric(socket, "sealkeep_watches_parked"));
      std::exit(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

long RssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

// utime + stime of `pid`, in clock ticks.
long CpuTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string f;
  long utime = 0, stime = 0;
  for (int i = 3; fields >> f; ++i) {
    if (i == 14) utime = std::atol(f.c_str());
    if (i == 15) {
      stime = std::atol(f.c_str());
      break;
    }
  }
  return utime + stime;
}

double Pct(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

// PUT -> wake rounds; prints p50/p99 of the wake and of the PUT's acknowledgement.
void Latency(const std::string& socket, int puts, const char* label) {
  std::vector<double> wake_us, ack_us;
  int writer = Connect(socket);
  for (int i = 0; i < puts; ++i) {
    sk::testing::HttpResponse last = sk::testing::Http(socket, "GET", "/v1/watch?prefix=lat/x&timeout_s=0");
    const std::string seq = last.headers["x-sealkeep-seq"];
    int watcher = Connect(socket);
    const long parked = Metric(socket, "sealkeep_watches_parked");
    Send(watcher, Get("/v1/watch?prefix=lat/x&timeout_s=60&after=" + seq));
    WaitParked(socket, parked + 1);
    Clock::time_point woke{};
    std::thread wait([&] {
      if (ReadResponse(watcher) != 200) std::exit(2);
      woke = Clock::now();
    });
    const auto sent = Clock::now();
    Send(writer, Put("lat/x", "v" + std::to_string(i)));
    if (ReadResponse(writer) != 200) std::exit(3);
    const auto acked = Clock::now();
    wait.join();
    ::close(watcher);
    wake_us.push_back(std::chrono::duration<double, std::micro>(woke - sent).count());
    ack_us.push_back(std::chrono::duration<double, std::micro>(acked - sent).count());
  }
  ::close(writer);
  std::printf("%-44s %10.0f %10.0f %12.0f %12.0f\n", label, Pct(wake_us, 0.5), Pct(wake_us, 0.99),
              Pct(ack_us, 0.5), Pct(ack_us, 0.99));
}

}  // namespace

int main(int argc, char** argv) {
  int puts = 200, idle = 1000;
  double idle_seconds = 10;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--puts" && i + 1 < argc) {
      puts = std::atoi(argv[++i]);
    } else if (a == "--idle" && i + 1 < argc) {
      idle = std::atoi(argv[++i]);
    } else if (a == "--idle-seconds" && i + 1 < argc) {
      idle_seconds = std::atof(argv[++i]);
    }
  }
  sk::testing::TempDir dir("bench-watch");
  sk::testing::AgentProcess::Options o;
  const std::string room = std::to_string(idle + 64);
  o.limits = "max_connections = " + room + "\nmax_connections_per_uid = " + room + "\n";
  sk::testing::AgentProcess agent(dir.path(), o);
  agent.Start();
  const std::string& socket = agent.socket();
  sk::testing::Http(socket, "PUT", "/v1/secrets/lat/x", "{\"value\":\"v\"}");

  std::printf("== GET /v1/watch: PUT to a watched path -> the watcher's answer (%d rounds; microseconds)\n",
              puts);
  std::printf("%-44s %10s %10s %12s %12s\n", "", "wake p50", "wake p99", "PUT ack p50", "PUT ack p99");
  Latency(socket, puts, "1 watcher");

  // The idle watchers: parked on prefixes nothing writes to.
  const long rss_before = RssKib(agent.pid());
  std::vector<int> fds;
  for (int i = 0; i < idle; ++i) {
    int fd = Connect(socket);
    Send(fd, Get("/v1/watch?prefix=idle/" + std::to_string(i) + "&timeout_s=300"));
    fds.push_back(fd);
  }
  WaitParked(socket, idle);
  const long rss_after = RssKib(agent.pid());
  const long ticks_before = CpuTicks(agent.pid());
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(idle_seconds));
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  const long ticks = CpuTicks(agent.pid()) - ticks_before;
  Latency(socket, puts, ("1 watcher, with " + std::to_string(idle) + " idle watchers parked").c_str());

  std::printf("\n== %d idle watchers parked (other prefixes, timeout 300 s)\n", idle);
  std::printf("agent RSS: %ld KiB before, %ld KiB with them parked: %.1f KiB per watcher\n", rss_before,
              rss_after, static_cast<double>(rss_after - rss_before) / idle);
  std::printf("agent CPU while they wait: %.2f%% of one core over %.0f s (%ld ticks of 1/%ld s)\n",
              100.0 * static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK)) / wall, wall,
              ticks, ::sysconf(_SC_CLK_TCK));
  for (int fd : fds) ::close(fd);
  return 0;
}
