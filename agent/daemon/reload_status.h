// The reload verdict file: how `sealkeep reload --wait` (the unit's ExecReload=) learns
// whether the running agent took a new policy and config after SIGHUP, so that a rejected
// file fails `systemctl reload` instead of being logged and forgotten.
//
// The agent writes it at start and after every SIGHUP, next to its API socket
// (<dir of agent.socket>/reload.status, /run/sealkeep/reload.status by default), by a temp
// file and a rename, so a reader sees the old or the new file whole. Mode 0640, the agent's
// user and group. It holds no secret: the reason a file was refused names the file and
// its line, never a value.
//
// Format: text, one "key value" line each, in this order:
//   sealkeepd-reload 1            (format name and version)
//   pid <decimal>                 the agent's pid
//   generation <decimal>          0 at start, +1 for each SIGHUP handled
//   result ok|rejected
//   message <text to end of line> what was reloaded, or why it was refused
// At most 4 KiB; a line break in the message is replaced by a space.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "crypto/status.h"

namespace sk::daemon {

struct ReloadStatus {
  std::int64_t pid = 0;
  std::uint64_t generation = 0;
  bool ok = true;
  std::string message;
};

inline constexpr std::string_view kReloadStatusFileName = "reload.status";

std::string EncodeReloadStatus(const ReloadStatus& s);
// invalid_argument (reason reload_status_invalid) for anything but the format above.
Result<ReloadStatus> ParseReloadStatus(std::string_view text);

// Writes `s` to `path` by a temp file and rename (mode 0640).
Status WriteReloadStatus(const std::string& path, const ReloadStatus& s);
// reload_status_missing (kNotFound) when there is no file.
Result<ReloadStatus> ReadReloadStatus(const std::string& path);

}  // namespace sk::daemon
