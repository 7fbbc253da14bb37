// sealkeepd: the sealkeep agent. main() stays thin: parse flags, hand over.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "crypto/locked_pool.h"
#include "crypto/random.h"
#include "crypto/self_test.h"
#include "sealkeep_version.h"

namespace {

// Runs the crypto known-answer tests and checks that secret memory can be locked.
int SelfCheck() {
  sk::Status st = sk::RunCryptoSelfTest();
  if (!st.ok()) {
    std::fprintf(stderr, "sealkeepd: %s\n", st.ToString().c_str());
    return 1;
  }
  auto probe = sk::RandomSecret(32);
  if (!probe.ok()) {
    std::fprintf(stderr, "sealkeepd: %s\n", probe.status().ToString().c_str());
    return 1;
  }
  bool locked = sk::LockedPool::Instance().GetStats().lock_failures == 0;
  std::printf("sealkeepd %s self-check: crypto known answers ok; secret memory %s\n", SEALKEEP_VERSION,
              locked ? "locked" : "NOT locked (raise LimitMEMLOCK / RLIMIT_MEMLOCK)");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sealkeepd: the sealkeep agent (hardware-sealed, versioned secrets over a Unix socket)",
               "sealkeepd"};
  bool version = false;
  bool self_check = false;
  app.add_flag("--version", version, "Print the version and exit");
  app.add_flag("--self-check", self_check,
               "Run the crypto self-test and the memory-locking check, then exit");
  CLI11_PARSE(app, argc, argv);
  if (version) {
    std::printf("sealkeepd %s\n", SEALKEEP_VERSION);
    return 0;
  }
  if (self_check) return SelfCheck();
  std::fprintf(stderr, "sealkeepd: the agent is not built yet; try --self-check\n");
  return 2;
}
