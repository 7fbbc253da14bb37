#include "agent/policy/subject.h"

#include <algorithm>
#include <array>
#include <charconv>

namespace sk::policy {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool IsProcessUnit(std::string_view name) {
  static constexpr std::array<std::string_view, 5> kSuffixes = {".service", ".scope", ".socket", ".mount",
                                                                ".swap"};
  return std::any_of(kSuffixes.begin(), kSuffixes.end(),
                     [&](std::string_view s) { return EndsWith(name, s); });
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

std::string UnitFromCgroupPath(std::string_view path) {
  while (!path.empty()) {
    std::size_t slash = path.rfind('/');
    std::string_view elem = slash == std::string_view::npos ? path : path.substr(slash + 1);
    // systemd prefixes '_' to names that could clash with kernel files (cg_escape()).
    if (!elem.empty() && elem.front() == '_') elem.remove_prefix(1);
    if (IsProcessUnit(elem)) return std::string(elem);
    if (slash == std::string_view::npos) break;
    path = path.substr(0, slash);
  }
  return "";
}

std::string ParseSystemdUnit(std::string_view cgroup_text) {
  std::string v2_unit;
  std::string v1_unit;
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
      if (v2_unit.empty()) v2_unit = UnitFromCgroupPath(path);
    } else if (controllers == "name=systemd") {
      if (v1_unit.empty()) v1_unit = UnitFromCgroupPath(path);
    }
  });
  return v2_unit.empty() ? v1_unit : v2_unit;
}

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

}  // namespace sk::policy
