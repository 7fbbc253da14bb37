// Agent start-to-ready on the TPM backend: from spawning sealkeepd to its first
// "unsealed" answer on /v1/health (unseal in the swtpm + full journal verification +
// index build), with an empty store and with 100k versions; and the unseal alone.
//
//   build/tools/bench/sk_bench_tpm_start [--runs N] [--versions 100000]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
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

double Pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0
                   : v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

// Spawns the agent and returns milliseconds until /v1/health says unsealed.
double StartToReady(sk::testing::AgentProcess& agent) {
  auto t0 = Clock::now();
  agent.Start();  // returns at the first answer (200 or 503)
  while (sk::testing::Http(agent.socket(), "GET", "/v1/health").status != 200) {
    if (Clock::now() - t0 > std::chrono::seconds(120)) {
      std::fprintf(stderr, "agent never became ready:\n%s\n", agent.Log().c_str());
      std::exit(1);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  agent.Stop();
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 5;
  std::uint64_t versions = 100'000;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--runs") runs = std::atoi(argv[i + 1]);
    if (a == "--versions") versions = std::strtoull(argv[i + 1], nullptr, 10);
  }
  ::setenv("TSS2_LOG", "all+none", 1);
  sk::testing::TempDir dir("bench-tpm-start");
  sk::testing::Swtpm swtpm(dir.path());
  sk::testing::AgentProcess::Options o;
  o.tpm_tcti = swtpm.Tcti();
  o.tpm_pcrs = {7};
  sk::testing::AgentProcess agent(dir.path(), o);
  auto provisioned = sk::hsm::tpm::ProvisionTpm(agent.TpmConfig());
  if (!provisioned.ok()) {
    std::fprintf(stderr, "%s\n", provisioned.status().ToString().c_str());
    return 1;
  }

  std::vector<double> unseal;
  for (int r = 0; r < runs; ++r) {
    auto t0 = Clock::now();
    auto b = sk::hsm::tpm::OpenTpmBackend(agent.TpmConfig());
    unseal.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (!b.ok()) return 1;
  }
  std::vector<double> empty;
  for (int r = 0; r < runs; ++r) empty.push_back(StartToReady(agent));

  {  // Fill the store through the library, on the same TPM.
    auto b = sk::hsm::tpm::OpenTpmBackend(agent.TpmConfig());
    sk::secrets::ServiceOptions so;
    so.store_path = agent.state_dir() + "/store.db";
    auto svc =
        sk::secrets::SecretService::Open(std::shared_ptr<sk::hsm::KeyBackend>(std::move(b).value()), so);
    if (!svc.ok()) {
      std::fprintf(stderr, "%s\n", svc.status().ToString().c_str());
      return 1;
    }
    std::atomic<std::uint64_t> next{0};
    std::vector<std::thread> writers;
    for (int w = 0; w < 16; ++w) {
      writers.emplace_back([&, w] {
        for (std::uint64_t n; (n = next.fetch_add(1)) < versions;) {
          auto r =
              sk::secrets::Put(**svc, "app/s" + std::to_string(w) + "/k" + std::to_string(n % 2000),
                               sk::AsBytes("a-32-byte-secret-value-for-bench"), sk::secrets::Actor("bench"));
          if (!r.ok()) std::exit(1);
        }
      });
    }
    for (auto& t : writers) t.join();
  }
  std::vector<double> full;
  for (int r = 0; r < runs; ++r) full.push_back(StartToReady(agent));

  std::printf("== TPM backend (swtpm, sealed to PCR 7); medians of %d runs\n", runs);
  std::printf("%-44s %10s %10s\n", "", "p50 (ms)", "max (ms)");
  std::printf("%-44s %10.1f %10.1f\n", "unseal (open the backend)", Pct(unseal, 0.5), Pct(unseal, 1.0));
  std::printf("%-44s %10.1f %10.1f\n", "agent start-to-ready, empty store", Pct(empty, 0.5), Pct(empty, 1.0));
  std::string label = "agent start-to-ready, " + std::to_string(versions) + " versions";
  std::printf("%-44s %10.1f %10.1f\n", label.c_str(), Pct(full, 0.5), Pct(full, 1.0));
  return 0;
}
