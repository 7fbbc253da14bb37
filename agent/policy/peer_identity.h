// Building a Subject for a caller, from what the kernel says about it.
//
// The daemon accepts a connection, reads SO_PEERCRED (pid, uid, gid) and, where the
// kernel has it, SO_PEERPIDFD, then calls SubjectFromPeer(). SO_PEERCRED is
// authoritative: the subject's uid, gid and pid are always the kernel's, and its user
// and primary group names come from them. /proc only adds to that:
//   /proc/<pid>/cgroup  -> systemd unit (ParseSystemdUnit)
//   /proc/<pid>/exe     -> executable path (readlink; empty when not permitted)
//   /proc/<pid>/status  -> supplementary groups, and the effective uid as a cross-check
// When /proc cannot be read (the process is gone, or /proc hides other users' processes:
// ProtectProc=invisible, hidepid=), the unit, exe and supplementary groups stay empty, so
// bindings on uid or primary gid still match and bindings on unit, exe or a supplementary
// group simply do not. Names come from getpwuid_r/getgrgid_r (NSS: may block on a remote
// directory; call it from a worker thread, not an event loop, when NSS is remote).
//
// Pid reuse: with a pidfd, the /proc reads are trusted only if the process is still
// alive after them (pidfd_send_signal(pidfd, 0)). Without one, status's effective uid
// must still equal the SO_PEERCRED uid. Either check failing drops what /proc said, as
// if it could not be read: a reused pid never lends its unit to another caller.
// Thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "agent/policy/subject.h"
#include "crypto/status.h"

namespace sk::policy {

struct PeerCredentials {
  std::int32_t pid = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  int pidfd = -1;  // borrowed; -1 when the kernel gave none
};

// Never fails. `*partial` (when given) gets why the /proc attributes are missing, or ""
// when they were read; it names a pid and a path, nothing secret, for a debug log line.
// `proc_root` lets tests point at a fake /proc.
Subject SubjectFromPeer(const PeerCredentials& peer, const std::string& proc_root = "/proc",
                        std::string* partial = nullptr);

// A subject for `uid` as the user databases describe it (name, primary gid unless `gid`
// is given, supplementary groups from getgrouplist), with no pid, unit or exe. For
// `sealkeep policy explain` and tests: what a login session of that user would present.
Subject SubjectForUser(std::uint32_t uid, std::optional<std::uint32_t> gid = std::nullopt);

// passwd / group names; "" when there is no entry.
std::string UserName(std::uint32_t uid);
std::string GroupName(std::uint32_t gid);

}  // namespace sk::policy
