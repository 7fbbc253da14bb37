// Leased database users (issue 17, docs/rotation.md "Leases"): what the journal keeps of a
// lease. A lease is a database role the rotator made for one caller with an end time; the
// journal records each state it passes through (kind `lease`, no path), so leases outlive
// restarts and every change is chained and sealed like a secret's. Never its password.
//
//   creating --> active --> revoking --> revoked
//       |                      ^              ^
//       +--> failed -----------+              |
//   (creating --> revoking, and any state but revoked --> revoked, when the role is gone)
//
// creating: journaled before the rotator is asked to make the role, so a crash in between
// leaves a record the sweep cleans up (DROP ROLE IF EXISTS); failed: the rotator refused
// (the role may still exist, so it is dropped like a revoked one); revoking: expired or
// revoked by hand, the role not yet confirmed gone; revoked: the role is gone (final).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sk::secrets {

enum class LeaseState { kCreating, kActive, kRevoking, kRevoked, kFailed };

std::string_view LeaseStateName(LeaseState s);  // creating, active, revoking, revoked, failed
std::optional<LeaseState> ParseLeaseState(std::string_view name);
// Whether the journal lets a lease go from `from` to `to` (the diagram above).
bool LeaseTransitionAllowed(LeaseState from, LeaseState to);

struct LeaseRecord {
  std::string id;    // 16 lower-case hex digits, made by the agent
  std::string name;  // the lease kind ([[lease]] name in rotation.toml): a valid path
  std::string role;  // the database role: "sk_lease_" + id
  LeaseState state = LeaseState::kCreating;
  std::uint64_t created_ms = 0;
  std::uint64_t expires_ms = 0;
  std::uint64_t updated_ms = 0;  // when the state last changed (the entry's time)
  std::uint64_t seq = 0;         // the journal entry of the last change
  std::string actor;             // who created it
  std::string reason;            // failed, revoking: an error code ([a-z_], no message)
};

// Whether `s` can be a field of a note: 1-512 bytes, no space, newline or NUL.
bool ValidLeaseToken(std::string_view s);
// Whether `id` is 16 lower-case hex digits.
bool ValidLeaseId(std::string_view id);
// The role a lease's id names.
std::string LeaseRole(std::string_view id);

// The entry note of a lease record: "lease v1 id=.. name=.. role=.. state=.. created=..
// [reason=..]" (every field is a token without spaces). Parse returns nullopt for a note
// that is not one (then the entry changes no lease).
std::string EncodeLeaseNote(const LeaseRecord& r);
std::optional<LeaseRecord> ParseLeaseNote(std::string_view note);

}  // namespace sk::secrets
