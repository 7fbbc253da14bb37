// The quick start's first policy: root and the invoking user are admins on every path;
// nobody else may do anything (the default deny).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "crypto/status.h"

namespace sk::policy {

// The policy text for `uid` (named `user_name` in a comment; may be empty).
std::string DefaultPolicyText(std::uint32_t uid, std::string_view user_name);

// Creates `<state_dir>/policy.toml` from DefaultPolicyText(uid, its passwd name) unless
// a file is there already; returns true when it wrote one. The file is written to a temp
// name, fsync'd, chmod 0640, renamed into place and the folder fsync'd, so a crash leaves
// either no policy or the whole one.
Result<bool> EnsureDefaultPolicy(const std::string& state_dir, std::uint32_t uid);

}  // namespace sk::policy
