// sk_bench_unwrap: PKCS#11 unwrap latency and throughput against a SoftHSM2 token it
// creates in a temporary folder (never the system token dir).
//
// Measures, in each of --runs runs (default 5), and prints per-run figures and medians:
//   bare-1    the reference: C_DecryptInit + C_Decrypt of a wrapped 32-byte key with
//             CKM_AES_GCM under the token key, on one logged-in session, nothing else;
//   bare-1s   the same loop under a session-object copy of the key (what the backend
//             uses, master_key.h), to show where the backend's time goes;
//   bare-8s   bare-1s on 8 threads, a session each: SoftHSM2's own ceiling for the
//             backend's path;
//   unwrap-1  Pkcs11Backend::Unwrap (KeyBackend::Unwrap) of the same kind of blob, 1 thread;
//   unwrap-8  the same from 8 threads (session pool of 8);
//   bare-8    the reference loop (token key) on 8 threads, one session each.
// Per-op latencies give p50/p99; throughput is unwraps / wall time.
// Goals (issue 3): unwrap-1 p50 within 1.5x of the reference; unwrap-8 throughput more
// than 1.5x the reference's. The issue's reference is a bare loop measured at about
// 8 us/op (kIssueReferenceUs); the ratios are printed against that figure and against
// this run's own bare loops, since the VM's speed varies between invocations.
//
//   sk_bench_unwrap [--ops N] [--runs R] [--module PATH] [--max-sessions S]
//
// --max-sessions sets the backend's session pool (default 8, as Pkcs11Config); with
// fewer sessions than threads, unwrap-8's threads queue in the pool instead of in
// SoftHSM2's own mutexes.
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "crypto/random.h"
#include "hsm/pkcs11/master_key.h"
#include "hsm/pkcs11/open_token.h"
#include "hsm/pkcs11/pkcs11_backend.h"
#include "hsm/pkcs11/provision.h"
#include "hsm/wrapped_blob_format.h"

namespace sk {
namespace {

using Clock = std::chrono::steady_clock;

// The issue's reference: a bare C_DecryptInit + C_Decrypt loop of a 32-byte key, about
// 8 us/op on this machine kind (so 125,000 unwraps/s on one thread).
constexpr double kIssueReferenceUs = 8.0;

struct Figures {
  double p50_us = 0;
  double p99_us = 0;
  double ops_per_s = 0;
};

Figures Summarise(std::vector<double> lat_us, double wall_s) {
  std::sort(lat_us.begin(), lat_us.end());
  Figures f;
  f.p50_us = lat_us[lat_us.size() / 2];
  f.p99_us = lat_us[std::min(lat_us.size() - 1, lat_us.size() * 99 / 100)];
  f.ops_per_s = static_cast<double>(lat_us.size()) / wall_s;
  return f;
}

double Us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

[[noreturn]] void Die(const std::string& what, const Status& st) {
  std::fprintf(stderr, "sk_bench_unwrap: %s: %s\n", what.c_str(), st.ToString().c_str());
  std::exit(1);
}

// Runs `threads` threads, each calling op() `ops_per_thread` times; op returns false on error.
template <typename MakeOp>
Figures Measure(int threads, int ops_per_thread, MakeOp make_op) {
  std::vector<std::vector<double>> lat(static_cast<std::size_t>(threads));
  std::vector<std::thread> pool;
  auto start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      auto op = make_op(t);
      auto& mine = lat[static_cast<std::size_t>(t)];
      mine.reserve(static_cast<std::size_t>(ops_per_thread));
      for (int i = 0; i < ops_per_thread; ++i) {
        auto t0 = Clock::now();
        if (!op(i)) {
          std::fprintf(stderr, "sk_bench_unwrap: an operation failed\n");
          std::exit(1);
        }
        mine.push_back(Us(Clock::now() - t0));
      }
    });
  }
  for (auto& th : pool) th.join();
  double wall = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  return Summarise(std::move(all), wall);
}

// The reference loop's state: one logged-in session per thread and the master key.
struct Bare {
  hsm::pkcs11::OpenToken token;
  ck_object_handle_t key = CK_INVALID_HANDLE;   // the token object
  ck_object_handle_t copy = CK_INVALID_HANDLE;  // its session-object copy
  Bytes iv, aad, ct_and_tag;
};

