#include "agent/policy/capability.h"

namespace sk::policy {

std::string_view CapabilityName(Capability cap) {
  switch (cap) {
    case Capability::kRead:
      return "read";
    case Capability::kList:
      return "list";
    case Capability::kWrite:
      return "write";
    case Capability::kDelete:
      return "delete";
    case Capability::kDestroy:
      return "destroy";
    case Capability::kRollback:
      return "rollback";
    case Capability::kSnapshot:
      return "snapshot";
    case Capability::kAdmin:
      return "admin";
    case Capability::kSysRead:
      return "sys.read";
    case Capability::kRotate:
      return "rotate";
    case Capability::kReseal:
      return "reseal";
    case Capability::kRecover:
      return "recover";
    case Capability::kSeal:
      return "seal";
    case Capability::kLease:
      return "lease";
  }
  return "unknown";
}

std::optional<Capability> ParseCapability(std::string_view name) {
  for (Capability cap : kAllCapabilities) {
    if (CapabilityName(cap) == name) return cap;
  }
  return std::nullopt;
}

std::string_view CapabilityNames() {
  return "read, list, write, delete, destroy, rollback, snapshot, admin, sys.read, rotate, reseal, recover, "
         "seal, lease";
}

bool IsSysCapability(Capability cap) {
  if (cap == Capability::kAdmin) return true;
  for (Capability c : kAdminImplies) {
    if (c == cap) return true;
  }
  return false;
}

}  // namespace sk::policy
