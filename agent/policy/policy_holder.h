// PolicyHolder: the running policy, swapped atomically on reload (SIGHUP).
//
// Readers call Current() once per request and keep the returned shared_ptr for the
// whole request, so one request sees one policy even if a reload lands meanwhile.
// Reload() parses first and installs only a valid policy; a missing, unreadable or
// invalid file leaves the running policy in place and returns the error for the
// daemon to log. Thread-safe: Current() may race with Reload() from any thread.
//
// SIGHUP: the signal handler must not parse. The daemon turns the signal into an event
// (signalfd or asio::signal_set) and calls ReloadFromFile() from normal context.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>

#include "agent/policy/policy.h"
#include "crypto/status.h"

namespace sk::policy {

inline constexpr std::size_t kMaxPolicyFileBytes = 1 << 20;

class PolicyHolder {
 public:
  // Starts with `initial`, or with an empty policy (deny everything) when null.
  explicit PolicyHolder(std::shared_ptr<const Policy> initial = nullptr);

  std::shared_ptr<const Policy> Current() const { return current_.load(std::memory_order_acquire); }

  // Parses `toml_text` and installs it when valid.
  Status Reload(std::string_view toml_text, std::string_view source_name);
  // Reads `path` (at most 1 MiB) and installs it when valid. Errors name the file.
  Status ReloadFromFile(const std::string& path);

 private:
  std::atomic<std::shared_ptr<const Policy>> current_;
};

// Reads a policy file into memory (at most kMaxPolicyFileBytes).
Result<std::string> ReadPolicyFile(const std::string& path);

}  // namespace sk::policy