Bare MakeBare(const hsm::Pkcs11Config& config) {
  Bare b;
  auto t = hsm::pkcs11::OpenAndLogin(config);
  if (!t.ok()) Die("opening the token for the bare loop", t.status());
  b.token = std::move(t).value();
  auto keys = hsm::pkcs11::ListMasterKeys(b.token.session);
  if (!keys.ok() || keys->empty()) Die("finding the master key", keys.status());
  b.key = keys->front().handle;
  auto copy = hsm::pkcs11::SessionCopy(b.token.session, keys->front());
  if (!copy.ok()) Die("copying the master key into a session object", copy.status());
  b.copy = *copy;
  b.iv = RandomBytes(12).value();
  b.aad = ToBytes("path=bench/secret;version=1;purpose=dek;generation=1 (a typical 64-byte AAD...)");
  Bytes plain = RandomBytes(32).value();
  b.ct_and_tag.resize(48);
  ck_gcm_params p{b.iv.data(), 12, 96, b.aad.data(), b.aad.size(), 128};
  ck_mechanism m{CKM_AES_GCM, &p, sizeof p};
  const auto& fn = b.token.session.fn();
  unsigned long len = b.ct_and_tag.size();
  if (fn.C_EncryptInit(b.token.session.handle(), &m, b.key) != CKR_OK ||
      fn.C_Encrypt(b.token.session.handle(), plain.data(), plain.size(), b.ct_and_tag.data(), &len) !=
          CKR_OK) {
    Die("encrypting for the bare loop", Internal("C_Encrypt failed"));
  }
  return b;
}

// One bare C_DecryptInit + C_Decrypt with `key` on `session`.
bool BareDecrypt(const Bare& b, ck_session_handle_t session, ck_object_handle_t key) {
  ck_gcm_params p{const_cast<std::uint8_t*>(b.iv.data()),  12,           96,
                  const_cast<std::uint8_t*>(b.aad.data()), b.aad.size(), 128};
  ck_mechanism m{CKM_AES_GCM, &p, sizeof p};
  std::uint8_t out[48];
  unsigned long len = sizeof out;
  const auto& fn = b.token.session.fn();
  return fn.C_DecryptInit(session, &m, key) == CKR_OK &&
         fn.C_Decrypt(session, const_cast<std::uint8_t*>(b.ct_and_tag.data()), b.ct_and_tag.size(), out,
                      &len) == CKR_OK &&
         len == 32;
}

