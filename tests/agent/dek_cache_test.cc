// DekCache: the bound (least recently used key goes first), the time-to-live (through the
// cache's clock seam, so no test sleeps), the sweep, Clear/Erase, and that cached keys are
// the caller's SecretBytes (shared, not copied) in locked memory.
#include "agent/secrets/dek_cache.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "crypto/locked_pool.h"

namespace sk::secrets {
namespace {

using std::chrono::milliseconds;

// A clock the test moves by hand.
struct ManualClock {
  DekCache::Clock::time_point now = DekCache::Clock::time_point{} + std::chrono::hours(1);
  DekCache::Now AsNow() {
    return [this] { return now; };
  }
  void Advance(milliseconds d) { now += d; }
};

std::shared_ptr<const SecretBytes> Key(std::uint8_t fill) {
  auto k = std::make_shared<SecretBytes>(32);
  for (auto& b : k->Expose()) b = fill;
  return k;
}

CachedVersion Version(std::uint8_t fill) {
  CachedVersion v;
  v.dek = Key(fill);
  v.content_digest.fill(fill);
  v.labels = "fill=" + std::to_string(fill);
  return v;
}

bool Has(DekCache& c, const std::string& path, std::uint64_t version, std::uint64_t seq) {
  return c.Get(path, version, seq).has_value();
}

// The kernel's flags (VmFlags) for the mapping holding p, from /proc/self/smaps.
std::string VmFlagsOf(const void* p) {
  auto addr = reinterpret_cast<std::uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    std::uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      inside = addr >= lo && addr < hi;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) return line.substr(8) + " ";
  }
  return "";
}

