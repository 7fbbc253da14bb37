// Capabilities: what a role may do on the paths its grants cover (DESIGN.md §6).
//
// The set is closed and each name is permanent (it appears in policy files):
//   read      read a secret's value and history          list      learn that a path exists
//   write     put a new version (and set labels)         delete    soft-delete / undelete
//   destroy   erase a version's key and ciphertext       rollback  roll back, set a floor
//   snapshot  take or restore a release snapshot         admin     /v1/sys/* (rotate, seal...)
// No capability implies another; a role lists each one it grants.
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
};

inline constexpr std::size_t kCapabilityCount = 8;

// Every capability, in declaration order.
inline constexpr std::array<Capability, kCapabilityCount> kAllCapabilities = {
    Capability::kRead,    Capability::kList,     Capability::kWrite,    Capability::kDelete,
    Capability::kDestroy, Capability::kRollback, Capability::kSnapshot, Capability::kAdmin,
};

// "read", "list", ...
std::string_view CapabilityName(Capability cap);
// The capability named `name` (exact, lower case), or nullopt.
std::optional<Capability> ParseCapability(std::string_view name);

// A set of capabilities as a bit mask (bit i = capability with value i).
class CapabilitySet {
 public:
  constexpr CapabilitySet() = default;
  void Add(Capability cap) { bits_ = static_cast<std::uint8_t>(bits_ | Bit(cap)); }
  bool Has(Capability cap) const { return (bits_ & Bit(cap)) != 0; }
  bool empty() const { return bits_ == 0; }

 private:
  static constexpr std::uint8_t Bit(Capability cap) {
    return static_cast<std::uint8_t>(1U << static_cast<unsigned>(cap));
  }
  std::uint8_t bits_ = 0;
};

}  // namespace sk::policy
