#include "crypto/sha256_engine.h"

#include <mbedtls/sha256.h>

#include <algorithm>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace sk::internal {
namespace {

constexpr std::uint32_t kInit[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

#if defined(__x86_64__)
alignas(16) constexpr std::uint32_t kK[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

// Four rounds with the message words w (already in round order) and their constants.
#define SK_SHA_ROUNDS4(state0, state1, w, i)                                                         \
  do {                                                                                               \
    __m128i m_ = _mm_add_epi32((w), _mm_load_si128(reinterpret_cast<const __m128i*>(&kK[4 * (i)]))); \
    (state1) = _mm_sha256rnds2_epu32((state1), (state0), m_);                                        \
    m_ = _mm_shuffle_epi32(m_, 0x0E);                                                                \
    (state0) = _mm_sha256rnds2_epu32((state0), (state1), m_);                                        \
  } while (0)

__attribute__((target("sha,sse4.1,ssse3"))) void BlocksShaNi(std::uint32_t h[8], const std::uint8_t* data,
                                                             std::size_t nblocks) {
  const __m128i kByteSwap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  // The extensions keep the state as ABEF and CDGH.
  __m128i tmp = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&h[0]));
  __m128i state1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&h[4]));
  tmp = _mm_shuffle_epi32(tmp, 0xB1);                // CDAB
  state1 = _mm_shuffle_epi32(state1, 0x1B);          // EFGH
  __m128i state0 = _mm_alignr_epi8(tmp, state1, 8);  // ABEF
  state1 = _mm_blend_epi16(state1, tmp, 0xF0);       // CDGH

  for (std::size_t b = 0; b < nblocks; ++b, data += 64) {
    const __m128i save0 = state0, save1 = state1;
    __m128i w[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      w[i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 16 * i)), kByteSwap);
      SK_SHA_ROUNDS4(state0, state1, w[i], i);
    }
#pragma GCC unroll 12
    for (int i = 4; i < 16; ++i) {
      // W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16], four at a time.
      __m128i x = _mm_sha256msg1_epu32(w[i % 4], w[(i + 1) % 4]);
      x = _mm_add_epi32(x, _mm_alignr_epi8(w[(i + 3) % 4], w[(i + 2) % 4], 4));
      w[i % 4] = _mm_sha256msg2_epu32(x, w[(i + 3) % 4]);
      SK_SHA_ROUNDS4(state0, state1, w[i % 4], i);
    }
    state0 = _mm_add_epi32(state0, save0);
    state1 = _mm_add_epi32(state1, save1);
  }

  tmp = _mm_shuffle_epi32(state0, 0x1B);        // FEBA
  state1 = _mm_shuffle_epi32(state1, 0xB1);     // DCHG
  state0 = _mm_blend_epi16(tmp, state1, 0xF0);  // DCBA
  state1 = _mm_alignr_epi8(state1, tmp, 8);     // EFGH in memory order
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&h[0]), state0);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&h[4]), state1);
}
#undef SK_SHA_ROUNDS4

// CPUID, not __builtin_cpu_supports("sha"): clang (the fuzz build) does not know that name.
bool CpuHasShaNi() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0) return false;
  const bool ssse3 = (c & bit_SSSE3) != 0;
  const bool sse41 = (c & bit_SSE4_1) != 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return false;
  return (b & bit_SHA) != 0 && ssse3 && sse41;
}
#endif

using BlocksFn = void (*)(std::uint32_t*, const std::uint8_t*, std::size_t);

BlocksFn Choose() {
#if defined(__x86_64__)
  if (CpuHasShaNi()) return BlocksShaNi;
#endif
  return Sha256BlocksPortable;
}

// Chosen on first use, not at load: CPUID traps to the hypervisor in a VM (tens of
// microseconds), and a CLI that hashes nothing should not pay it at every start.
BlocksFn Blocks() {
  static const BlocksFn chosen = Choose();
  return chosen;
}

}  // namespace

void Sha256BlocksPortable(std::uint32_t h[8], const std::uint8_t* data, std::size_t nblocks) {
  mbedtls_sha256_context ctx;
  mbedtls_sha256_init(&ctx);
  std::memcpy(ctx.state, h, sizeof ctx.state);
  for (std::size_t b = 0; b < nblocks; ++b) (void)mbedtls_internal_sha256_process(&ctx, data + 64 * b);
  std::memcpy(h, ctx.state, sizeof ctx.state);
  mbedtls_sha256_free(&ctx);
}

void Sha256Blocks(std::uint32_t h[8], const std::uint8_t* data, std::size_t nblocks) {
  if (nblocks > 0) Blocks()(h, data, nblocks);
}

bool Sha256UsesShaNi() { return Blocks() != Sha256BlocksPortable; }

void Sha256Engine::Init() {
  std::memcpy(h, kInit, sizeof h);
  length = 0;
  buffered = 0;
}

void Sha256Engine::Update(const std::uint8_t* data, std::size_t n) {
  length += n;
  if (buffered > 0) {
    std::size_t take = std::min(n, sizeof buf - buffered);
    std::memcpy(buf + buffered, data, take);
    buffered += take;
    data += take;
    n -= take;
    if (buffered < sizeof buf) return;
    Sha256Blocks(h, buf, 1);
    buffered = 0;
  }
  std::size_t whole = n / 64;
  Sha256Blocks(h, data, whole);
  data += whole * 64;
  n -= whole * 64;
  if (n > 0) {
    std::memcpy(buf, data, n);
    buffered = n;
  }
}

void Sha256Engine::Final(std::uint8_t out[32]) {
  std::uint64_t bits = length * 8;
  buf[buffered++] = 0x80;
  if (buffered > 56) {
    std::memset(buf + buffered, 0, sizeof buf - buffered);
    Sha256Blocks(h, buf, 1);
    buffered = 0;
  }
  std::memset(buf + buffered, 0, 56 - buffered);
  for (int i = 0; i < 8; ++i) buf[56 + i] = static_cast<std::uint8_t>(bits >> (56 - 8 * i));
  Sha256Blocks(h, buf, 1);
  for (int i = 0; i < 8; ++i) {
    out[4 * i] = static_cast<std::uint8_t>(h[i] >> 24);
    out[4 * i + 1] = static_cast<std::uint8_t>(h[i] >> 16);
    out[4 * i + 2] = static_cast<std::uint8_t>(h[i] >> 8);
    out[4 * i + 3] = static_cast<std::uint8_t>(h[i]);
  }
  std::memset(buf, 0, sizeof buf);
  buffered = 0;
}

}  // namespace sk::internal
