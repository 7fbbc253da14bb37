// Store and journal benchmark: durable commits per second and commit latency (p50/p99)
// with 1 and 16 concurrent writers, in both anchor modes, and full journal verification
// time for stores of 100k and 1M entries. Real SQLite file (WAL, synchronous=FULL) and a
// real SoftHSM2 token in a temporary folder.
//
//   build/tools/bench/sk_bench_store [--writers-seconds S] [--sizes 100000,1000000] [--reps N]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "agent/journal/scan.h"
#include "agent/secrets/service.h"
#include "agent/store/store.h"
#include "tests/fixtures/softhsm.h"
#include "tests/fixtures/temp_dir.h"

namespace {

using Clock = std::chrono::steady_clock;
using sk::secrets::AnchorMode;

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

double Median(std::vector<double> v) { return Percentile(v, 0.5); }

struct WriteResult {
  double commits_per_s = 0, p50_us = 0, p99_us = 0;
};

WriteResult RunWriters(sk::secrets::SecretService& svc, int writers, double seconds) {
  std::vector<std::vector<double>> lat(static_cast<std::size_t>(writers));
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  sk::secrets::Actor actor{"bench"};
  std::string value(64, 'v');
  auto start = Clock::now();
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; !stop; ++i) {
        auto t0 = Clock::now();
        auto r = sk::secrets::Put(svc, "bench/w" + std::to_string(w) + "/" + std::to_string(i % 64),
                                  sk::AsBytes(value), actor);
        auto t1 = Clock::now();
        if (!r.ok()) {
          std::fprintf(stderr, "put failed: %s\n", r.status().ToString().c_str());
          std::exit(1);
        }
        lat[static_cast<std::size_t>(w)].push_back(
            std::chrono::duration<double, std::micro>(t1 - t0).count());
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  WriteResult r;
  r.commits_per_s = static_cast<double>(all.size()) / elapsed;
  r.p50_us = Percentile(all, 0.50);
  r.p99_us = Percentile(all, 0.99);
  return r;
}

// Fills the store to `entries` journal entries with puts from 16 writers.
void Fill(sk::secrets::SecretService& svc, std::uint64_t entries) {
  std::atomic<std::uint64_t> next{svc.Report().head_seq};
  std::vector<std::thread> threads;
  sk::secrets::Actor actor{"uid=0 pid=1 unit=bench.service"};
  for (int w = 0; w < 16; ++w) {
    threads.emplace_back([&, w] {
      std::string value(32, 'x');
      for (;;) {
        std::uint64_t n = next.fetch_add(1);
        if (n >= entries) return;
        auto r = sk::secrets::Put(svc, "app/svc" + std::to_string(w) + "/key" + std::to_string(n % 5000),
                                  sk::AsBytes(value), actor);
        if (!r.ok()) {
          std::fprintf(stderr, "fill failed: %s\n", r.status().ToString().c_str());
          std::exit(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  int reps = 3;
  std::vector<std::uint64_t> sizes = {100'000, 1'000'000};
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--writers-seconds") seconds = std::atof(argv[i + 1]);
    if (a == "--reps") reps = std::atoi(argv[i + 1]);
    if (a == "--sizes") {
      sizes.clear();
      std::string s = argv[i + 1];
      for (std::size_t p = 0; p < s.size();) {
        std::size_t c = s.find(',', p);
        sizes.push_back(std::stoull(s.substr(p, c - p)));
        p = c == std::string::npos ? s.size() : c + 1;
      }
    }
  }
  sk::testing::TempDir dir("bench-store");
  sk::testing::SoftHsmToken token(dir.path());
  auto backend_r = token.Open();
  if (!backend_r.ok()) {
    std::fprintf(stderr, "%s\n", backend_r.status().ToString().c_str());
    return 1;
  }
  std::shared_ptr<sk::hsm::KeyBackend> backend = std::move(backend_r).value();

  std::printf(
      "== durable commits (64-byte values, SQLite WAL synchronous=FULL, SoftHSM2 wrap; medians of %d runs of "
      "%.0f s)\n",
      reps, seconds);
  std::printf("%-7s %-8s %14s %12s %12s\n", "mode", "writers", "commits/s", "p50 (us)", "p99 (us)");
  for (AnchorMode mode : {AnchorMode::kEpoch, AnchorMode::kStrict}) {
    for (int writers : {1, 16}) {
      std::vector<double> tput, p50, p99;
      for (int r = 0; r < reps; ++r) {
        // One store and one token throughout: a token anchors exactly one store.
        sk::secrets::ServiceOptions o;
        o.store_path = dir.Join("store.db");
        o.anchor_mode = mode;
        auto svc = sk::secrets::SecretService::Open(backend, o);
        if (!svc.ok()) {
          std::fprintf(stderr, "%s\n", svc.status().ToString().c_str());
          return 1;
        }
        WriteResult wr = RunWriters(**svc, writers, seconds);
        tput.push_back(wr.commits_per_s);
        p50.push_back(wr.p50_us);
        p99.push_back(wr.p99_us);
      }
      std::printf("%-7s %-8d %14.0f %12.0f %12.0f\n", std::string(sk::secrets::AnchorModeName(mode)).c_str(),
                  writers, Median(tput), Median(p50), Median(p99));
      std::fflush(stdout);
    }
  }

  std::printf("\n== full journal verification (seals + chains, 2 threads; medians of %d runs)\n", reps);
  std::printf("%-10s %16s %18s %16s\n", "entries", "scan only (s)", "open: verify+index (s)",
              "entries/s (scan)");
  for (std::uint64_t n : sizes) {
    sk::secrets::ServiceOptions o;
    o.store_path = dir.Join("store.db");
    {
      auto svc = sk::secrets::SecretService::Open(backend, o);
      if (!svc.ok()) return 1;
      Fill(**svc, n);
    }
    std::vector<double> scan_s, open_s;
    for (int r = 0; r < reps; ++r) {
      auto t0 = Clock::now();
      auto svc = sk::secrets::SecretService::Open(backend, o);
      auto t1 = Clock::now();
      if (!svc.ok()) return 1;
      open_s.push_back(std::chrono::duration<double>(t1 - t0).count());
      svc->reset();
      // The scan alone, on its own reader (what verification costs without the index).
      sk::store::SqliteOptions so;
      so.path = o.store_path;
      so.create = false;
      auto store = sk::store::OpenSqliteStore(so);
      auto reader = (*store)->NewReader();
      sk::SecretBytes jk(32);  // seals will not match: the cost is the same
      auto s0 = Clock::now();
      auto sum = sk::journal::ScanJournal(**reader, jk, 2, [](sk::journal::ScannedEntry&) {});
      auto s1 = Clock::now();
      if (!sum.ok() || sum->entries < n) {
        std::fprintf(stderr, "scan saw %llu entries\n",
                     sum.ok() ? static_cast<unsigned long long>(sum->entries) : 0ULL);
        return 1;
      }
      scan_s.push_back(std::chrono::duration<double>(s1 - s0).count());
    }
    std::printf("%-10llu %16.2f %18.2f %16.0f\n", static_cast<unsigned long long>(n), Median(scan_s),
                Median(open_s), static_cast<double>(n) / Median(scan_s));
    std::fflush(stdout);
  }
  return 0;
}
