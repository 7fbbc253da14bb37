// Capabilities: what a role may do on the paths its grants cover (docs/design.md).
//
// The set is closed and each name is permanent (it appears in policy files):
//   read      read a secret's value and history          list      learn that a path exists
//   write     put a new version (and set labels)         delete    soft-delete / undelete
//   destroy   erase a version's key and ciphertext, and  rollback  roll back, set a floor
//             prune old versions past max_versions
//   snapshot  take or restore a release snapshot
//   sys.read  /v1/sys/status, journal and audit verify, /metrics when it is protected
//   rotate    /v1/sys/rotate (on sys); on a secret path,  reseal    /v1/sys/reseal
//             staged rotation (with write; docs/rotation.md)
//   recover   /v1/sys/recover (accept a replayed store)  seal      /v1/sys/seal and /unseal
//   lease     a leased database user of the lease kind the path names, its list and revoke
//             (POST /v1/leases; docs/rotation.md)
//   admin     everything the five above grant, plus lowering a path's max_versions and
//             snapshots of the whole store
// No capability implies another, except `admin`: a grant of admin is a grant of sys.read,
// rotate, reseal, recover and seal too (CapabilitySet::Add), so a policy written before
// they existed keeps granting what it granted.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace sk::policy {

enum class Capability : std::uint8_t {
  kRead = 0,
  kList,
  kWrite,
  kDelete,
  kDestroy,
  kRollback,
  kSnapshot,
  kAdmin,
  kSysRead,
  kRotate,
  kReseal,
  kRecover,
  kSeal,
  kLease,
};

inline constexpr std::size_t kCapabilityCount = 14;

// Every capability, in declaration order.
inline constexpr std::array<Capability, kCapabilityCount> kAllCapabilities = {
    Capability::kRead,    Capability::kList,     Capability::kWrite,    Capability::kDelete,
    Capability::kDestroy, Capability::kRollback, Capability::kSnapshot, Capability::kAdmin,
    Capability::kSysRead, Capability::kRotate,   Capability::kReseal,   Capability::kRecover,
    Capability::kSeal,    Capability::kLease,
};

// What a grant of `admin` grants besides admin itself.
inline constexpr std::array<Capability, 5> kAdminImplies = {
    Capability::kSysRead, Capability::kRotate, Capability::kReseal, Capability::kRecover, Capability::kSeal,
};

// "read", "list", ..., "sys.read", ...
std::string_view CapabilityName(Capability cap);
// The capability named `name` (exact, lower case), or nullopt.
std::optional<Capability> ParseCapability(std::string_view name);
// "read, list, ..., seal": every name, for messages.
std::string_view CapabilityNames();
// The capabilities of /v1/sys/* (admin and the five it implies): the daemon evaluates them
// on kAdminPath, never on a secret, so no labels apply.
bool IsSysCapability(Capability cap);

// A set of capabilities as a bit mask (bit i = capability with value i).
class CapabilitySet {
 public:
  constexpr CapabilitySet() = default;
  // Adding kAdmin adds kAdminImplies too.
  void Add(Capability cap) {
    bits_ = static_cast<std::uint16_t>(bits_ | Bit(cap));
    if (cap == Capability::kAdmin) {
      for (Capability c : kAdminImplies) bits_ = static_cast<std::uint16_t>(bits_ | Bit(c));
    }
  }
  bool Has(Capability cap) const { return (bits_ & Bit(cap)) != 0; }
  bool empty() const { return bits_ == 0; }

 private:
  static constexpr std::uint16_t Bit(Capability cap) {
    return static_cast<std::uint16_t>(1U << static_cast<unsigned>(cap));
  }
  static_assert(kCapabilityCount <= 16, "CapabilitySet holds 16 bits");
  std::uint16_t bits_ = 0;
};

}  // namespace sk::policy
