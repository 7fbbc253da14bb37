// RunDaemon: sealkeepd's life from a loaded config to exit. Opens the socket (or takes
// systemd's), unseals (staying up sealed with the reason when it cannot, and retrying where
// a retry can help), reports READY=1 the moment it is unsealed and verified, pings the
// watchdog, reloads the policy and limits on SIGHUP (the verdict in reload.status), and on
// SIGTERM stops accepting, answers what is in flight, and exits 0.
#pragma once

#include "agent/config/config.h"

namespace sk {

// Returns the process exit code.
int RunDaemon(const config::AgentConfig& config);

}  // namespace sk
