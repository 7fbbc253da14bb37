// The crash test's worker: opens the service on a given SoftHSM2 token and store, runs a
// mixed workload (puts, 3-path transactions, rollbacks, idempotent retries) on several
// threads, and prints one line per acknowledged commit on stdout, flushed at once. The
// parent kills it with SIGKILL at a random moment and checks every acknowledged line.
//
//   sk_crash_worker pkcs11 CONF TOKEN PIN_FILE STORE MODE SEED
//   sk_crash_worker tpm TCTI TPM_STATE_DIR STORE MODE SEED
// Lines: "ready", "put PATH VERSION VALUE", "txn T VERSION VALUE", "rb PATH VERSION VALUE",
// and "window" when SK_CRASH_WINDOW=1 and a batch sits between store sync and anchor update.
// An idempotent transaction (puts of VALUE to x/T/a, x/T/b, x/T/c under KEY) is announced
// before it is sent, "send T KEY VALUE", and acknowledged as "txn T VERSION VALUE KEY TXN_ID",
// so the parent can retry it after the kill.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "agent/secrets/service.h"
#include "hsm/backend_config.h"

namespace {

std::mutex g_out;

void Say(const std::string& line) {
  std::lock_guard lock(g_out);
  std::string l = line + "\n";
  ssize_t n = ::write(STDOUT_FILENO, l.data(), l.size());  // one write: a line is whole or absent
  (void)n;
}

sk::secrets::Op Put(const std::string& path, const std::string& value) {
  sk::secrets::Op op;
  op.type = sk::secrets::Op::Type::kPut;
  op.path = path;
  op.value = sk::SecretBytes::CopyFrom(sk::AsBytes(value));
  return op;
}

void Work(sk::secrets::SecretService& svc, int t, unsigned seed) {
  std::mt19937 rng(seed * 7919u + static_cast<unsigned>(t));
  sk::secrets::Actor actor{"crash-worker"};
  std::map<std::string, std::map<std::uint64_t, std::string>> mine;  // what this thread wrote
  for (int n = 0;; ++n) {
    std::string value = std::to_string(t) + ":" + std::to_string(seed) + ":" + std::to_string(n);
    int kind = static_cast<int>(rng() % 10);
    if (kind < 5) {
      std::string path = "c/" + std::to_string(t) + "/" + std::to_string(rng() % 4);
      auto r = sk::secrets::Put(svc, path, sk::AsBytes(value), actor);
      if (!r.ok()) continue;
      mine[path][r->results[0].version] = value;
      Say("put " + path + " " + std::to_string(r->results[0].version) + " " + value);
    } else if (kind < 8) {
      std::vector<sk::secrets::Op> ops;
      for (const char* leaf : {"a", "b", "c"})
        ops.push_back(Put("x/" + std::to_string(t) + "/" + leaf, value));
      std::string key =
          (kind == 7) ? "idem-" + std::to_string(t) + "-" + std::to_string(seed) + "-" + std::to_string(n)
                      : "";
      if (!key.empty()) Say("send " + std::to_string(t) + " " + key + " " + value);
      auto r = svc.Transact(std::move(ops), key, actor);
      if (!r.ok()) continue;
      if (!key.empty()) {  // a retry must change nothing
        std::vector<sk::secrets::Op> again;
        for (const char* leaf : {"a", "b", "c"})
          again.push_back(Put("x/" + std::to_string(t) + "/" + leaf, value));
        auto r2 = svc.Transact(std::move(again), key, actor);
        if (r2.ok() && !r2->replayed) Say("BUG idempotent retry applied twice");
      }
      Say("txn " + std::to_string(t) + " " + std::to_string(r->results[0].version) + " " + value +
          (key.empty() ? "" : " " + key + " " + r->txn_id));
    } else {
      if (mine.empty()) continue;
      auto it = mine.begin();
      std::advance(it, static_cast<long>(rng() % mine.size()));
      auto& versions = it->second;
      auto target = versions.begin();
      std::advance(target, static_cast<long>(rng() % versions.size()));
      auto r = sk::secrets::Rollback(svc, it->first, target->first, actor);
      if (!r.ok()) continue;
      std::string v = target->second;
      versions[r->results[0].version] = v;
      Say("rb " + it->first + " " + std::to_string(r->results[0].version) + " " + v);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string kind = argc > 1 ? argv[1] : "";
  if (!((kind == "pkcs11" && argc == 8) || (kind == "tpm" && argc == 7))) {
    std::fprintf(stderr,
                 "usage: sk_crash_worker pkcs11 CONF TOKEN PIN_FILE STORE MODE SEED\n"
                 "       sk_crash_worker tpm TCTI TPM_STATE_DIR STORE MODE SEED\n");
    return 2;
  }
  sk::hsm::BackendConfig bc;
  bc.kind = kind;
  if (kind == "pkcs11") {
    ::setenv("SOFTHSM2_CONF", argv[2], 1);
    bc.pkcs11.token_label = argv[3];
    bc.pkcs11.pin_file = argv[4];
    argv += 4;
  } else {
    ::setenv("TSS2_LOG", "all+none", 1);
    bc.tpm.tcti = argv[2];
    bc.tpm.state_dir = argv[3];
    argv += 3;
  }
  // argv[1..3] are now STORE MODE SEED.
  auto backend = sk::hsm::OpenBackend(bc);
  if (!backend.ok()) {
    std::fprintf(stderr, "worker: %s\n", backend.status().ToString().c_str());
    return 1;
  }
  static sk::secrets::FaultHooks hooks;
  bool window = std::getenv("SK_CRASH_WINDOW") != nullptr;
  unsigned seed = static_cast<unsigned>(std::strtoul(argv[3], nullptr, 10));
  hooks.after_store_commit = [window, seed] {
    static std::atomic<unsigned> n{0};
    if (window && ++n > 3) {
      Say("window");
      ::usleep(500'000);  // the parent kills us here: store synced, anchor not yet moved
    } else if ((seed + n++) % 3 == 0) {
      ::usleep(300);  // widen the window for random kills too
    }
  };
  sk::secrets::ServiceOptions o;
  o.store_path = argv[1];
  o.anchor_mode =
      std::string(argv[2]) == "strict" ? sk::secrets::AnchorMode::kStrict : sk::secrets::AnchorMode::kEpoch;
  o.epoch_interval = std::chrono::milliseconds(20);
  o.hooks = &hooks;
  auto svc =
      sk::secrets::SecretService::Open(std::shared_ptr<sk::hsm::KeyBackend>(std::move(backend).value()), o);
  if (!svc.ok()) {
    std::fprintf(stderr, "worker: %s\n", svc.status().ToString().c_str());
    Say("open-failed " + std::string(svc.status().reason()));
    return 1;
  }
  Say("ready");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back([&, t] { Work(**svc, t, seed); });
  for (auto& th : threads) th.join();
  return 0;
}
