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
//
// Sweeps (issue 18, docs/reliability.md) count calls from the moment they are armed:
//   - fail_sync_at = k / fail_write_at = k: the k-th xSync (0-based) fails with
//     SQLITE_IOERR_FSYNC, the k-th xWrite with `write_error` (SQLITE_FULL: a full disk, or
//     SQLITE_IOERR_WRITE), once; every other call goes through.
//   - power_fail_at = k: simulated power loss at the k-th xSync. From arming, every file
//     keeps an undo record of what it held before each write or truncate since its last
//     successful sync; when the power "fails" that sync is not made, every open file is put
//     back to its last synced image (with `tear`, the first half of each unsynced write is
//     kept instead: a torn write), and from then on every write, sync and truncate fails
//     (the machine is off) until Clear(). The test then closes the store, removes the -shm
//     file (shared memory does not survive power loss) and reopens.
//   syncs and writes count the calls seen since arming (a dry run's count is the number
//   of points to sweep). Arm only between operations, when no file has unsynced writes.
#pragma once

#include <atomic>

namespace sk::store {

inline constexpr const char* kFaultVfsName = "sk-fault";

struct FaultPlan {
  std::atomic<int> fail_syncs{0};
  std::atomic<int> short_writes{0};
  std::atomic<int> fail_writes{0};
  std::atomic<int> fired{0};
  // Sweeps: -1 = off.
  std::atomic<int> fail_sync_at{-1};
  std::atomic<int> fail_write_at{-1};
  std::atomic<int> write_error{13};  // SQLITE_FULL
  std::atomic<int> power_fail_at{-1};
  std::atomic<bool> tear{false};
  std::atomic<bool> track{false};  // keep undo records (set by ArmPowerLoss)
  std::atomic<bool> powered_off{false};
  std::atomic<int> syncs{0};
  std::atomic<int> writes{0};
  void Clear() {
    fail_syncs = 0;
    short_writes = 0;
    fail_writes = 0;
    fail_sync_at = -1;
    fail_write_at = -1;
    write_error = 13;
    power_fail_at = -1;
    tear = false;
    track = false;
    powered_off = false;
    syncs = 0;
    writes = 0;
  }
  // Starts counting calls (and keeping undo records) from now; `at` as power_fail_at
  // (-1: only count).
  void ArmPowerLoss(int at, bool torn);
  // The power fails now, outside SQLite (at another file's sync point: the hardware
  // token's): as power_fail_at, at once. Needs ArmPowerLoss first; counts as fired.
  void PowerOffNow();
};

// Registers the shim (idempotent, thread-safe) and returns the process-wide plan.
FaultPlan& FaultVfs();

}  // namespace sk::store
