// Fleet benchmark (issue 21, docs/fleet.md): one fleet transaction at a time from the admins'
// writer to N hosts, on a real PostgreSQL 15 started here (fsync and synchronous_commit on).
// Each host is a FleetHost on its own thread and connection, woken by LISTEN/NOTIFY, that
// verifies and opens what it pulls: the lightweight applier of docs/fleet.md, without a
// local store behind it. For each transaction (one put of a 32-byte value to group `all`):
//   - commit: the writer's Commit (wrap to every host, sign, one PostgreSQL transaction);
//   - all applied: from the call to Commit to the moment the last host has verified and opened
//     it (hosts wake on the NOTIFY of the commit, often before Commit has returned: it then
//     verifies its own entry like any host);
// p50 and p99 over --txns, then what PostgreSQL holds per version and per host.
//
// --appliers N runs only the first N hosts (the others are admitted and wrapped to, never
// pulled): the writer's cost per host without 100 verifying threads sharing its cores.
//
//   build/tools/bench/sk_bench_fleet [--hosts 3,100] [--txns 30] [--appliers N]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/fleet/fleet_host.h"
#include "agent/fleet/fleet_writer.h"
#include "tests/fixtures/postgres.h"

namespace {

using Clock = std::chrono::steady_clock;
using sk::fleet::FleetDb;
using sk::fleet::FleetHost;
using sk::fleet::FleetWriter;

template <class T>
T Must(sk::Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, r.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(*r);
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

std::unique_ptr<FleetDb> Open(const sk::testing::Postgres& pg, const sk::SecretBytes& pw) {
  return Must(
      FleetDb::Connect("host=" + pg.socket_dir() + " port=5432 dbname=postgres user=" + pg.superuser(), &pw),
      "connect");
}

void Run(int hosts, int txns, int appliers) {
  if (appliers < 0 || appliers > hosts) appliers = hosts;
  sk::testing::Postgres::Options o;
  o.settings = {"fsync = on", "synchronous_commit = on", "full_page_writes = on",
                "max_connections = " + std::to_string(hosts + 20)};
  sk::testing::Postgres pg(o);
  const sk::SecretBytes pw = sk::SecretBytes::CopyFrom(sk::AsBytes(pg.superuser_password()));
  std::unique_ptr<FleetDb> db = Open(pg, pw);
  if (!db->Migrate().ok()) std::exit(1);
  sk::RecoveryKeyPair signer = Must(sk::GenerateRecoveryKey(), "signer key");
  std::unique_ptr<FleetWriter> writer =
      Must(FleetWriter::Create(db.get(), sk::SecretBytes::CopyFrom(signer.private_key.Expose())), "writer");

  std::vector<sk::RecoveryKeyPair> keys;
  for (int i = 0; i < hosts; ++i) {
    keys.push_back(Must(sk::GenerateRecoveryKey(), "host key"));
    sk::fleet::HostRecord h{"host-" + std::to_string(i),
                            sk::fleet::HostState::kAdmitted,
                            sk::fleet::KeyKind::kSoftware,
                            keys.back().public_key,
                            {"all"}};
    Must(writer->PutHost(h), "admit");
  }
  const std::uint64_t first_txn = writer->chain().head().seq + 1;

  // applied[h] = the highest seq host h has verified and opened; times of each (seq, host).
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::uint64_t> applied(static_cast<std::size_t>(appliers), 0);
  std::vector<std::vector<Clock::time_point>> at(
      static_cast<std::size_t>(txns), std::vector<Clock::time_point>(static_cast<std::size_t>(appliers)));
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  int ready = 0;  // guarded by mu
  for (int i = 0; i < appliers; ++i) {
    threads.emplace_back([&, i] {
      std::unique_ptr<FleetDb> hdb = Open(pg, pw);
      if (!hdb->Listen().ok()) std::exit(1);
      std::unique_ptr<FleetHost> host = Must(
          FleetHost::Create("host-" + std::to_string(i),
                            sk::SecretBytes::CopyFrom(keys[static_cast<std::size_t>(i)].private_key.Expose()),
                            signer.public_key, {}),
          "host");
      auto pull = [&] {
        FleetHost::Pulled p = Must(host->Pull(*hdb), "pull");
        if (!p.refusal.ok()) {
          std::fprintf(stderr, "host-%d refused: %s\n", i, p.refusal.ToString().c_str());
          std::exit(1);
        }
        const Clock::time_point now = Clock::now();
        std::lock_guard<std::mutex> lock(mu);
        for (const sk::fleet::EntryChanges& e : p.entries) {
          host->Applied(e);
          if (e.seq >= first_txn) at[e.seq - first_txn][static_cast<std::size_t>(i)] = now;
          applied[static_cast<std::size_t>(i)] = e.seq;
        }
        cv.notify_all();
      };
      pull();  // the host entries
      {
        std::lock_guard<std::mutex> lock(mu);
        ++ready;
      }
      cv.notify_all();
      while (!stop) {
        if (Must(hdb->WaitForNotify(std::chrono::milliseconds(200)), "wait")) pull();
      }
    });
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return ready == appliers; });
  }

