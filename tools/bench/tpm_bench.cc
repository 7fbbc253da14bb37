// TPM backend latency against a swtpm this program starts (and stops) itself:
//   open     TpmBackend::Open: TCTI + primary creation + load + policy session + unseal
//            + NV anchor check (what the agent pays at start, per live generation)
//   split    primary creation (CreatePrimary from the fixed template) vs unseal (load,
//            salted policy session with PolicyPCR + PolicyAuthValue, TPM2_Unseal, flush)
//   anchor   AdvanceAnchor (increment + read counter + write head) and ReadAnchor
//   unwrap   software AES-256-GCM unwrap of a 32-byte key (no TPM involved)
//   command  one TPM2_GetRandom round trip, the unit the others are made of
// Sealed to PCR 7 with an auth value, like a typical host. Real TPM chips are much
// slower per command (tens of ms); these figures are swtpm's.
//
// Run: build/tools/bench/sk_bench_tpm [--runs N]   (default 20 opens, 10x that for anchors)
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "crypto/random.h"
#include "hsm/tpm/esys_context.h"
#include "hsm/tpm/keyset.h"
#include "hsm/tpm/primary.h"
#include "hsm/tpm/provision.h"
#include "hsm/tpm/tpm_backend.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "sk_bench_tpm: %s\n", why.c_str());
  std::exit(1);
}

template <typename T>
T Check(sk::Result<T> r, const char* what) {
  if (!r.ok()) Die(std::string(what) + ": " + r.status().ToString());
  return std::move(r).value();
}

// A swtpm on random ports in a private folder, stopped by its pid when this goes away.
class Swtpm {
 public:
  explicit Swtpm(const std::string& dir) : state_(dir + "/swtpm") {
    std::filesystem::create_directories(state_);
    std::mt19937 rng(std::random_device{}());
    for (int attempt = 0; attempt < 20 && pid_ < 0; ++attempt) {
      port_ = std::uniform_int_distribution<int>(5000, 16000)(rng) * 2;
      Start();
    }
    if (pid_ < 0) Die("swtpm did not start (is it installed?)");
  }
  ~Swtpm() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  std::string Tcti() const { return "swtpm:host=127.0.0.1,port=" + std::to_string(port_); }

