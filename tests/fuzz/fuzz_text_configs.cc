// libFuzzer target: the TOML files an admin writes, on any text. The first byte picks the
// parser: the policy (ParsePolicy), the agent's config (ParseConfig), the rotator's
// rotation.toml (ParseRotationConfig, and its [[lease]] tables: ParseLeaseConfig). Each must answer with a
// located error, never crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/config/config.h"
#include "agent/policy/policy.h"
#include "tools/cli/rotation_config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 3) {
    case 0:
      (void)sk::policy::ParsePolicy(text, "fuzz.toml");
      break;
    case 1:
      (void)sk::config::ParseConfig(text, "fuzz.toml");
      break;
    default:
      (void)sk::cli::ParseRotationConfig(text, "fuzz.toml");
      (void)sk::cli::ParseLeaseConfig(text, "fuzz.toml");
      break;
  }
  return 0;
}