TEST(DekCache, ABoundedCacheEvictsTheLeastRecentlyUsedKey) {
  ManualClock clock;
  DekCache c(3, milliseconds(60'000), clock.AsNow());
  c.Put("a", 1, 10, Version(1));
  c.Put("b", 1, 11, Version(2));
  c.Put("c", 1, 12, Version(3));
  ASSERT_TRUE(Has(c, "a", 1, 10));  // a is now the most recently used; b the least
  c.Put("d", 1, 13, Version(4));
  EXPECT_EQ(c.size(), 3u);
  EXPECT_FALSE(Has(c, "b", 1, 11)) << "the least recently used key should have been evicted";
  EXPECT_TRUE(Has(c, "a", 1, 10));
  EXPECT_TRUE(Has(c, "c", 1, 12));
  EXPECT_TRUE(Has(c, "d", 1, 13));
  for (std::uint64_t i = 0; i < 100; ++i) c.Put("p" + std::to_string(i), 1, 100 + i, Version(5));
  EXPECT_EQ(c.size(), 3u) << "the bound holds under many puts";
}

TEST(DekCache, PuttingTheSameKeyAgainReplacesItWithoutGrowing) {
  DekCache c(2, milliseconds(60'000));
  c.Put("a", 1, 10, Version(1));
  c.Put("a", 1, 10, Version(2));
  EXPECT_EQ(c.size(), 1u);
  auto got = c.Get("a", 1, 10);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->dek->Expose()[0], 2);
  EXPECT_EQ(got->labels, "fill=2");
}

TEST(DekCache, AKeyIsOnlyFoundUnderItsPathVersionAndSeq) {
  DekCache c(8, milliseconds(60'000));
  c.Put("a", 1, 10, Version(1));
  EXPECT_TRUE(Has(c, "a", 1, 10));
  EXPECT_FALSE(Has(c, "a", 1, 11)) << "another entry's seq must not find this key";
  EXPECT_FALSE(Has(c, "a", 2, 10));
  EXPECT_FALSE(Has(c, "b", 1, 10));
  EXPECT_EQ(c.hits(), 1u);
  EXPECT_EQ(c.misses(), 3u);
}

TEST(DekCache, AnEntryIsNotReturnedOnceItsTimeToLiveHasPassed) {
  ManualClock clock;
  DekCache c(8, milliseconds(1000), clock.AsNow());
  c.Put("a", 1, 10, Version(1));
  clock.Advance(milliseconds(999));
  EXPECT_TRUE(Has(c, "a", 1, 10)) << "still within its time-to-live";
  clock.Advance(milliseconds(1));
  EXPECT_FALSE(Has(c, "a", 1, 10)) << "expired exactly at put time + ttl";
  EXPECT_EQ(c.size(), 0u) << "the lookup drops the expired entry";
}

TEST(DekCache, AHitDoesNotExtendTheTimeToLive) {
  ManualClock clock;
  DekCache c(8, milliseconds(1000), clock.AsNow());
  c.Put("a", 1, 10, Version(1));
  for (int i = 0; i < 9; ++i) {
    clock.Advance(milliseconds(100));
    ASSERT_TRUE(Has(c, "a", 1, 10));
  }
  clock.Advance(milliseconds(100));
  EXPECT_FALSE(Has(c, "a", 1, 10));
}

TEST(DekCache, SweepDropsExpiredKeysThatNobodyLooksUp) {
  ManualClock clock;
  DekCache c(8, milliseconds(1000), clock.AsNow());
  c.Put("old", 1, 10, Version(1));
  c.Put("old", 2, 11, Version(2));
  clock.Advance(milliseconds(500));
  c.Put("new", 1, 12, Version(3));
  EXPECT_EQ(c.SweepExpired(), 0u);
  EXPECT_EQ(c.size(), 3u);

  clock.Advance(milliseconds(500));  // "old" entries expire, "new" has 500 ms left
  EXPECT_EQ(c.SweepExpired(), 2u);
  EXPECT_EQ(c.size(), 1u) << "expired keys leave memory without a lookup";
  EXPECT_EQ(c.misses(), 0u) << "the sweep is not a lookup";
  EXPECT_TRUE(Has(c, "new", 1, 12));

  clock.Advance(milliseconds(500));
  EXPECT_EQ(c.SweepExpired(), 1u);
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.SweepExpired(), 0u) << "sweeping an empty cache is harmless";
}

TEST(DekCache, ClearDropsEveryKey) {
  DekCache c(8, milliseconds(60'000));
  for (std::uint64_t i = 0; i < 5; ++i) c.Put("p" + std::to_string(i), 1, i, Version(1));
  ASSERT_EQ(c.size(), 5u);
  c.Clear();
  EXPECT_EQ(c.size(), 0u);
  for (std::uint64_t i = 0; i < 5; ++i) EXPECT_FALSE(Has(c, "p" + std::to_string(i), 1, i));
}

TEST(DekCache, EraseDropsOneVersionOfOnePathOnly) {
  DekCache c(8, milliseconds(60'000));
  c.Put("a", 1, 10, Version(1));
  c.Put("a", 1, 20, Version(1));   // the same version written by another entry
  c.Put("a", 10, 11, Version(2));  // version 10: its key must not match version 1's prefix
  c.Put("ab", 1, 12, Version(3));
  c.Erase("a", 1);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_FALSE(Has(c, "a", 1, 10));
  EXPECT_FALSE(Has(c, "a", 1, 20));
  EXPECT_TRUE(Has(c, "a", 10, 11));
  EXPECT_TRUE(Has(c, "ab", 1, 12));
}

TEST(DekCache, ACapacityOfZeroCachesNothing) {
  DekCache c(0, milliseconds(60'000));
  c.Put("a", 1, 10, Version(1));
  EXPECT_EQ(c.size(), 0u);
  EXPECT_FALSE(Has(c, "a", 1, 10));
}

TEST(DekCache, CachedKeysAreTheCallersLockedSecretBytesNotCopies) {
  DekCache c(8, milliseconds(60'000));
  CachedVersion v = Version(7);
  const SecretBytes* original = v.dek.get();
  c.Put("a", 1, 10, std::move(v));
  auto got = c.Get("a", 1, 10);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->dek.get(), original) << "the key is shared, never copied out of its SecretBytes";
  EXPECT_EQ(got->dek->Expose()[31], 7);
  std::string flags = VmFlagsOf(got->dek->Expose().data());
  ASSERT_FALSE(flags.empty()) << "mapping not found in /proc/self/smaps";
  EXPECT_NE(flags.find(" lo "), std::string::npos) << "cached key not in mlock()ed memory: " << flags;
  EXPECT_NE(flags.find(" dd "), std::string::npos) << "cached key not excluded from dumps: " << flags;
  EXPECT_EQ(LockedPool::Instance().GetStats().lock_failures, 0u);

  // Once dropped from the cache, only the holders' references keep the key alive.
  std::weak_ptr<const SecretBytes> weak = got->dek;
  got.reset();
  c.Clear();
  EXPECT_TRUE(weak.expired()) << "the cache kept a reference after Clear()";
}

}  // namespace
}  // namespace sk::secrets