 private:
  void Start() {
    std::vector<std::string> args = {"swtpm",
                                     "socket",
                                     "--tpm2",
                                     "--tpmstate",
                                     "dir=" + state_,
                                     "--server",
                                     "type=tcp,port=" + std::to_string(port_) + ",bindaddr=127.0.0.1",
                                     "--ctrl",
                                     "type=tcp,port=" + std::to_string(port_ + 1) + ",bindaddr=127.0.0.1",
                                     "--flags",
                                     "not-need-init,startup-clear",
                                     "--pid",
                                     "file=" + state_ + "/pid"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    if (posix_spawnp(&pid, "swtpm", nullptr, nullptr, argv.data(), environ) != 0) return;
    for (int i = 0; i < 300; ++i) {
      if (::waitpid(pid, nullptr, WNOHANG) == pid) return;  // could not bind: try other ports
      struct stat st {};
      if (::stat((state_ + "/pid").c_str(), &st) == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        pid_ = pid;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  std::string state_;
  int port_ = 0;
  pid_t pid_ = -1;
};

struct Stats {
  double p50, p99, mean;
};

Stats Summarise(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {
    std::size_t i = static_cast<std::size_t>(q * static_cast<double>(ms.size() - 1) + 0.5);
    return ms[std::min(i, ms.size() - 1)];
  };
  double sum = 0;
  for (double v : ms) sum += v;
  return {at(0.50), at(0.99), sum / static_cast<double>(ms.size())};
}

void Print(const char* name, const std::vector<double>& ms, const char* unit = "ms", double scale = 1.0) {
  Stats s = Summarise(ms);
  std::printf("  %-34s p50 %8.3f %s   p99 %8.3f %s   mean %8.3f %s   (n=%zu)\n", name, s.p50 * scale, unit,
              s.p99 * scale, unit, s.mean * scale, unit, ms.size());
}

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 20;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--runs") runs = std::max(2, std::atoi(argv[i + 1]));
  ::setenv("TSS2_LOG", "all+none", 0);

  char tmpl[] = "/tmp/sk-bench-tpm-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) Die("mkdtemp failed");
  std::string dir = tmpl;

  {
    Swtpm tpm(dir);
    sk::hsm::TpmConfig config;
    config.tcti = tpm.Tcti();
    config.state_dir = dir + "/state";
    config.auth_file = dir + "/tpm-auth";
    config.pcrs = {7};
    std::ofstream(config.auth_file) << "bench auth value\n";
    Check(sk::hsm::tpm::ProvisionTpm(config), "provision");

    std::printf("sealkeep TPM backend against swtpm (%s), sealed to PCR 7 + auth value\n",
                config.tcti.c_str());
    std::vector<double> open_ms;
    for (int i = 0; i < runs; ++i) {
      auto t0 = Clock::now();
      auto b = Check(sk::hsm::tpm::TpmBackend::Open(config), "open");
      open_ms.push_back(MsSince(t0));
    }
    Print("open (unseal at start, total)", open_ms);

    {
      // One command's round trip, to read the others against (swtpm's TCTI connects per command).
      auto esys = Check(sk::hsm::tpm::EsysContext::Open(config.tcti), "esys");
      std::vector<double> cmd_ms;
      for (int i = 0; i < runs * 10; ++i) {
        TPM2B_DIGEST* random = nullptr;
        auto t0 = Clock::now();
        if (Esys_GetRandom(esys->get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, 16, &random) !=
            TSS2_RC_SUCCESS) {
          Die("TPM2_GetRandom failed");
        }
        cmd_ms.push_back(MsSince(t0));
        Esys_Free(random);
      }
      Print("one command (TPM2_GetRandom)", cmd_ms);
    }

    std::vector<double> tcti_ms, primary_ms, unseal_ms;
    sk::hsm::tpm::StateDir state(config.state_dir);
    auto record = Check(sk::hsm::tpm::LoadRecord(state), "record");
    for (int i = 0; i < runs; ++i) {
      auto t0 = Clock::now();
      auto esys = Check(sk::hsm::tpm::EsysContext::Open(config.tcti), "esys");
      tcti_ms.push_back(MsSince(t0));
      auto t1 = Clock::now();
      auto primary = Check(sk::hsm::tpm::LoadPrimary(esys->get(), 0), "primary");
      primary_ms.push_back(MsSince(t1));
      auto t2 = Clock::now();
      auto ks = Check(sk::hsm::tpm::UnsealKeyset(esys->get(), primary.get(), state, record, config.auth_file),
                      "unseal");
      unseal_ms.push_back(MsSince(t2));
    }
    Print("  TCTI + ESYS init", tcti_ms);
    Print("  primary create (ECC P-256 template)", primary_ms);
    Print("  unseal (load+policy+unseal+flush)", unseal_ms);

    auto b = Check(sk::hsm::tpm::TpmBackend::Open(config), "open");
    std::vector<double> advance_ms, read_ms;
    sk::Digest head{};
    for (int i = 0; i < runs * 10; ++i) {
      head[0] = static_cast<std::uint8_t>(i);
      auto t0 = Clock::now();
      Check(b->AdvanceAnchor(static_cast<std::uint64_t>(i + 1), head), "advance");
      advance_ms.push_back(MsSince(t0));
      auto t1 = Clock::now();
      Check(b->ReadAnchor(), "read anchor");
      read_ms.push_back(MsSince(t1));
    }
    Print("NV anchor advance", advance_ms);
    Print("NV anchor read", read_ms);

    auto key = Check(sk::RandomSecret(32), "key");
    sk::Bytes aad = sk::ToBytes("bench/path;v=1;dek");
    auto blob = Check(b->Wrap(key, aad), "wrap");
    std::vector<double> unwrap_ms;
    for (int i = 0; i < 10000; ++i) {
      auto t0 = Clock::now();
      auto k = Check(b->Unwrap(blob, aad), "unwrap");
      unwrap_ms.push_back(MsSince(t0));
    }
    Print("unwrap 32-byte key (software GCM)", unwrap_ms, "us", 1000.0);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
