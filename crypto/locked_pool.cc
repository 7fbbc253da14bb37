#include "crypto/locked_pool.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <mutex>
#include <vector>

#include <mbedtls/platform_util.h>

namespace sk {
namespace {

constexpr std::size_t kMinBlock = 16;
constexpr int kClasses = 13;  // 16 B .. 64 KiB

int ClassOf(std::size_t n) {
  std::size_t size = n <= kMinBlock ? kMinBlock : std::bit_ceil(n);
  return std::countr_zero(size) - std::countr_zero(kMinBlock);
}
std::size_t ClassSize(int c) { return kMinBlock << c; }

// Maps `bytes` of private memory, locked and excluded from dumps and forks.
void* MapProtected(std::size_t bytes, std::size_t& lock_failures) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  madvise(p, bytes, MADV_DONTDUMP);
  madvise(p, bytes, MADV_DONTFORK);
  // The raw system call: sanitizer runtimes intercept mlock() and make it a no-op, and
  // sanitized builds must lock secrets exactly as release builds do.
  if (syscall(SYS_mlock, p, bytes) != 0) ++lock_failures;
  return p;
}

}  // namespace

struct LockedPool::Impl {
  mutable std::mutex mu;
  std::array<std::vector<void*>, kClasses> free_blocks;
  Stats stats;
};

LockedPool& LockedPool::Instance() {
  static LockedPool pool;
  return pool;
}

LockedPool::Impl& LockedPool::impl() const {
  // Never destroyed: SecretBytes with static lifetime may be freed during exit.
  static Impl* impl = new Impl();
  return *impl;
}

void* LockedPool::Allocate(std::size_t n) {
  if (n == 0) n = 1;
  Impl& im = impl();
  std::lock_guard lock(im.mu);
  if (n > kMaxPooledBlock) {
    std::size_t bytes = (n + 4095) & ~std::size_t{4095};
    void* p = MapProtected(bytes, im.stats.lock_failures);
    if (p != nullptr) {
      im.stats.bytes_mapped += bytes;
      im.stats.bytes_in_use += bytes;
    }
    return p;
  }
  int c = ClassOf(n);
  auto& stack = im.free_blocks[static_cast<std::size_t>(c)];
  if (stack.empty()) {
    auto* arena = static_cast<std::uint8_t*>(MapProtected(kArenaBytes, im.stats.lock_failures));
    if (arena == nullptr) return nullptr;
    im.stats.bytes_mapped += kArenaBytes;
    std::size_t size = ClassSize(c);
    stack.reserve(stack.size() + kArenaBytes / size);
    // Push in reverse so blocks are handed out in address order.
    for (std::size_t off = kArenaBytes; off >= size; off -= size) stack.push_back(arena + off - size);
  }
  void* p = stack.back();
  stack.pop_back();
  im.stats.bytes_in_use += ClassSize(c);
  return p;  // blocks are zero: fresh mappings are, and Free() wipes.
}

void LockedPool::Free(void* p, std::size_t n) {
  if (p == nullptr) return;
  if (n == 0) n = 1;
  Impl& im = impl();
  if (n > kMaxPooledBlock) {
    std::size_t bytes = (n + 4095) & ~std::size_t{4095};
    SecureWipe(p, bytes);
    munlock(p, bytes);
    munmap(p, bytes);
    std::lock_guard lock(im.mu);
    im.stats.bytes_mapped -= bytes;
    im.stats.bytes_in_use -= bytes;
    return;
  }
  int c = ClassOf(n);
  SecureWipe(p, ClassSize(c));
  std::lock_guard lock(im.mu);
  im.free_blocks[static_cast<std::size_t>(c)].push_back(p);
  im.stats.bytes_in_use -= ClassSize(c);
}

LockedPool::Stats LockedPool::GetStats() const {
  Impl& im = impl();
  std::lock_guard lock(im.mu);
  return im.stats;
}

void SecureWipe(void* p, std::size_t n) { mbedtls_platform_zeroize(p, n); }

}  // namespace sk
