// sealkeepd: the sealkeep agent. main() stays thin: harden the process, parse flags,
// load the config, hand over to RunDaemon (run_daemon.h, where the daemon meets the API).
#include <sys/prctl.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "agent/config/config.h"
#include "agent/run_daemon.h"
#include "crypto/locked_pool.h"
#include "crypto/random.h"
#include "crypto/self_test.h"
#include "sealkeep_version.h"

namespace {

// No core dumps (they would hold keys), no ptrace by our own uid, enough descriptors
// for the connection limit.
void Harden() {
  (void)::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  rlimit core{0, 0};
  (void)::setrlimit(RLIMIT_CORE, &core);
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &files);
  }
}

// --self-check: what must hold for sealkeepd to handle secrets at all, then exit.
//   - the crypto known-answer tests (a wrong build or a broken mbedTLS): failure, exit 1;
//   - the random source (getrandom): failure, exit 1;
//   - memory locking: a WARNING on stderr, exit 0. When mlock() is refused (RLIMIT_MEMLOCK
//     too small and no CAP_IPC_LOCK) secret memory is still excluded from core dumps and
//     forks and wiped when freed, and the daemon itself runs that way rather than refusing
//     to start; a self-check that failed here would fail where the daemon works (e.g. a
//     developer shell's 64 KiB default, while the unit sets LimitMEMLOCK=64M). The warning
//     says what is lost (secrets may reach swap), the limit in force, and the fix.
// Each failure names the item on stderr; the summary line goes to stdout only on success.
int SelfCheck() {
  sk::Status st = sk::RunCryptoSelfTest();
  if (!st.ok()) {
    std::fprintf(stderr, "sealkeepd: self-check FAILED: crypto known-answer test: %s\n",
                 st.ToString().c_str());
    return 1;
  }
  auto probe = sk::RandomSecret(32);  // also maps (and tries to lock) a secret-memory arena
  if (!probe.ok()) {
    std::fprintf(stderr, "sealkeepd: self-check FAILED: random source: %s\n",
                 probe.status().ToString().c_str());
    return 1;
  }
  const bool locked = sk::LockedPool::Instance().GetStats().lock_failures == 0;
  if (!locked) {
    rlimit memlock{};
    std::string limit = "unknown";
    if (::getrlimit(RLIMIT_MEMLOCK, &memlock) == 0) {
      limit = memlock.rlim_cur == RLIM_INFINITY ? "unlimited" : std::to_string(memlock.rlim_cur) + " bytes";
    }
    std::fprintf(stderr,
                 "sealkeepd: self-check WARNING: secret memory is NOT locked: mlock() was refused "
                 "(RLIMIT_MEMLOCK %s); secrets stay out of core dumps and are wiped, but may reach swap. "
                 "Raise the limit (systemd: LimitMEMLOCK=64M; shell: ulimit -l 65536) or grant "
                 "CAP_IPC_LOCK\n",
                 limit.c_str());
  }
  std::printf("sealkeepd %s self-check: crypto known answers ok; random source ok; secret memory %s\n",
              SEALKEEP_VERSION, locked ? "locked" : "NOT locked (see the warning)");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "sealkeepd: the sealkeep agent. Unseals the master key (TPM or PKCS#11 HSM), verifies the\n"
      "sealed journal against its hardware anchor, and serves versioned secrets over a Unix socket\n"
      "(HTTP/1.1 + JSON; see docs/api.md). Signals: SIGHUP reloads the policy and limits,\n"
      "SIGTERM drains in-flight requests and exits 0.",
      "sealkeepd"};
  std::string config_path = sk::config::kDefaultConfigPath;
  bool version = false;
  bool self_check = false;
  bool check_config = false;
  app.add_option("-c,--config", config_path, "Config file (TOML; docs/config.md)")->capture_default_str();
  app.add_flag("--check-config", check_config, "Parse the config file, print what it says, and exit");
  app.add_flag("--self-check", self_check,
               "Run the crypto self-test and the memory-locking check, then exit");
  app.add_flag("--version", version, "Print the version and exit");
  CLI11_PARSE(app, argc, argv);
  if (version) {
    std::printf("sealkeepd %s\n", SEALKEEP_VERSION);
    return 0;
  }
  if (self_check) return SelfCheck();
  Harden();
  // tpm2-tss logs every failed TPM command to stderr, including ones sealkeep expects
  // (a policy check failing after a boot-state change); sealkeepd reports them itself.
  (void)::setenv("TSS2_LOG", "all+none", /*overwrite=*/0);
  if (sk::Status st = sk::RunCryptoSelfTest(); !st.ok()) {
    std::fprintf(stderr, "sealkeepd: refusing to start: %s\n", st.ToString().c_str());
    return 1;
  }
  auto config = sk::config::LoadConfig(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "sealkeepd: %s\n", config.status().ToString().c_str());
    return 2;
  }
  if (check_config) {
    std::printf("config %s is valid: state %s, socket %s, backend %s, store %s (%s anchor)\n",
                config_path.c_str(), config->state_dir.c_str(), config->socket.c_str(),
                config->backend.kind.c_str(), config->store.store_path.c_str(),
                std::string(sk::secrets::AnchorModeName(config->store.anchor_mode)).c_str());
    return 0;
  }
  return sk::RunDaemon(*config);
}
