// Constant-time comparison for tags, MACs and secrets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace sk {

// True when a and b have the same length and bytes. Time depends only on the lengths.
inline bool ConstantTimeEqual(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  if (a.size() != b.size()) return false;
  volatile std::uint8_t diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff = static_cast<std::uint8_t>(diff | (a[i] ^ b[i]));
  return diff == 0;
}

}  // namespace sk
