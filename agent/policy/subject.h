// Subject: who is calling, as the kernel says (docs/design.md), and the pure parsers that
// read a peer's systemd unit and groups out of /proc text. Reading /proc itself and the
// user/group databases lives in peer_identity.h; the functions here touch no file, so
// tests and the fuzzer (tests/fuzz/fuzz_formats.cc) call them on any bytes.
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
  // The system unit the caller runs in, as systemd itself names it ("web.service",
  // "user@1000.service" for everything a user's manager runs); empty when none.
  std::string unit;
  // When `unit` is user@<uid>.service of the caller's own uid: the unit inside that user
  // manager ("web.service"), which the user chose and may name as they like; else empty.
  std::string user_unit;
  // Absolute path of the executable, set only when the file the agent sees at that path
  // is the very file (device and inode) the caller runs, and the caller shares the
  // agent's user namespace; empty when unknown (docs/policy.md: what it proves).
  std::string exe;

  bool HasGid(std::uint32_t g) const;
  bool HasGroup(std::string_view name) const;
};

// What a cgroup path says about units, resolved the way systemd does (cg_path_get_unit,
// cg_path_get_user_unit): leading slices are skipped, and the first element below them
// is the unit, whatever lies deeper (a unit's own sub-cgroups, a delegated subtree, a
// container's tree). Below a user manager (user@<uid>.service) the same rule once more
// gives the user unit. A path holding "." or ".." elements, or whose first element
// below the slices is not a valid unit name, names no unit.
//   "/system.slice/web.service/worker"                          -> unit web.service
//   "/system.slice/docker.service/c1/system.slice/web.service"   -> unit docker.service
//   "/user.slice/user-1000.slice/user@1000.service/app.slice/web.service"
//                                  -> unit user@1000.service, user unit web.service of 1000
struct CgroupUnits {
  std::string unit;
  std::string user_unit;
  std::uint32_t user_manager_uid = 0;  // the <uid> of user@<uid>.service when user_unit is set
};
CgroupUnits UnitsFromCgroupPath(std::string_view path);

// The units from the text of /proc/<pid>/cgroup. Prefers the cgroup-v2 line
// ("0::/system.slice/web.service") when it names a unit, else the v1 line of the named
// systemd hierarchy ("9:name=systemd:/sk-test.slice/web.service"). Empty when neither does.
CgroupUnits ParseSystemdUnits(std::string_view cgroup_text);
// ParseSystemdUnits(text).unit.
std::string ParseSystemdUnit(std::string_view cgroup_text);

// A unit name that can hold processes: [A-Za-z0-9:_.@\\-], at most 255 bytes, a non-empty
// prefix, at most one '@' (then a non-empty instance), and one of the suffixes .service
// .scope .socket .mount .swap.
bool IsProcessUnitName(std::string_view name);

// The ids on the "Groups:" line of /proc/<pid>/status (may be empty). Fails with
// invalid_argument when the line is missing or holds something other than numbers.
Result<std::vector<std::uint32_t>> ParseStatusGroups(std::string_view status_text);

// The effective uid on the "Uid:" line of /proc/<pid>/status (its second number).
Result<std::uint32_t> ParseStatusEffectiveUid(std::string_view status_text);

// The start time (field 22: clock ticks after boot) from the text of /proc/<pid>/stat,
// "<pid> (<comm>) <state> ...", where comm may hold spaces and ')'.
Result<std::uint64_t> ParseStatStartTicks(std::string_view stat_text);

}  // namespace sk::policy
