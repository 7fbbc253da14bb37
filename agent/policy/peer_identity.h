// Building a Subject for a caller, from what the kernel says about it.
//
// The daemon accepts a connection and calls IdentifyConnection(): SO_PEERCRED (pid, uid,
// gid) is authoritative; the subject's uid, gid and pid are always the kernel's, and its
// user and primary group names come from them. /proc only adds to that:
//   /proc/<pid>/cgroup  -> systemd unit and user unit (ParseSystemdUnits)
//   /proc/<pid>/exe     -> executable path, kept only when the file at that path (as the
//                          agent sees it) has the device and inode of the one the caller
//                          runs, and the caller is in the agent's user namespace
//   /proc/<pid>/status  -> supplementary groups, and the effective uid as a cross-check
//   /proc/<pid>/stat    -> the start time, against pid reuse without a peer pidfd
// When /proc cannot be read (the process is gone, or /proc hides other users' processes:
// ProtectProc=invisible, hidepid=), the unit, exe and supplementary groups stay empty, so
// bindings on uid or primary gid still match and bindings on unit, exe or a supplementary
// group simply do not. Names come from getpwuid_r/getgrgid_r (NSS: may block on a remote
// directory; call it from a worker thread, not an event loop, when NSS is remote).
//
// Pid reuse. The /proc reads describe the caller only if its pid still names the process
// that connected. With a pidfd from SO_PEERPIDFD (Linux 6.5+) that pidfd *is* the caller:
// the reads count when it has not exited after them (poll() on the pidfd, which needs no
// permission to signal the caller, so a non-root agent can do it). Without one (older
// kernels, or SO_PEERPIDFD failing) the pid is only a number: the process found there must
// have started no later than the connection was accepted (its /proc start time, in clock
// ticks of 10 ms), have the SO_PEERCRED uid as its effective uid, and, where pidfd_open
// gives a pidfd, still be alive after the reads. Any check failing drops what /proc said,
// as if it could not be read: a reused pid never lends its unit, exe or groups to another
// caller. Thread-safe (no shared state).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "agent/policy/subject.h"
#include "crypto/status.h"

namespace sk::policy {

struct PeerCredentials {
  std::int32_t pid = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  int pidfd = -1;                // borrowed; -1 when there is none
  bool pidfd_from_peer = false;  // the pidfd came from SO_PEERPIDFD: it is the connecting process
  // CLOCK_BOOTTIME (ns) once the connection was accepted, so after it was made; 0 when
  // unknown. Without a peer pidfd, a process at `pid` that started later is someone else.
  std::uint64_t accepted_boottime_ns = 0;
};

// Never fails. `*partial` (when given) gets why the /proc attributes are missing, or ""
// when they were read; it names a pid and a path, nothing secret, for a debug log line.
// `proc_root` lets tests point at a fake /proc.
Subject SubjectFromPeer(const PeerCredentials& peer, const std::string& proc_root = "/proc",
                        std::string* partial = nullptr);

struct IdentifyOptions {
  // false: never asks for SO_PEERPIDFD, as on a kernel before 6.5 (tests force the fallback).
  bool use_peer_pidfd = true;
  std::string proc_root = "/proc";
  // Test seam for pid reuse: runs once SO_PEERCRED is read and before any pidfd is taken
  // or /proc read, with the peer's pid.
  std::function<void(pid_t)> after_peer_credentials;
};

// Identifies the peer of a connected Unix stream socket `fd`, as described above.
// Fails (unavailable) only when the kernel gives no SO_PEERCRED.
Result<Subject> IdentifyConnection(int fd, const IdentifyOptions& options = {},
                                   std::string* partial = nullptr);

// CLOCK_BOOTTIME now, in nanoseconds.
std::uint64_t BoottimeNowNs();

// A subject for `uid` as the user databases describe it (name, primary gid unless `gid`
// is given, supplementary groups from getgrouplist), with no pid, unit or exe. For
// `sealkeep policy explain` and tests: what a login session of that user would present.
Subject SubjectForUser(std::uint32_t uid, std::optional<std::uint32_t> gid = std::nullopt);

// passwd / group names; "" when there is no entry.
std::string UserName(std::uint32_t uid);
std::string GroupName(std::uint32_t gid);

}  // namespace sk::policy
