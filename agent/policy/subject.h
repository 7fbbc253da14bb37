// Subject: who is calling, as the kernel says (DESIGN.md §6), and the pure parsers that
// read a peer's systemd unit and groups out of /proc text. Reading /proc itself and the
// user/group databases lives in peer_identity.h; the functions here touch no file, so
// tests and fuzzers call them on any bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/status.h"

namespace sk::policy {

// A caller's identity. Plain value; copy freely.
struct Subject {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;  // primary (SO_PEERCRED) gid
  std::int32_t pid = 0;
  std::string user;                 // passwd name of uid; empty when it has none
  std::vector<std::uint32_t> gids;  // primary gid first, then supplementary gids
  std::vector<std::string> groups;  // names of those gids that have one
  std::string unit;                 // systemd unit ("web.service"); empty when none
  std::string exe;                  // absolute executable path; empty when unknown

  bool HasGid(std::uint32_t g) const;
  bool HasGroup(std::string_view name) const;
};

// The systemd unit named by a cgroup path: the last path element whose name ends in a
// unit suffix that can hold processes (.service .scope .socket .mount .swap), after
// undoing systemd's '_' escaping. "" when there is none (a bare slice, "/", garbage).
//   "/system.slice/web.service"                          -> "web.service"
//   "/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope" -> "x.scope"
std::string UnitFromCgroupPath(std::string_view path);

// The unit from the text of /proc/<pid>/cgroup. Prefers the cgroup-v2 line
// ("0::/system.slice/web.service") when it names a unit, else the v1 line of the named
// systemd hierarchy ("9:name=systemd:/sk-test.slice/web.service"). "" when neither does.
std::string ParseSystemdUnit(std::string_view cgroup_text);

// The ids on the "Groups:" line of /proc/<pid>/status (may be empty). Fails with
// invalid_argument when the line is missing or holds something other than numbers.
Result<std::vector<std::uint32_t>> ParseStatusGroups(std::string_view status_text);

// The effective uid on the "Uid:" line of /proc/<pid>/status (its second number).
Result<std::uint32_t> ParseStatusEffectiveUid(std::string_view status_text);

}  // namespace sk::policy