  std::vector<double> commit_ms;
  std::vector<double> all_ms;
  std::vector<double> each_ms;
  for (int t = 0; t < txns; ++t) {
    std::vector<sk::fleet::PlainOp> ops;
    ops.push_back(
        sk::fleet::PlainOp{"apps/all/token",
                           sk::fleet::OpKind::kPut,
                           {"all"},
                           sk::SecretBytes::CopyFrom(sk::AsBytes("0123456789abcdef0123456789abcdef"))});
    const Clock::time_point t0 = Clock::now();
    const std::uint64_t seq = Must(writer->Commit(std::move(ops)), "commit");
    const Clock::time_point t1 = Clock::now();
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] {
      return std::all_of(applied.begin(), applied.end(), [&](std::uint64_t s) { return s >= seq; });
    });
    commit_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    Clock::time_point last = t0;
    for (const Clock::time_point& p : at[static_cast<std::size_t>(t)]) {
      last = std::max(last, p);
      each_ms.push_back(std::chrono::duration<double, std::milli>(p - t0).count());
    }
    all_ms.push_back(std::chrono::duration<double, std::milli>(last - t0).count());
  }
  stop = true;
  for (std::thread& th : threads) th.join();

  // Per host: the escrow's one wrap per version (fleet_writer.h) is counted apart, in the docs.
  auto rows = pg.Query(
      "SELECT count(*), sum(octet_length(wrap)) FROM sk_fleet_wraps WHERE host_id <> '@escrow' "
      "AND seq >= " +
      std::to_string(first_txn));
  auto entries = pg.Query("SELECT avg(octet_length(entry)) FROM sk_fleet_entries WHERE seq >= " +
                          std::to_string(first_txn));
  const double versions = txns;
  const double wrap_rows = std::atof(rows[0][0].c_str());
  const double wrap_bytes = std::atof(rows[0][1].c_str());
  const double entry_bytes = std::atof(entries[0][0].c_str());
  std::printf(
      "| %d (%d applying) | %.1f / %.1f ms | %.1f / %.1f ms | %.1f ms | %.2f | %.0f B | %.0f B + %.0f B / %d "
      "|\n",
      hosts, appliers, Percentile(commit_ms, 0.5), Percentile(commit_ms, 0.99), Percentile(all_ms, 0.5),
      Percentile(all_ms, 0.99), Percentile(each_ms, 0.5), wrap_rows / versions / hosts,
      wrap_bytes / wrap_rows, entry_bytes, wrap_bytes / versions, hosts);
  std::fflush(stdout);
}

std::vector<int> List(const char* text) {
  std::vector<int> out;
  for (const char* p = text; *p != '\0';) {
    char* end = nullptr;
    out.push_back(static_cast<int>(std::strtol(p, &end, 10)));
    p = *end == ',' ? end + 1 : end;
    if (end == p && *p != '\0') break;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> hosts = {3, 100};
  int txns = 30;
  int appliers = -1;  // all
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--hosts") {
      hosts = List(argv[i + 1]);
    } else if (flag == "--appliers") {
      appliers = std::atoi(argv[i + 1]);
    } else if (flag == "--txns") {
      txns = std::atoi(argv[i + 1]);
    } else {
      std::fprintf(stderr, "usage: sk_bench_fleet [--hosts 3,100] [--txns 30] [--appliers N]\n");
      return 2;
    }
  }
  std::printf("fleet txn: one put (32-byte value) to every host, %d txns each, PostgreSQL 15 with fsync on\n",
              txns);
  std::printf(
      "| hosts | commit p50 / p99 | Commit called -> applied on every applying host, p50 / p99 | on one "
      "host, p50 | "
      "wrap rows "
      "per version per host | bytes per wrap | per version: entry + wraps / hosts "
      "|\n|---|---|---|---|---|---|---|\n");
  for (int h : hosts) Run(h, txns, appliers);
  return 0;
}
