// Building a Subject for a caller, from what the kernel says about it.
//
// The daemon accepts a connection, reads SO_PEERCRED (pid, uid, gid) and, where the
// kernel has it, SO_PEERPIDFD, then calls SubjectFromPeer(). That reads
//   /proc/<pid>/cgroup  -> systemd unit (ParseSystemdUnit)
//   /proc/<pid>/exe     -> executable path (readlink; empty when not permitted)
//   /proc/<pid>/status  -> supplementary groups, and the effective uid as a cross-check
// and names the uid and gids with getpwuid_r/getgrgid_r (NSS: may block on a remote
// directory; call it from a worker thread, not an event loop, when NSS is remote).
//
// Pid reuse: with a pidfd, the reads are trusted only if the process is still alive
// after them (pidfd_send_signal(pidfd, 0)). Without one, status's effective uid must
// still equal the SO_PEERCRED uid. Either check failing gives failed_precondition
// "peer_gone": the daemon denies the request rather than guess.
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

// `proc_root` lets tests point at a fake /proc.
Result<Subject> SubjectFromPeer(const PeerCredentials& peer, const std::string& proc_root = "/proc");

// A subject for `uid` as the user databases describe it (name, primary gid unless `gid`
// is given, supplementary groups from getgrouplist), with no pid, unit or exe. For
// `sealkeep policy explain` and tests: what a login session of that user would present.
Subject SubjectForUser(std::uint32_t uid, std::optional<std::uint32_t> gid = std::nullopt);

// passwd / group names; "" when there is no entry.
std::string UserName(std::uint32_t uid);
std::string GroupName(std::uint32_t gid);

}  // namespace sk::policy
