// Micro-benchmarks of the crypto layer: AES-256-GCM blob seal/open by value size, and
// HMAC-SHA256 over one 256-byte journal-sized record.
// Run: build/tools/sk_bench_crypto --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "crypto/aead.h"
#include "crypto/mac.h"
#include "crypto/random.h"

namespace {

sk::SecretBytes Key() {
  auto key = sk::RandomSecret(sk::kAeadKeySize);
  if (!key.ok()) std::abort();
  return std::move(key).value();
}

void BM_AeadSeal(benchmark::State& state) {
  sk::SecretBytes key = Key();
  sk::Bytes value(static_cast<std::size_t>(state.range(0)), 0x5a);
  sk::Bytes aad = sk::ToBytes("bench/path\x00\x00\x00\x01");
  for (auto _ : state) {
    auto blob = sk::AeadSeal(key, aad, value);
    benchmark::DoNotOptimize(blob);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}

void BM_AeadOpen(benchmark::State& state) {
  sk::SecretBytes key = Key();
  sk::Bytes value(static_cast<std::size_t>(state.range(0)), 0x5a);
  sk::Bytes aad = sk::ToBytes("bench/path\x00\x00\x00\x01");
  auto blob = sk::AeadSeal(key, aad, value);
  if (!blob.ok()) std::abort();
  for (auto _ : state) {
    auto out = sk::AeadOpen(key, aad, *blob);
    if (!out.ok()) state.SkipWithError("open failed");
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}

void BM_HmacSha256Record256(benchmark::State& state) {
  sk::SecretBytes key = Key();
  sk::Hmac hmac(key);
  sk::Bytes record(256, 0x42);
  for (auto _ : state) {
    sk::Digest tag = hmac.Compute(record);
    benchmark::DoNotOptimize(tag);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_Sha256Record256(benchmark::State& state) {
  sk::Bytes record(256, 0x42);
  for (auto _ : state) {
    sk::Digest d = sk::Sha256(record);
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

}  // namespace

BENCHMARK(BM_AeadSeal)->Arg(32)->Arg(1024)->Arg(64 * 1024);
BENCHMARK(BM_AeadOpen)->Arg(32)->Arg(1024)->Arg(64 * 1024);
BENCHMARK(BM_HmacSha256Record256);
BENCHMARK(BM_Sha256Record256);
BENCHMARK_MAIN();
