#include "agent/policy/policy.h"

#include <algorithm>
#include <utility>

namespace sk::policy {
namespace {

template <typename T, typename V>
bool Contains(const std::vector<T>& list, const V& v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string LineOf(int line) { return " (line " + std::to_string(line) + ")"; }

template <typename T>
std::string Join(const std::vector<T>& list) {
  std::string out;
  for (const T& v : list) {
    if (!out.empty()) out += "|";
    if constexpr (std::is_same_v<T, std::string>) {
      out += v;
    } else {
      out += std::to_string(v);
    }
  }
  return out;
}

std::string FailedConditionText(const Binding& b, std::string_view failed) {
  if (failed == "time") return "time window " + b.when.time->Describe();
  if (failed == "labels") {
    std::string out = "labels";
    for (const auto& [k, vs] : b.when.labels->required) out += " " + k + "=" + Join(vs);
    return out;
  }
  std::string out = "subject";
  if (!b.when.subject->groups.empty()) out += " groups " + Join(b.when.subject->groups);
  if (!b.when.subject->exe_prefixes.empty()) out += " exe_prefix " + Join(b.when.subject->exe_prefixes);
  return out;
}

}  // namespace

bool SubjectSelector::Matches(const Subject& s) const {
  if (!uids.empty() && !Contains(uids, s.uid)) return false;
  if (!users.empty() && (s.user.empty() || !Contains(users, s.user))) return false;
  if (!gids.empty() && std::none_of(gids.begin(), gids.end(), [&](std::uint32_t g) { return s.HasGid(g); })) {
    return false;
  }
  if (!groups.empty() &&
      std::none_of(groups.begin(), groups.end(), [&](const std::string& g) { return s.HasGroup(g); })) {
    return false;
  }
  if (!units.empty() && (s.unit.empty() || !Contains(units, s.unit))) return false;
  if (!user_units.empty() && (s.user_unit.empty() || !Contains(user_units, s.user_unit))) return false;
  if (!exes.empty() && (s.exe.empty() || !Contains(exes, s.exe))) return false;
  return true;
}

std::string SubjectSelector::FirstMismatch(const Subject& s) const {
  if (!uids.empty() && !Contains(uids, s.uid)) return "uid " + Join(uids);
  if (!users.empty() && (s.user.empty() || !Contains(users, s.user))) return "user " + Join(users);
  if (!gids.empty() && std::none_of(gids.begin(), gids.end(), [&](std::uint32_t g) { return s.HasGid(g); })) {
    return "gid " + Join(gids);
  }
  if (!groups.empty() &&
      std::none_of(groups.begin(), groups.end(), [&](const std::string& g) { return s.HasGroup(g); })) {
    return "group " + Join(groups);
  }
  if (!units.empty() && (s.unit.empty() || !Contains(units, s.unit))) return "unit " + Join(units);
  if (!user_units.empty() && (s.user_unit.empty() || !Contains(user_units, s.user_unit))) {
    return "user_unit " + Join(user_units);
  }
  if (!exes.empty() && (s.exe.empty() || !Contains(exes, s.exe))) return "exe " + Join(exes);
  return "";
}

std::string_view Decision::Reason() const {
  switch (why) {
    case Why::kAllowed:
      return "allowed";
    case Why::kInvalidPath:
      return "invalid_path";
    case Why::kNoBinding:
      return "no_binding";
    case Why::kNoGrant:
      return "no_grant";
    case Why::kConditionFailed:
      return "condition_failed";
  }
  return "unknown";
}

std::string Decision::Explanation(Capability cap, std::string_view path) const {
  const std::string what = std::string(CapabilityName(cap)) + " on " + Quote(path);
  switch (why) {
    case Why::kAllowed:
      return "allowed by binding " + Quote(binding->name) + LineOf(binding->line) + ": role " +
             Quote(role->name) + " grants " + what + " via " + Quote(glob->pattern()) + LineOf(grant->line);
    case Why::kInvalidPath:
      return "denied: " + Quote(path) + " is not a valid path";
    case Why::kNoBinding:
      return "denied: no binding matches the caller (default deny)";
    case Why::kNoGrant:
      return "denied: no role bound to the caller grants " + what + " (default deny)";
    case Why::kConditionFailed:
      return "denied: binding " + Quote(binding->name) + LineOf(binding->line) + " would grant " + what +
             " via " + Quote(glob->pattern()) + ", but its condition " +
             FailedConditionText(*binding, failed) + " does not hold";
  }
  return "denied";
}

Policy::Policy(std::string source, std::vector<Role> roles, std::vector<Binding> bindings,
               std::vector<CredentialGrant> credentials)
    : source_(std::move(source)),
      roles_(std::move(roles)),
      bindings_(std::move(bindings)),
      credentials_(std::move(credentials)) {}

const CredentialGrant* Policy::FindCredential(std::string_view unit, std::string_view id) const {
  for (const CredentialGrant& c : credentials_) {
    if (c.unit == unit && c.id == id) return &c;
  }
  return nullptr;
}

namespace {
bool IsPrintableNoSlash(std::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  for (char ch : s) {
    if (ch <= ' ' || ch > '~' || ch == '/') return false;
  }
  return true;
}
}  // namespace

bool IsValidUnitName(std::string_view unit) {
  if (!IsPrintableNoSlash(unit)) return false;
  for (std::string_view suffix : {".service", ".socket", ".mount", ".swap"}) {
    if (unit.size() > suffix.size() && unit.ends_with(suffix)) return true;
  }
  return false;
}

bool IsValidCredentialId(std::string_view id) { return IsPrintableNoSlash(id) && id != "." && id != ".."; }

bool Policy::FindGrant(const Binding& b, Capability cap, const PathSegments& path, Decision& d) const {
  for (std::size_t r : b.roles) {
    const Role& role = roles_[r];
    for (const Grant& g : role.grants) {
      if (!g.capabilities.Has(cap)) continue;
      for (const PathGlob& glob : g.paths) {
        if (glob.Matches(path)) {
          d.binding = &b;
          d.role = &role;
          d.grant = &g;
          d.glob = &glob;
          return true;
        }
      }
    }
  }
  return false;
}

Decision Policy::Evaluate(const Request& req) const {
  Decision best;
  const PathSegments path(req.path);
  if (!path.valid()) {
    best.why = Decision::Why::kInvalidPath;
    return best;
  }
  for (const Binding& b : bindings_) {
    if (!b.match.Matches(req.subject)) continue;
    Decision d;
    if (!FindGrant(b, req.capability, path, d)) {
      if (best.why == Decision::Why::kNoBinding) {
        best.why = Decision::Why::kNoGrant;
        best.binding = &b;
      }
      continue;
    }
    std::string_view failed;
    if (b.when.subject && !b.when.subject->Holds(req.subject)) {
      failed = "subject";
    } else if (b.when.labels && !b.when.labels->Holds(req.labels)) {
      failed = "labels";
    } else if (b.when.time && !b.when.time->Holds(req.time)) {
      failed = "time";
    }
    if (failed.empty()) {
      d.allowed = true;
      d.why = Decision::Why::kAllowed;
      return d;
    }
    if (best.why != Decision::Why::kConditionFailed) {
      best = d;
      best.why = Decision::Why::kConditionFailed;
      best.failed = failed;
    }
  }
  return best;
}

bool Policy::MayLearnExists(const Subject& subject, std::string_view path, const Labels* labels,
                            std::chrono::system_clock::time_point time) const {
  return Evaluate(Request{subject, Capability::kList, path, labels, time}).allowed;
}

std::vector<std::string> Policy::Trace(const Request& req) const {
  std::vector<std::string> lines;
  const PathSegments path(req.path);
  for (const Binding& b : bindings_) {
    std::string head = "binding " + Quote(b.name) + LineOf(b.line) + ": ";
    std::string mismatch = b.match.FirstMismatch(req.subject);
    if (!mismatch.empty()) {
      lines.push_back(head + "not the caller (needs " + mismatch + ")");
      continue;
    }
    Decision d;
    if (!path.valid() || !FindGrant(b, req.capability, path, d)) {
      lines.push_back(head + "matches the caller, but no role of it grants " +
                      std::string(CapabilityName(req.capability)) + " on " + Quote(req.path));
      continue;
    }
    std::string grant = "role " + Quote(d.role->name) + " grants it via " + Quote(d.glob->pattern());
    if (b.when.subject && !b.when.subject->Holds(req.subject)) {
      lines.push_back(head + grant + ", but condition " + FailedConditionText(b, "subject") +
                      " does not hold");
    } else if (b.when.labels && !b.when.labels->Holds(req.labels)) {
      lines.push_back(head + grant + ", but condition " + FailedConditionText(b, "labels") +
                      " does not hold");
    } else if (b.when.time && !b.when.time->Holds(req.time)) {
      lines.push_back(head + grant + ", but condition " + FailedConditionText(b, "time") + " does not hold");
    } else {
      lines.push_back(head + grant + ": allows");
    }
  }
  if (lines.empty()) lines.emplace_back("(the policy has no bindings)");
  return lines;
}

}  // namespace sk::policy
