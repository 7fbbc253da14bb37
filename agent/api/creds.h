// creds.sock: systemd's credential protocol, so a unit gets a secret with
// LoadCredential=ID:/run/sealkeep/creds.sock and no code of its own (docs/design.md).
//
// The service manager connects to the socket from an abstract address it binds first,
// "\0<random>/unit/<unit>/<credential-id>", shuts down its sending side, and reads the
// credential until EOF, from the unit's own process (root, already in the unit's cgroup,
// before it execs). sealkeep answers only uid 0 in the cgroup of the unit the address
// names, finds the policy's [[credentials]] entry for (unit, id), and writes that secret's
// current value. Anything else (another uid, an address of another shape, another unit's
// cgroup, no entry, sealed, the secret missing) is logged with its reason, audited, and
// answered by closing with nothing written. systemd then starts the unit with an empty
// credential: the protocol has no way to say "refused" (docs/api.md).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sk::api {

class Api;

struct CredentialAsk {
  std::string unit;
  std::string id;
};

// The (unit, id) named by a peer's abstract address, given without its leading NUL
// ("3f1c.../unit/web.service/db-password"); nullopt unless both are valid
// (policy::IsValidUnitName, policy::IsValidCredentialId).
std::optional<CredentialAsk> ParseCredentialPeer(std::string_view abstract_name);

// Serves one accepted connection `fd` (blocking: run it on a worker thread). Does not
// close fd.
void ServeCredentialConnection(Api& api, int fd, const std::string& request_id);

}  // namespace sk::api
