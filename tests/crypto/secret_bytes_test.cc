// SecretBytes: locked, excluded from dumps and forks, zeroized on destruction, move and
// truncation, move-only, not printable.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>

#include "crypto/locked_pool.h"
#include "crypto/secret_bytes.h"

namespace sk {
namespace {

static_assert(!std::is_copy_constructible_v<SecretBytes>);
static_assert(!std::is_copy_assignable_v<SecretBytes>);
static_assert(std::is_nothrow_move_constructible_v<SecretBytes>);
template <typename T>
concept Printable = requires(std::ostream& o, const T& t) {
  o << t;
};
static_assert(!Printable<SecretBytes>, "a SecretBytes must not be printable");

bool AllZero(const std::uint8_t* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

// The kernel's view of the mapping holding `p`: its VmFlags line and Locked: size in kB.
struct MappingFlags {
  std::string vm_flags;
  long locked_kb = -1;
};

MappingFlags FlagsOf(const void* p) {
  auto addr = reinterpret_cast<std::uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  MappingFlags out;
  while (std::getline(smaps, line)) {
    std::uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      inside = addr >= lo && addr < hi;
      continue;
    }
    if (!inside) continue;
    if (line.rfind("Locked:", 0) == 0) out.locked_kb = std::stol(line.substr(7));
    if (line.rfind("VmFlags:", 0) == 0) {
      out.vm_flags = line.substr(8) + " ";
      return out;
    }
  }
  return out;
}

TEST(SecretBytes, BytesAreZeroAfterDestruction) {
  const std::uint8_t* where = nullptr;
  {
    SecretBytes s(48);
    std::memset(s.Expose().data(), 0xA5, s.size());
    where = s.Expose().data();
    ASSERT_FALSE(AllZero(where, 48));
  }
  // The pool keeps its arenas mapped, so the freed block can still be read.
  EXPECT_TRUE(AllZero(where, 48));
}

TEST(SecretBytes, MoveTransfersTheBufferAndEmptiesTheSource) {
  SecretBytes a(32);
  std::memset(a.Expose().data(), 0x11, 32);
  const std::uint8_t* buf = a.Expose().data();
  SecretBytes b(std::move(a));
  EXPECT_EQ(b.Expose().data(), buf) << "a move must not copy secret bytes elsewhere";
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): the contract is an empty source
  EXPECT_TRUE(a.Expose().empty());
  EXPECT_EQ(b.Expose()[31], 0x11);
}

TEST(SecretBytes, MoveAssignmentWipesTheOverwrittenBytes) {
  SecretBytes dst(32), src(32);
  std::memset(dst.Expose().data(), 0xBB, 32);
  std::memset(src.Expose().data(), 0xCC, 32);
  const std::uint8_t* old = dst.Expose().data();
  dst = std::move(src);
  EXPECT_TRUE(AllZero(old, 32)) << "the destination's previous secret must be wiped";
  EXPECT_EQ(dst.Expose()[0], 0xCC);
  EXPECT_TRUE(src.empty());  // NOLINT(bugprone-use-after-move)
}

TEST(SecretBytes, TruncateWipesTheDroppedTail) {
  SecretBytes s(32);
  std::memset(s.Expose().data(), 0x77, 32);
  const std::uint8_t* p = s.Expose().data();
  s.Truncate(8);
  EXPECT_EQ(s.size(), 8u);
  EXPECT_TRUE(AllZero(p + 8, 24));
  EXPECT_EQ(p[7], 0x77);
}

TEST(SecretBytes, MemoryIsLockedAndExcludedFromDumpsAndForks) {
  for (std::size_t n : {std::size_t{32}, std::size_t{4096}, std::size_t{200 * 1024}}) {
    SCOPED_TRACE("size " + std::to_string(n));
    SecretBytes s(n);
    MappingFlags f = FlagsOf(s.Expose().data());
    ASSERT_FALSE(f.vm_flags.empty()) << "mapping not found in /proc/self/smaps";
    EXPECT_NE(f.vm_flags.find(" lo "), std::string::npos) << "not mlock()ed: " << f.vm_flags;
    EXPECT_NE(f.vm_flags.find(" dd "), std::string::npos) << "not MADV_DONTDUMP: " << f.vm_flags;
    EXPECT_NE(f.vm_flags.find(" dc "), std::string::npos) << "not MADV_DONTFORK: " << f.vm_flags;
    EXPECT_GT(f.locked_kb, 0);
  }
  EXPECT_EQ(LockedPool::Instance().GetStats().lock_failures, 0u);
}

TEST(SecretBytes, CloneIsExplicitAndEqualityIsByContent) {
  SecretBytes a = SecretBytes::CopyFrom(std::vector<std::uint8_t>{1, 2, 3});
  SecretBytes b = a.Clone();
  EXPECT_NE(a.Expose().data(), b.Expose().data());
  EXPECT_TRUE(a.Equals(b));
  b.Expose()[2] = 4;
  EXPECT_FALSE(a.Equals(b));
  EXPECT_FALSE(a.Equals(SecretBytes(2)));
}

TEST(LockedPool, ReusedBlocksAreHandedOutZeroed) {
  std::vector<SecretBytes> many;
  for (int i = 0; i < 100; ++i) {
    SecretBytes s(64);
    std::memset(s.Expose().data(), 0xEE, 64);
    many.push_back(std::move(s));
  }
  many.clear();
  for (int i = 0; i < 100; ++i) {
    SecretBytes s(64);
    EXPECT_TRUE(AllZero(s.Expose().data(), 64));
  }
}

}  // namespace
}  // namespace sk
