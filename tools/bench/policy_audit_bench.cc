// The per-request cost of policy and audit, as the daemon pays it on a GET:
// one Policy::Evaluate() on a realistic policy (50 roles, 200 bindings, some with
// conditions), and one AuditWriter::Append() (buffered for reads, synced for writes).
// Run: build/tools/bench/sk_bench_policy_audit --benchmark_repetitions=5
//        --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "agent/audit/audit_verifier.h"
#include "agent/audit/audit_writer.h"
#include "agent/policy/policy.h"

namespace {

using sk::policy::Capability;

// 50 service roles (read+list on their prefix, write on their config), 200 bindings:
// 100 by unit, 50 by uid, 30 by group with a label condition, 20 by user with a time window.
std::string RealisticPolicy() {
  std::string t = "version = 1\n";
  for (int r = 0; r < 50; ++r) {
    std::string n = std::to_string(r);
    t += "[roles.svc" + n + "]\ngrants = [\n  { capabilities = [\"read\", \"list\"], paths = [\"apps/svc" +
         n + "/**\", \"shared/*/svc" + n + "\"] },\n  { capabilities = [\"write\"], paths = [\"apps/svc" + n +
         "/config\"] },\n]\n";
  }
  for (int b = 0; b < 200; ++b) {
    std::string n = std::to_string(b);
    std::string role = "svc" + std::to_string(b % 50);
    t += "[[bindings]]\nname = \"b" + n + "\"\nroles = [\"" + role + "\"]\n";
    if (b < 100) {
      t += "match = { unit = \"svc" + n + ".service\" }\n";
    } else if (b < 150) {
      t += "match = { uid = " + std::to_string(2000 + b) + " }\n";
    } else if (b < 180) {
      t += "match = { group = \"team" + n + "\" }\nwhen.labels = { env = [\"prod\", \"staging\"] }\n";
    } else {
      t += "match = { user = \"user" + n +
           "\" }\nwhen.time = { from = \"00:00\", to = \"24:00\", zone = \"utc\" }\n";
    }
  }
  return t;
}

std::shared_ptr<const sk::policy::Policy> Policy() {
  static std::shared_ptr<const sk::policy::Policy> p = [] {
    auto r = sk::policy::ParsePolicy(RealisticPolicy(), "bench.toml");
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      std::abort();
    }
    return *r;
  }();
  return p;
}

sk::policy::Subject Caller(std::string unit) {
  sk::policy::Subject s;
  s.uid = 998;
  s.gid = 998;
  s.pid = 4242;
  s.user = "svc";
  s.gids = {998};
  s.groups = {"svc"};
  s.unit = std::move(unit);
  s.exe = "/usr/bin/svc";
  return s;
}

// A caller matched by binding 99 of 200 (half the policy scanned), allowed.
void BM_PolicyEvaluateAllowed(benchmark::State& state) {
  auto p = Policy();
  sk::policy::Subject s = Caller("svc99.service");
  sk::policy::Labels labels{{"env", "prod"}};
  for (auto _ : state) {
    sk::policy::Decision d = p->Evaluate({s, Capability::kRead, "apps/svc49/db/password", &labels});
    benchmark::DoNotOptimize(d);
    if (!d.allowed) state.SkipWithError("expected allowed");
  }
}
BENCHMARK(BM_PolicyEvaluateAllowed);

// A caller no binding matches: every binding is looked at (the worst case), denied.
void BM_PolicyEvaluateDenied(benchmark::State& state) {
  auto p = Policy();
  sk::policy::Subject s = Caller("stranger.service");
  for (auto _ : state) {
    sk::policy::Decision d = p->Evaluate({s, Capability::kRead, "apps/svc49/db/password"});
    benchmark::DoNotOptimize(d);
    if (d.allowed) state.SkipWithError("expected denied");
  }
}
BENCHMARK(BM_PolicyEvaluateDenied);

// Evaluate plus the list-visibility check a denied GET also makes.
void BM_PolicyEvaluateDeniedWithVisibility(benchmark::State& state) {
  auto p = Policy();
  sk::policy::Subject s = Caller("svc3.service");
  auto now = std::chrono::system_clock::now();
  for (auto _ : state) {
    sk::policy::Decision d = p->Evaluate({s, Capability::kWrite, "apps/svc3/db", nullptr, now});
    bool visible = p->MayLearnExists(s, "apps/svc3/db", nullptr, now);
    benchmark::DoNotOptimize(d);
    benchmark::DoNotOptimize(visible);
  }
}
BENCHMARK(BM_PolicyEvaluateDeniedWithVisibility);

sk::audit::AuditRecord GetRecord() {
  sk::audit::AuditRecord r;
  r.request_id = "01J0ZK3V6Y8Q2M4N5P7R9S1T3V";
  r.peer = {998, 998, 4242, "svc99.service", "/usr/bin/svc"};
  r.route = "GET /v1/secrets/{path}";
  r.path = "apps/svc49/db/password";
  r.outcome = sk::audit::AuditOutcome::kAllowed;
  r.reason = "allowed";
  return r;
}

void AuditAppend(benchmark::State& state, sk::audit::AuditWriter::Durability durability) {
  // $SK_BENCH_DIR picks the file system to measure (default: the system temp folder).
  const char* base = std::getenv("SK_BENCH_DIR");
  std::string dir = (base != nullptr ? std::string(base) : std::filesystem::temp_directory_path().string()) +
                    "/sk-bench-audit-" + std::to_string(::getpid());
  sk::SecretBytes key(32);
  sk::audit::AuditWriterOptions o;
  o.dir = dir;
  auto w = sk::audit::AuditWriter::Open(o, key);
  if (!w.ok()) {
    state.SkipWithError(w.status().ToString().c_str());
    return;
  }
  sk::audit::AuditRecord r = GetRecord();
  for (auto _ : state) {
    if (!(*w)->Append(r, durability).ok()) state.SkipWithError("append failed");
  }
  (void)(*w)->Close();
  std::filesystem::remove_all(dir);
}

void BM_AuditAppendBufferedRead(benchmark::State& state) {
  AuditAppend(state, sk::audit::AuditWriter::Durability::kBuffered);
}
BENCHMARK(BM_AuditAppendBufferedRead);

void BM_AuditAppendSyncedWrite(benchmark::State& state) {
  AuditAppend(state, sk::audit::AuditWriter::Durability::kSync);
}
BENCHMARK(BM_AuditAppendSyncedWrite);

// Encoding and MAC alone (no file system): the floor under both appends.
void BM_AuditEncodeAndMac(benchmark::State& state) {
  sk::SecretBytes key(32);
  sk::Hmac hmac(key);
  sk::audit::AuditRecord r = GetRecord();
  sk::Digest prev{};
  std::uint64_t seq = 1;
  for (auto _ : state) {
    std::string body = sk::audit::EncodeRecordBody(seq++, r);
    prev = sk::audit::ChainMac(hmac, prev, body);
    std::string line = sk::audit::SealLine(body, prev);
    benchmark::DoNotOptimize(line);
  }
}
BENCHMARK(BM_AuditEncodeAndMac);

}  // namespace

BENCHMARK_MAIN();
