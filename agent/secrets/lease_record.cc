// The pure half of lease_record.h (names, transitions, notes), alone in its file: the CLI
// uses it without linking the service (tools/CMakeLists.txt, the light sealkeep).
#include "agent/secrets/lease_record.h"

#include <algorithm>
#include <string>

namespace sk::secrets {

std::string_view LeaseStateName(LeaseState s) {
  switch (s) {
    case LeaseState::kCreating:
      return "creating";
    case LeaseState::kActive:
      return "active";
    case LeaseState::kRevoking:
      return "revoking";
    case LeaseState::kRevoked:
      return "revoked";
    case LeaseState::kFailed:
      return "failed";
  }
  return "unknown";
}

std::optional<LeaseState> ParseLeaseState(std::string_view name) {
  for (LeaseState s : {LeaseState::kCreating, LeaseState::kActive, LeaseState::kRevoking,
                       LeaseState::kRevoked, LeaseState::kFailed}) {
    if (LeaseStateName(s) == name) return s;
  }
  return std::nullopt;
}

bool LeaseTransitionAllowed(LeaseState from, LeaseState to) {
  if (from == LeaseState::kRevoked) return false;  // final
  if (to == LeaseState::kRevoked) return true;     // the role is gone, from any state
  switch (from) {
    case LeaseState::kCreating:
      return to == LeaseState::kActive || to == LeaseState::kFailed || to == LeaseState::kRevoking;
    case LeaseState::kActive:
    case LeaseState::kFailed:
      return to == LeaseState::kRevoking;
    default:
      return false;
  }
}

bool ValidLeaseId(std::string_view id) {
  return id.size() == 16 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string LeaseRole(std::string_view id) { return "sk_lease_" + std::string(id); }

namespace {

bool Token(std::string_view s) {
  return !s.empty() && s.size() <= 512 &&
         std::none_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\n' || c == '\0'; });
}

bool ParseU64(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string_view::npos) return false;
  out = std::stoull(std::string(s));
  return true;
}

}  // namespace

bool ValidLeaseToken(std::string_view s) { return Token(s); }

std::string EncodeLeaseNote(const LeaseRecord& r) {
  std::string out = "lease v1 id=" + r.id + " name=" + r.name + " role=" + r.role +
                    " state=" + std::string(LeaseStateName(r.state)) +
                    " created=" + std::to_string(r.created_ms);
  if (!r.reason.empty()) out += " reason=" + r.reason;
  return out;
}

std::optional<LeaseRecord> ParseLeaseNote(std::string_view note) {
  constexpr std::string_view kPrefix = "lease v1 ";
  if (note.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  note.remove_prefix(kPrefix.size());
  LeaseRecord r;
  bool have_state = false, have_created = false;
  while (!note.empty()) {
    const std::size_t end = std::min(note.find(' '), note.size());
    std::string_view field = note.substr(0, end);
    note.remove_prefix(std::min(end + 1, note.size()));
    const std::size_t eq = field.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    std::string_view key = field.substr(0, eq), value = field.substr(eq + 1);
    if (!Token(value)) return std::nullopt;
    if (key == "id") {
      r.id = value;
    } else if (key == "name") {
      r.name = value;
    } else if (key == "role") {
      r.role = value;
    } else if (key == "state") {
      auto s = ParseLeaseState(value);
      if (!s) return std::nullopt;
      r.state = *s;
      have_state = true;
    } else if (key == "created") {
      if (!ParseU64(value, r.created_ms)) return std::nullopt;
      have_created = true;
    } else if (key == "reason") {
      r.reason = value;
    } else {
      return std::nullopt;
    }
  }
  if (!ValidLeaseId(r.id) || r.name.empty() || r.role != LeaseRole(r.id) || !have_state || !have_created)
    return std::nullopt;
  return r;
}

}  // namespace sk::secrets
