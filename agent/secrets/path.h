// Secret paths and snapshot names: what is allowed, checked before anything else.
// A path is 1..256 bytes of segments matching [A-Za-z0-9._-]+ joined by '/': no empty
// segment, no "." or ".." segment, no leading or trailing '/'.
#pragma once

#include <string_view>

#include "crypto/status.h"

namespace sk::secrets {

inline constexpr std::size_t kMaxPath = 256;
inline constexpr std::size_t kMaxSnapshotName = 128;

// reason bad_path (kInvalidArgument), with a message saying what is wrong.
Status ValidatePath(std::string_view path);
// A listing prefix: empty, or a path, optionally ending in '/'.
Status ValidatePrefix(std::string_view prefix);
// [A-Za-z0-9._-]{1,128}, not "." or "..": reason bad_name.
Status ValidateSnapshotName(std::string_view name);

// Whether `path` lies under the listing prefix `prefix`, segment-aware: "" covers every
// path, "apps" covers "apps" and "apps/web" but not "appsx", "apps/" covers "apps/web" only.
bool PathMatchesPrefix(std::string_view path, std::string_view prefix);

}  // namespace sk::secrets
