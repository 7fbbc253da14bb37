// AuditRecord: what sealkeep writes down about one request (docs/design.md).
//
// The type has no field for a secret value, a key, a PIN or a request body: the daemon
// cannot put one in by accident. Strings are identifiers and names; the writer caps their
// lengths (audit_format.h) so a hostile path or exe name cannot blow up a line.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace sk::audit {

enum class AuditOutcome : std::uint8_t {
  kAllowed,  // policy allowed the request (written before the change it makes)
  kDenied,   // policy denied it
  kFailed,   // allowed, but refused or failed for another reason (bad input, conflict...)
  kEvent,    // the agent's own event (log opened after a crash, ...), no caller
};

std::string_view AuditOutcomeName(AuditOutcome outcome);  // "allowed", "denied", "failed", "event"

// The caller as the kernel named it (SO_PEERCRED + /proc), copied from the policy Subject.
struct AuditPeer {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::int32_t pid = 0;  // 0: none
  std::string unit;      // systemd unit; "" when none
  std::string exe;       // executable path; "" when unknown
};

struct AuditRecord {
  std::chrono::system_clock::time_point time = std::chrono::system_clock::now();
  std::string request_id;
  AuditPeer peer;
  std::string route;  // method and route name: "PUT secret.put", "POST txn"; events: "audit.open"
  std::string path;   // the secret path the request named, or a txn's op paths ("a,b"); "" when none
  AuditOutcome outcome = AuditOutcome::kDenied;
  std::string reason;  // stable snake_case reason ("no_binding", "cas_mismatch"), may add the rule
};

// An event of the agent itself (outcome kEvent): its own uid, gid and pid, no caller.
AuditRecord AgentEvent(std::string route, std::string reason);

}  // namespace sk::audit
