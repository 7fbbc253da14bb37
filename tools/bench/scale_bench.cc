// Scale (issue 22): for stores of N secrets x 3 versions on the TPM backend (swtpm), the
// agent's start-to-ready (spawn to /v1/health unsealed: unseal, full journal scan, index),
// its RSS once ready and after the reads, the store's size, and GET p50 over a kept-alive
// connection: cold (the first read of a path: a data-key unwrap) and cached (the second).
//
//   build/tools/bench/sk_bench_scale [--secrets 10000,100000,1000000] [--runs 3]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/secrets/service.h"
#include "hsm/tpm/provision.h"
#include "hsm/tpm/tpm_backend.h"
#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/swtpm.h"
#include "tests/fixtures/temp_dir.h"

namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

long StatusKb(pid_t pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::strlen(field)));
  }
  return -1;
}

std::string Path(std::uint64_t i) { return "app/s" + std::to_string(i % 97) + "/k" + std::to_string(i); }

double StartToReady(sk::testing::AgentProcess& agent) {
  auto t0 = Clock::now();
  agent.Start();
  while (sk::testing::Http(agent.socket(), "GET", "/v1/health").status != 200) {
    if (Clock::now() - t0 > std::chrono::seconds(600)) {
      std::fprintf(stderr, "agent never became ready:\n%s\n", agent.Log().c_str());
      std::exit(1);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct Row {
  std::uint64_t secrets = 0;
  double fill_s = 0, ready_ms = 0, cold_us = 0, cached_us = 0;
  long rss_ready_kb = 0, rss_after_kb = 0;
  double store_mib = 0;
};

Row Measure(std::uint64_t secrets, int runs) {
  Row row;
  row.secrets = secrets;
  sk::testing::TempDir dir("bench-scale");
  sk::testing::Swtpm swtpm(dir.path());
  sk::testing::AgentProcess::Options o;
  o.tpm_tcti = swtpm.Tcti();
  o.audit = false;
  sk::testing::AgentProcess agent(dir.path(), o);
  if (!sk::hsm::tpm::ProvisionTpm(agent.TpmConfig()).ok()) std::exit(1);
  {
    auto t0 = Clock::now();
    auto b = sk::hsm::tpm::OpenTpmBackend(agent.TpmConfig());
    sk::secrets::ServiceOptions so;
    so.store_path = agent.state_dir() + "/store.db";
    auto svc =
        sk::secrets::SecretService::Open(std::shared_ptr<sk::hsm::KeyBackend>(std::move(b).value()), so);
    if (!svc.ok()) std::exit(1);
    for (int v = 1; v <= 3; ++v) {
      for (std::uint64_t done = 0; done < secrets;) {
        std::vector<sk::secrets::Op> ops;
        for (int i = 0; i < 1000 && done < secrets; ++i, ++done) {
          sk::secrets::Op op;
          op.path = Path(done);
          const std::string value = "value-" + std::to_string(v) + "-" + std::to_string(done);
          op.value = sk::SecretBytes::CopyFrom(sk::AsBytes(value));
          ops.push_back(std::move(op));
        }
        if (!(*svc)->Transact(std::move(ops), "", sk::secrets::Actor("bench")).ok()) std::exit(1);
      }
    }
    row.fill_s = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  row.store_mib =
      static_cast<double>(std::filesystem::file_size(agent.state_dir() + "/store.db")) / (1 << 20);
  std::vector<double> ready;
  for (int r = 0; r < runs; ++r) {
    ready.push_back(StartToReady(agent));
    if (r + 1 < runs) agent.Stop();
  }
  row.ready_ms = Median(ready);
  row.rss_ready_kb = StatusKb(agent.pid(), "VmRSS:");
  // 2,000 distinct random paths, each read twice on one kept-alive connection.
  std::mt19937_64 rng(1);
  sk::testing::HttpConnection conn(agent.socket());
  std::vector<double> cold, cached;
  for (int i = 0; i < 2000; ++i) {
    const std::string target = "/v1/secrets/" + Path(rng() % secrets);
    for (auto* out : {&cold, &cached}) {
      auto t0 = Clock::now();
      auto r = conn.Request("GET", target);
      out->push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      if (r.status != 200) {
        std::fprintf(stderr, "GET %s: %u %s\n", target.c_str(), r.status, r.body.c_str());
        std::exit(1);
      }
    }
  }
  row.cold_us = Median(cold);
  row.cached_us = Median(cached);
  row.rss_after_kb = StatusKb(agent.pid(), "VmRSS:");
  agent.Stop();
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::uint64_t> sizes = {10'000, 100'000, 1'000'000};
  int runs = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--runs") runs = std::atoi(argv[i + 1]);
    if (a == "--secrets") {
      sizes.clear();
      std::stringstream in(argv[i + 1]);
      std::string item;
      while (std::getline(in, item, ',')) sizes.push_back(std::strtoull(item.c_str(), nullptr, 10));
    }
  }
  ::setenv("TSS2_LOG", "all+none", 1);
  std::printf("== scale: N secrets x 3 versions, TPM backend (swtpm), median of %d starts\n", runs);
  std::printf("%10s %10s %9s %12s %12s %12s %11s %11s\n", "secrets", "fill (s)", "store MiB", "ready (ms)",
              "RSS ready", "RSS after", "GET cold", "GET cached");
  for (std::uint64_t n : sizes) {
    Row r = Measure(n, runs);
    std::printf("%10llu %10.1f %9.1f %12.0f %9.1f MiB %9.1f MiB %8.0f us %8.0f us\n",
                static_cast<unsigned long long>(r.secrets), r.fill_s, r.store_mib, r.ready_ms,
                static_cast<double>(r.rss_ready_kb) / 1024.0, static_cast<double>(r.rss_after_kb) / 1024.0,
                r.cold_us, r.cached_us);
    std::fflush(stdout);
  }
  return 0;
}
