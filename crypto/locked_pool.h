// LockedPool: the memory behind every SecretBytes.
//
// Secret buffers must not reach swap or a core dump, and must be wiped when freed.
// mlock() works on whole pages and per process is capped by RLIMIT_MEMLOCK, so
// giving each small key its own page would waste the cap quickly. The pool instead
// maps arenas of kArenaBytes, mlock()s them, marks them MADV_DONTDUMP and
// MADV_DONTFORK (a child process never inherits secrets), and carves them into
// power-of-two blocks from 16 B to 64 KiB kept on per-class free stacks. Larger
// requests get a mapping of their own with the same protections.
//
// Free() wipes a block (volatile writes the compiler cannot drop) before it becomes
// reusable, and block metadata never lives inside a block, so freed memory is all
// zero. Arenas are never unmapped; their size is bounded by the peak secret load.
//
// If mlock() fails (RLIMIT_MEMLOCK too small and no CAP_IPC_LOCK) the memory is still
// excluded from dumps and wiped, and Stats().lock_failures counts it so the daemon can
// warn loudly at start-up (systemd units should set LimitMEMLOCK=).
//
// Thread-safe: one mutex guards the free stacks.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sk {

class LockedPool {
 public:
  static constexpr std::size_t kArenaBytes = 256 * 1024;
  static constexpr std::size_t kMaxPooledBlock = 64 * 1024;

  struct Stats {
    std::size_t bytes_mapped = 0;   // arenas and large mappings
    std::size_t bytes_in_use = 0;   // block sizes currently handed out
    std::size_t lock_failures = 0;  // mappings mlock() refused
  };

  static LockedPool& Instance();

  // Returns a zero-filled block of at least n bytes (n > 0), or nullptr when the
  // system is out of memory.
  void* Allocate(std::size_t n);
  // Wipes and releases a block from Allocate(p's size n, the same n as allocated).
  void Free(void* p, std::size_t n);

  Stats GetStats() const;

 private:
  LockedPool() = default;
  struct Impl;
  Impl& impl() const;
};

// Overwrites n bytes at p with zeros in a way the optimizer keeps.
void SecureWipe(void* p, std::size_t n);

}  // namespace sk
