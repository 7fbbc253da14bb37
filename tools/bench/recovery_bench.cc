// Recovery and backup throughput (issue 20, docs/recovery.md): a store of N versions on a
// real SoftHSM2 token; then, timed, each in versions per second:
//   wrap     RecoveryWrapBatch (500 per batch) of every version to a new recovery key
//   backup   CreateBackup (SQLite online backup from one read transaction, sealed manifest)
//   verify   VerifyBackupWithShares (offline: the recovery key from 3 of 5 shares)
//   restore  RestoreOntoNewHardware onto a fresh swtpm (adopt, re-wrap under the TPM's key,
//            full verification on the TPM alone)
// and the cost of a put with a recovery key against one without (p50 of 2,000 puts each,
// on two fresh stores of the same token, before the bulk).
//
//   build/tools/bench/sk_bench_recovery [--versions 100000] [--reps 3]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "agent/secrets/recovery_backend.h"
#include "crypto/recovery_share.h"
#include "hsm/tpm/provision.h"
#include "hsm/tpm/tpm_backend.h"
#include "tests/fixtures/softhsm.h"
#include "tests/fixtures/swtpm.h"
#include "tests/fixtures/temp_dir.h"

namespace {

using Clock = std::chrono::steady_clock;
using sk::secrets::Actor;

double Seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void Check(const sk::Status& st, const char* what) {
  if (!st.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, st.ToString().c_str());
    std::exit(1);
  }
}

