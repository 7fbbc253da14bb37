#include "agent/policy/subject.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <vector>

namespace sk::policy {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool IsUnitChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' || c == '_' ||
         c == '.' || c == '-' || c == '\\' || c == '@';
}

// A valid slice name ("system.slice", "user-1000.slice"): what systemd skips before the unit.
bool IsSliceName(std::string_view name) {
  return EndsWith(name, ".slice") && name.size() <= 255 && name.find('@') == std::string_view::npos &&
         std::all_of(name.begin(), name.end(), IsUnitChar);
}

// One cgroup path element as systemd names it: a leading '_' is cg_escape()'s (a name that
// could clash with the kernel's own files).
std::string_view Unescape(std::string_view elem) {
  if (!elem.empty() && elem.front() == '_') elem.remove_prefix(1);
  return elem;
}

// The '/'-separated, non-empty elements of a path; false when one is "." or "..".
bool SplitCgroupPath(std::string_view path, std::vector<std::string_view>& out) {
  while (!path.empty()) {
    std::size_t slash = path.find('/');
    std::string_view elem = path.substr(0, slash);
    if (elem == "." || elem == "..") return false;
    if (!elem.empty()) out.push_back(elem);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return true;
}

// The first unit at or after `i`, once slices are skipped; "" when that element is no unit.
std::string_view UnitAfterSlices(const std::vector<std::string_view>& elems, std::size_t& i) {
  while (i < elems.size() && IsSliceName(Unescape(elems[i]))) ++i;
  if (i == elems.size()) return {};
  std::string_view unit = Unescape(elems[i]);
  return IsProcessUnitName(unit) ? unit : std::string_view{};
}

// The <uid> of "user@<uid>.service", or false.
bool UserManagerUid(std::string_view unit, std::uint32_t& uid) {
  constexpr std::string_view kPrefix = "user@";
  constexpr std::string_view kSuffix = ".service";
  if (unit.size() <= kPrefix.size() + kSuffix.size() || unit.substr(0, kPrefix.size()) != kPrefix ||
      !EndsWith(unit, kSuffix)) {
    return false;
  }
  std::string_view digits = unit.substr(kPrefix.size(), unit.size() - kPrefix.size() - kSuffix.size());
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), uid);
  return ec == std::errc() && ptr == digits.data() + digits.size();
}

// Calls f(line) for each '\n'-separated line (the last one may lack its '\n').
template <typename F>
void ForEachLine(std::string_view text, F&& f) {
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    f(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

// The numbers of a whitespace-separated list; false on anything else.
bool ParseNumbers(std::string_view text, std::vector<std::uint32_t>& out) {
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ' || text[i] == '\t') {
      ++i;
      continue;
    }
    std::uint32_t v = 0;
    auto [ptr, ec] = std::from_chars(text.data() + i, text.data() + text.size(), v);
    if (ec != std::errc() || ptr == text.data() + i) return false;
    std::size_t next = static_cast<std::size_t>(ptr - text.data());
    if (next < text.size() && text[next] != ' ' && text[next] != '\t') return false;
    out.push_back(v);
    i = next;
  }
  return true;
}

// The value of the "Key:" line of a status file, or nullopt-like false.
bool FindStatusField(std::string_view status, std::string_view key, std::string_view& value) {
  bool found = false;
  ForEachLine(status, [&](std::string_view line) {
    if (!found && line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ':') {
      value = line.substr(key.size() + 1);
      found = true;
    }
  });
  return found;
}

}  // namespace

bool Subject::HasGid(std::uint32_t g) const {
  return gid == g || std::find(gids.begin(), gids.end(), g) != gids.end();
}

bool Subject::HasGroup(std::string_view name) const {
  return std::find(groups.begin(), groups.end(), name) != groups.end();
}

