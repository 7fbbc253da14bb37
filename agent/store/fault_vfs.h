// The storage fault seam: a VFS shim over SQLite's default VFS, registered as "sk-fault".
//
// A store opened with vfs "sk-fault" behaves exactly like the default until a test arms
// a fault; production opens the default VFS and never pays for the shim. Armed faults
// apply to the next matching calls in any connection of the process:
//   - fail_syncs:   xSync returns SQLITE_IOERR_FSYNC (the bytes may or may not be on disk,
//                   as after a real fsync failure);
//   - short_writes: xWrite to a WAL or journal file writes the first half of the buffer
//                   and returns SQLITE_IOERR_WRITE (a torn write);
//   - fail_writes:  xWrite returns SQLITE_FULL without writing (a full disk).
// Counters are atomics; arm them from the test thread. Counts say how many faults fired.
#pragma once

#include <atomic>

namespace sk::store {

inline constexpr const char* kFaultVfsName = "sk-fault";

struct FaultPlan {
  std::atomic<int> fail_syncs{0};
  std::atomic<int> short_writes{0};
  std::atomic<int> fail_writes{0};
  std::atomic<int> fired{0};
  void Clear() {
    fail_syncs = 0;
    short_writes = 0;
    fail_writes = 0;
  }
};

// Registers the shim (idempotent, thread-safe) and returns the process-wide plan.
FaultPlan& FaultVfs();

}  // namespace sk::store