double PutP50(sk::secrets::SecretService& svc, const Actor& actor, const std::string& prefix) {
  std::vector<double> us;
  std::string value(64, 'v');
  for (int i = 0; i < 2000; ++i) {
    auto t0 = Clock::now();
    Check(sk::secrets::Put(svc, prefix + std::to_string(i % 50), sk::AsBytes(value), actor).status(), "put");
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  return Median(us);
}

struct Run {
  double wrap_s = 0, backup_s = 0, verify_s = 0, restore_s = 0;
  double put_plain_us = 0, put_recovery_us = 0;
  std::uintmax_t backup_bytes = 0;
};

Run OneRun(std::uint64_t versions) {
  Run r;
  sk::testing::TempDir dir("bench-recovery");
  sk::testing::SoftHsmToken token(dir.path());
  // One store per token (a token anchors one store): two more for the put figures.
  sk::testing::SoftHsmToken token_plain(dir.path(), "plain"), token_key(dir.path(), "withkey");
  auto backend = token.Open();
  Check(backend.status(), "open token");
  std::shared_ptr<sk::hsm::KeyBackend> a(std::move(backend).value());
  sk::secrets::ServiceOptions o;
  o.store_path = dir.Join("store.db");
  auto svc = sk::secrets::SecretService::Open(a, o);
  Check(svc.status(), "open store");
  Actor actor("bench");
  {
    // The put's own cost, with and without a recovery key, on two small fresh stores.
    sk::secrets::ServiceOptions p = o;
    p.store_path = dir.Join("plain.db");
    auto tb = token_plain.Open();
    Check(tb.status(), "open token");
    auto plain =
        sk::secrets::SecretService::Open(std::shared_ptr<sk::hsm::KeyBackend>(std::move(tb).value()), p);
    Check(plain.status(), "open plain store");
    r.put_plain_us = PutP50(**plain, actor, "plain/");
    plain->reset();
  }
  const std::string value(64, 'x');
  for (std::uint64_t done = 0; done < versions;) {
    std::vector<sk::secrets::Op> ops;
    for (int i = 0; i < 1000 && done < versions; ++i, ++done) {
      sk::secrets::Op op;
      op.path = "bench/" + std::to_string(done % 50000);
      op.value = sk::SecretBytes::CopyFrom(sk::AsBytes(value));
      ops.push_back(std::move(op));
    }
    Check((*svc)->Transact(std::move(ops), "", actor).status(), "populate");
  }
  auto t0 = Clock::now();
  auto init = (*svc)->InitRecovery(3, 5, false, actor);
  Check(init.status(), "recovery init");
  for (;;) {
    auto n = (*svc)->RecoveryWrapBatch(500);
    Check(n.status(), "wrap batch");
    if (*n == 0) break;
  }
  r.wrap_s = Seconds(t0);
  {
    sk::secrets::ServiceOptions p = o;
    p.store_path = dir.Join("recovery.db");
    auto tb = token_key.Open();
    Check(tb.status(), "open token");
    auto with_key =
        sk::secrets::SecretService::Open(std::shared_ptr<sk::hsm::KeyBackend>(std::move(tb).value()), p);
    Check(with_key.status(), "open second store");
    Check((*with_key)->InitRecovery(2, 3, false, actor).status(), "recovery init");
    r.put_recovery_us = PutP50(**with_key, actor, "wrapped/");
  }

  const std::string backup = dir.Join("a.backup");
  t0 = Clock::now();
  auto m = (*svc)->CreateBackup(backup);
  Check(m.status(), "backup");
  r.backup_s = Seconds(t0);
  r.backup_bytes = std::filesystem::file_size(backup);
  svc->reset();
  a.reset();

  std::vector<sk::RecoveryShare> shares;
  for (int i : {0, 2, 4}) {
    auto s = sk::ParseRecoveryShare(sk::AsChars(init->shares[static_cast<std::size_t>(i)].Expose()));
    Check(s.status(), "share");
    shares.push_back(std::move(s).value());
  }
  auto key = sk::CombineRecoveryShares(shares);
  Check(key.status(), "combine");
  auto opener_r = sk::RecoveryOpener::Create(std::move(key).value());
  Check(opener_r.status(), "opener");
  std::shared_ptr<sk::RecoveryOpener> opener(std::move(opener_r).value());

  const std::string work = dir.Join("work");
  std::filesystem::create_directories(work);
  t0 = Clock::now();
  auto check = sk::secrets::VerifyBackupWithShares(backup, opener, work);
  Check(check.status(), "verify");
  r.verify_s = Seconds(t0);
  if (!check->report.ok) {
    std::fprintf(stderr, "the backup does not verify\n");
    std::exit(1);
  }

  sk::testing::TempDir hostb("bench-recovery-b");
  sk::testing::Swtpm swtpm(hostb.path());
  sk::hsm::TpmConfig tpm = swtpm.Config(hostb.Join("tpm"));
  std::filesystem::create_directories(tpm.state_dir);
  Check(sk::hsm::tpm::ProvisionTpm(tpm).status(), "provision swtpm");
  auto b = sk::hsm::tpm::OpenTpmBackend(tpm);
  Check(b.status(), "open swtpm");
  sk::secrets::ServiceOptions bo;
  bo.store_path = hostb.Join("store.db");
  t0 = Clock::now();
  auto restored = sk::secrets::RestoreOntoNewHardware(
      backup, opener, std::shared_ptr<sk::hsm::KeyBackend>(std::move(b).value()), bo, actor);
  Check(restored.status(), "restore");
  r.restore_s = Seconds(t0);
  if (!restored->report.ok) {
    std::fprintf(stderr, "the restored store does not verify\n");
    std::exit(1);
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t versions = 100000;
  int reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--versions") versions = std::strtoull(argv[i + 1], nullptr, 10);
    if (flag == "--reps") reps = std::atoi(argv[i + 1]);
  }
  ::setenv("TSS2_LOG", "all+none", 1);
  std::vector<Run> runs;
  for (int i = 0; i < reps; ++i) {
    runs.push_back(OneRun(versions));
    std::fprintf(stderr, "run %d of %d done\n", i + 1, reps);
  }
  auto med = [&](double Run::*field) {
    std::vector<double> v;
    for (const Run& r : runs) v.push_back(r.*field);
    return Median(v);
  };
  const double n = static_cast<double>(versions);
  std::printf("recovery and backup, %llu versions, median of %d runs (SoftHSM2 -> swtpm):\n",
              static_cast<unsigned long long>(versions), reps);
  std::printf("  wrap to a new recovery key  %8.2f s  %9.0f versions/s\n", med(&Run::wrap_s),
              n / med(&Run::wrap_s));
  std::printf("  backup create               %8.2f s  %9.0f versions/s  (%.1f MiB)\n", med(&Run::backup_s),
              n / med(&Run::backup_s), static_cast<double>(runs[0].backup_bytes) / (1024.0 * 1024.0));
  std::printf("  backup verify (shares)      %8.2f s  %9.0f versions/s\n", med(&Run::verify_s),
              n / med(&Run::verify_s));
  std::printf("  restore onto a new swtpm    %8.2f s  %9.0f versions/s\n", med(&Run::restore_s),
              n / med(&Run::restore_s));
  std::printf("  put p50 without / with a recovery key: %.0f us / %.0f us (%.2fx)\n", med(&Run::put_plain_us),
              med(&Run::put_recovery_us), med(&Run::put_recovery_us) / med(&Run::put_plain_us));
  return 0;
}