bool IsProcessUnitName(std::string_view name) {
  static constexpr std::array<std::string_view, 5> kSuffixes = {".service", ".scope", ".socket", ".mount",
                                                                ".swap"};
  if (name.size() > 255 || !std::all_of(name.begin(), name.end(), IsUnitChar)) return false;
  std::string_view stem;
  for (std::string_view suffix : kSuffixes) {
    if (EndsWith(name, suffix)) stem = name.substr(0, name.size() - suffix.size());
  }
  if (stem.empty() || stem.front() == '@') return false;
  std::size_t at = stem.find('@');
  if (at == std::string_view::npos) return true;
  return at + 1 < stem.size() && stem.find('@', at + 1) == std::string_view::npos;
}

CgroupUnits UnitsFromCgroupPath(std::string_view path) {
  CgroupUnits out;
  std::vector<std::string_view> elems;
  if (!SplitCgroupPath(path, elems)) return out;
  std::size_t i = 0;
  std::string_view unit = UnitAfterSlices(elems, i);
  if (unit.empty()) return out;
  out.unit = std::string(unit);
  std::uint32_t uid = 0;
  if (UserManagerUid(unit, uid)) {
    ++i;
    std::string_view user_unit = UnitAfterSlices(elems, i);
    if (!user_unit.empty()) {
      out.user_unit = std::string(user_unit);
      out.user_manager_uid = uid;
    }
  }
  return out;
}

CgroupUnits ParseSystemdUnits(std::string_view cgroup_text) {
  CgroupUnits v2;
  CgroupUnits v1;
  bool have_v2 = false;
  bool have_v1 = false;
  ForEachLine(cgroup_text, [&](std::string_view line) {
    // hierarchy-id ":" controller-list ":" path; the path may itself hold ':'.
    std::size_t c1 = line.find(':');
    if (c1 == std::string_view::npos) return;
    std::size_t c2 = line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) return;
    std::string_view id = line.substr(0, c1);
    std::string_view controllers = line.substr(c1 + 1, c2 - c1 - 1);
    std::string_view path = line.substr(c2 + 1);
    if (id == "0" && controllers.empty()) {
      if (!have_v2) v2 = UnitsFromCgroupPath(path);
      have_v2 = true;
    } else if (controllers == "name=systemd") {
      if (!have_v1) v1 = UnitsFromCgroupPath(path);
      have_v1 = true;
    }
  });
  return v2.unit.empty() ? v1 : v2;
}

std::string ParseSystemdUnit(std::string_view cgroup_text) { return ParseSystemdUnits(cgroup_text).unit; }

Result<std::vector<std::uint32_t>> ParseStatusGroups(std::string_view status_text) {
  std::string_view value;
  if (!FindStatusField(status_text, "Groups", value)) return InvalidArgument("no Groups: line in status");
  std::vector<std::uint32_t> gids;
  if (!ParseNumbers(value, gids)) return InvalidArgument("malformed Groups: line in status");
  return gids;
}

Result<std::uint32_t> ParseStatusEffectiveUid(std::string_view status_text) {
  std::string_view value;
  if (!FindStatusField(status_text, "Uid", value)) return InvalidArgument("no Uid: line in status");
  std::vector<std::uint32_t> ids;
  if (!ParseNumbers(value, ids) || ids.size() != 4) return InvalidArgument("malformed Uid: line in status");
  return ids[1];
}

Result<std::uint64_t> ParseStatStartTicks(std::string_view stat_text) {
  std::size_t close = stat_text.rfind(')');
  if (close == std::string_view::npos) return InvalidArgument("no ')' after the command in stat");
  std::string_view rest = stat_text.substr(close + 1);
  // Fields 3 (state) onwards, space-separated: the start time is the 20th of them.
  constexpr int kStartField = 20;
  int field = 0;
  while (!rest.empty()) {
    std::size_t b = rest.find_first_not_of(' ');
    if (b == std::string_view::npos) break;
    rest.remove_prefix(b);
    std::size_t e = rest.find_first_of(" \n");
    std::string_view token = rest.substr(0, e);
    if (++field == kStartField) {
      std::uint64_t v = 0;
      auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
      if (ec != std::errc() || ptr != token.data() + token.size()) {
        return InvalidArgument("malformed start time in stat");
      }
      return v;
    }
    if (e == std::string_view::npos || rest[e] == '\n') break;
    rest.remove_prefix(e);
  }
  return InvalidArgument("stat has no start time field");
}

}  // namespace sk::policy
