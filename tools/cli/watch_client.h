// One long poll of GET /v1/watch (docs/api.md, "Watch") for `sealkeep watch` and
// `sealkeep run`: what changed under a prefix after a journal seq, as the agent lets this
// caller see it.
//
// Thread-safety: a plain function; no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "crypto/status.h"

namespace sk::cli {

struct WatchedChange {
  std::uint64_t seq = 0;
  std::string path;
  std::uint64_t version = 0;
  std::string kind;  // put, delete, undelete, destroy, rollback, restore, floor
};

struct WatchAnswer {
  std::uint64_t seq = 0;               // pass as `after` next time
  std::vector<WatchedChange> changes;  // empty: the timeout passed (204)
};

// Waits up to `timeout_s` (0: a look, no wait) for a change under `prefix` after `after`
// (nullopt: after the head now). A transport failure is kUnavailable (the agent is down or
// restarting: try again); an error answer is its Status (StatusFromResponse).
Result<WatchAnswer> WatchOnce(const std::string& socket, const std::string& prefix,
                              std::optional<std::uint64_t> after, unsigned timeout_s);

}  // namespace sk::cli