std::string SetUpToken(const std::string& dir, const std::string& module, hsm::Pkcs11Config& config) {
  std::filesystem::create_directories(dir + "/tokens");
  const std::string conf = dir + "/softhsm2.conf";
  std::ofstream(conf) << "directories.tokendir = " << dir
                      << "/tokens\nobjectstore.backend = file\nlog.level = ERROR\n";
  ::setenv("SOFTHSM2_CONF", conf.c_str(), 1);
  std::ofstream(dir + "/pin") << "bench-pin-1234\n";
  std::ofstream(dir + "/so-pin") << "bench-so-pin-5678\n";
  std::filesystem::permissions(dir + "/pin",
                               std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  config.module = module;
  config.token_label = "bench";
  config.pin_file = dir + "/pin";
  config.sync_dir = dir + "/tokens";
  hsm::pkcs11::ProvisionOptions options{config, /*init=*/true, dir + "/so-pin"};
  auto report = hsm::pkcs11::Provision(options);
  if (!report.ok()) Die("provisioning the bench token", report.status());
  return conf;
}

struct Row {
  const char* name;
  std::vector<Figures> runs;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void Print(const char* name, const Figures& f) {
  std::printf("  %-9s p50 %7.2f us  p99 %7.2f us  %9.0f unwraps/s\n", name, f.p50_us, f.p99_us, f.ops_per_s);
}

int Main(int argc, char** argv) {
  int ops = 20000;
  int runs = 5;
  std::string module = "/usr/lib/softhsm/libsofthsm2.so";
  std::size_t max_sessions = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--ops") == 0) ops = std::max(100, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--runs") == 0) runs = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--module") == 0) module = argv[i + 1];
    if (std::strcmp(argv[i], "--max-sessions") == 0) {
      max_sessions = static_cast<std::size_t>(std::max(1, std::atoi(argv[i + 1])));
    }
  }
  char tmpl[] = "/tmp/sk-unwrap-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  const std::string dir = tmpl;
  hsm::Pkcs11Config config;
  SetUpToken(dir, module, config);
  config.max_sessions = max_sessions;

  auto opened = hsm::pkcs11::OpenPkcs11Backend(config);
  if (!opened.ok()) Die("opening the backend", opened.status());
  auto backend = std::move(opened).value();
  Bare bare = MakeBare(config);
  const Bytes aad = bare.aad;
  std::vector<Bytes> blobs;
  for (int i = 0; i < 64; ++i) {
    auto blob = backend->Wrap(RandomSecret(32).value(), aad);
    if (!blob.ok()) Die("wrapping", blob.status());
    blobs.push_back(std::move(blob).value());
  }
  std::vector<ck_session_handle_t> bare_sessions(8);
  for (auto& s : bare_sessions) {
    if (bare.token.session.fn().C_OpenSession(bare.token.info.slot, CKF_SERIAL_SESSION, nullptr, nullptr,
                                              &s) != CKR_OK) {
      Die("opening bare sessions", Internal("C_OpenSession failed"));
    }
  }

  std::printf(
      "sk_bench_unwrap: SoftHSM2 %s, 32-byte keys, %zu-byte AAD, %d ops per case, %d runs, %u cpus, "
      "pool of %zu sessions\n",
      module.c_str(), aad.size(), ops, runs, std::thread::hardware_concurrency(), max_sessions);
  auto bare_op = [&](ck_object_handle_t key) {
    return [&, key](int t) {
      return [&, key, t](int) { return BareDecrypt(bare, bare_sessions[static_cast<std::size_t>(t)], key); };
    };
  };
  auto unwrap_op = [&](int t) {
    return [&, t](int i) { return backend->Unwrap(blobs[static_cast<std::size_t>((i + t) % 64)], aad).ok(); };
  };
  // The order rows are printed in; indices below name them.
  enum { kBare1, kBare1s, kBare8s, kUnwrap1, kUnwrap8, kBare8, kRows };
  std::vector<Row> rows = {{"bare-1", {}},   {"bare-1s", {}},  {"bare-8s", {}},
                           {"unwrap-1", {}}, {"unwrap-8", {}}, {"bare-8", {}}};
  static_assert(kRows == 6, "one name per row above");
  for (int r = 0; r < runs; ++r) {
    rows[kBare1].runs.push_back(Measure(1, ops, bare_op(bare.key)));
    rows[kBare1s].runs.push_back(Measure(1, ops, bare_op(bare.copy)));
    rows[kBare8s].runs.push_back(Measure(8, ops / 8, bare_op(bare.copy)));
    rows[kUnwrap1].runs.push_back(Measure(1, ops, unwrap_op));
    rows[kUnwrap8].runs.push_back(Measure(8, ops / 8, unwrap_op));
    rows[kBare8].runs.push_back(Measure(8, ops / 8, bare_op(bare.key)));
    std::printf("run %d\n", r + 1);
    for (const auto& row : rows) Print(row.name, row.runs.back());
  }
  std::vector<Figures> med;
  std::printf("median of %d runs\n", runs);
  for (const auto& row : rows) {
    std::vector<double> p50, p99, tput;
    for (const auto& f : row.runs) {
      p50.push_back(f.p50_us);
      p99.push_back(f.p99_us);
      tput.push_back(f.ops_per_s);
    }
    med.push_back({Median(p50), Median(p99), Median(tput)});
    Print(row.name, med.back());
  }
  // Each goal against three references: the issue's figure (8 us/op, 125,000/s), this
  // run's token-key loop (bare-1) and this run's session-copy loop (bare-1s, the
  // like-for-like loop for what the backend does).
  struct Ref {
    const char* name;
    double p50_us;
    double ops_per_s;
  };
  const Ref refs[] = {{"issue reference (8 us/op)", kIssueReferenceUs, 1e6 / kIssueReferenceUs},
                      {"bare-1 (token key)", med[kBare1].p50_us, med[kBare1].ops_per_s},
                      {"bare-1s (session copy)", med[kBare1s].p50_us, med[kBare1s].ops_per_s}};
  auto verdict = [](bool met) { return met ? "met" : "NOT met"; };
  std::printf("goals (medians)\n");
  for (const Ref& ref : refs) {
    double lat = med[kUnwrap1].p50_us / ref.p50_us;
    double tput = med[kUnwrap8].ops_per_s / ref.ops_per_s;
    std::printf(
        "  vs %-26s unwrap-1 p50 %.2fx (goal <= 1.5x: %s); unwrap-8 unwraps/s %.2fx (goal > 1.5x: %s)\n",
        ref.name, lat, verdict(lat <= 1.5), tput, verdict(tput > 1.5));
  }
  std::printf("ratios (medians)\n");
  std::printf("  bare-1 p50 / issue reference         %.2fx   (this machine's token-key loop against 8 us)\n",
              med[kBare1].p50_us / kIssueReferenceUs);
  std::printf(
      "  bare-1s p50 / issue reference        %.2fx   (this machine's session-copy loop against 8 us)\n",
      med[kBare1s].p50_us / kIssueReferenceUs);
  std::printf("  unwrap-1 p50 / bare-1s p50           %.2fx   (the backend's own overhead)\n",
              med[kUnwrap1].p50_us / med[kBare1s].p50_us);
  std::printf("  unwrap-8 / unwrap-1 unwraps/s        %.2fx   (the backend's scaling to 8 threads)\n",
              med[kUnwrap8].ops_per_s / med[kUnwrap1].ops_per_s);
  std::printf("  bare-8s / bare-1s unwraps/s          %.2fx   (SoftHSM2 scaling, session copy)\n",
              med[kBare8s].ops_per_s / med[kBare1s].ops_per_s);
  std::printf("  bare-8 / bare-1 unwraps/s            %.2fx   (SoftHSM2 scaling, token key)\n",
              med[kBare8].ops_per_s / med[kBare1].ops_per_s);

  for (auto s : bare_sessions) bare.token.session.fn().C_CloseSession(s);
  backend.reset();
  bare = Bare();
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace sk

int main(int argc, char** argv) { return sk::Main(argc, argv); }
