// The systemd glue: readiness and status notifications, the watchdog, socket activation,
// and a logger whose lines journald files under the right priority. Outside systemd every
// call is a harmless no-op (sd_notify without $NOTIFY_SOCKET does nothing).
#pragma once

#include <cstdint>
#include <string>

namespace sk::daemon {

// sd_notify(0, state): "READY=1\nSTATUS=...", "STOPPING=1", "WATCHDOG=1".
void Notify(const std::string& state);
// The watchdog interval from $WATCHDOG_USEC (for this process), or 0 when off.
std::uint64_t WatchdogUsec();
// The fd systemd passed for the API socket, or -1 when not socket-activated.
int ActivatedSocket();

enum class LogLevel { kError = 3, kWarning = 4, kInfo = 6, kDebug = 7 };
// One line to stderr, prefixed "<N>" for journald; never pass secret bytes.
void Log(LogLevel level, const std::string& message);

}  // namespace sk::daemon
