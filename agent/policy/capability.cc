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
  }
  return "unknown";
}

std::optional<Capability> ParseCapability(std::string_view name) {
  for (Capability cap : kAllCapabilities) {
    if (CapabilityName(cap) == name) return cap;
  }
  return std::nullopt;
}

}  // namespace sk::policy
