// The API's listening sockets when systemd does not pass one: never more open than their
// mode and group (born 0600 under umask 0177, then chgrp, then chmod to the mode), and a
// stale socket file from an earlier run is replaced only when nobody serves it.
#pragma once

#include <string>

#include "crypto/status.h"
#include "crypto/unique_fd.h"

namespace sk::api {

// Creates, binds and listens on `path` (replacing a stale socket file), mode `mode`,
// group `group` ("" keeps the process's group). Errors: bad_config (path too long, no
// such group), socket_in_use (not a socket, or served by another process), socket_error.
Result<UniqueFd> CreateListenSocket(const std::string& path, unsigned mode, const std::string& group);

}  // namespace sk::api
