// ParseRotationEvery (service.h), alone in its file: the CLI uses it without linking the
// service (tools/CMakeLists.txt, the light sealkeep).
#include <charconv>
#include <optional>
#include <string_view>

#include "agent/secrets/service.h"

namespace sk::secrets {

std::optional<std::uint64_t> ParseRotationEvery(std::string_view text) {
  if (text.size() < 2) return std::nullopt;
  std::uint64_t unit = 0;
  switch (text.back()) {
    case 's':
      unit = 1;
      break;
    case 'm':
      unit = 60;
      break;
    case 'h':
      unit = 3600;
      break;
    case 'd':
      unit = 86400;
      break;
    default:
      return std::nullopt;
  }
  std::string_view digits = text.substr(0, text.size() - 1);
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || end != digits.data() + digits.size() || n == 0) return std::nullopt;
  if (n > 100ULL * 365 * 86400 / unit) return std::nullopt;  // at most a century
  return n * unit;
}

}  // namespace sk::secrets
