// The agent's configuration: one TOML file (default /etc/sealkeep/sealkeep.toml), every
// key optional, with defaults fit for a host. Unknown tables or keys are errors (a typo
// must not silently fall back to a default), reported with file and line.
//
//   [agent]    state_dir, socket, socket_group, socket_mode ("0660"), io_threads, worker_threads,
//              io_spin_us, creds_socket, metrics_require_auth, kv_mount
//   [store]    path, anchor_mode ("epoch" | "strict"), epoch_seconds, max_versions,
//              max_value_bytes, verify_threads
//   [backend]  kind ("pkcs11" | "tpm")
//   [pkcs11]   module, token, pin_file, max_sessions, sync_dir
//   [tpm]      tcti, state_dir, auth_file, pcrs ([7, 11]), nv_counter_index, nv_anchor_index,
//              primary_handle
//   [limits]   max_header_bytes, max_body_bytes, max_connections, max_connections_per_uid,
//              idle_timeout_ms, request_timeout_ms
//   [cache]    dek_entries, dek_ttl_seconds
//   [policy]   file (default "policy.toml"; "" = only root and the agent's own user may call it)
//   [audit]    dir (default "audit"; "" = no audit log), segment_bytes
//   [leases]   socket (the lease server's, default /run/sealkeep-leases/leases.sock; "" =
//              no leases), sweep_seconds (30: how often expired leases are revoked)
//   [fleet]    db, password_file, host_id, signer_key, prefix ("fleet"), poll_seconds,
//              lag_alert_seconds (docs/fleet.md); absent = no fleet
// Relative paths are relative to state_dir. The defaults are the safe ones: a policy file
// (which must then exist: the agent does not start without it) and an audit log; going
// without either takes an explicit "" (StartupWarnings says so for the audit log). docs/config.md
// has a full example.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "agent/secrets/service.h"
#include "crypto/status.h"
#include "hsm/backend_config.h"

namespace sk::config {

struct Limits {
  std::size_t max_header_bytes = 8 * 1024;
  std::size_t max_body_bytes = 256 * 1024;  // a 64 KiB value as base64 in JSON, with room
  std::size_t max_connections = 1024;
  std::size_t max_connections_per_uid = 256;
  std::uint32_t idle_timeout_ms = 30'000;     // keep-alive connection with no request
  std::uint32_t request_timeout_ms = 10'000;  // a whole request must arrive within this
};

// [fleet] (docs/fleet.md): this host applies the fleet journal kept in PostgreSQL.
struct FleetConfig {
  bool enabled = false;          // the table is present
  std::string db;                // libpq URL, without a password
  std::string password_file;     // "" = none (peer or certificate authentication)
  std::string host_id;           // [a-z0-9._-]{1,64}
  Bytes signer_key;              // the fleet signing key's public half, 65 bytes (hex in the file)
  std::string prefix = "fleet";  // local paths the fleet manages: <prefix>/<fleet path>
  int poll_seconds = 30;         // a pull at least this often, LISTEN/NOTIFY or not
  int lag_alert_seconds = 300;   // alert fleet_behind when no pull has succeeded for this long
};

struct AgentConfig {
  std::string source;  // the file it came from ("" for defaults)
  std::string state_dir = "/var/lib/sealkeep";
  std::string socket = "/run/sealkeep/api.sock";
  std::string socket_group;  // "" = the agent's primary group
  unsigned socket_mode = 0660;
  int io_threads = 2;
  int worker_threads = 16;
  // After handling work, an I/O thread polls for this long before it sleeps in epoll, so
  // the next request on a busy keep-alive connection needs no wake-up (0 = never poll).
  int io_spin_us = 50;
  // systemd's credential socket (LoadCredential=ID:PATH; docs/api.md): "" = none. Only the
  // service manager (uid 0) is answered, with what the policy's [[credentials]] name.
  std::string creds_socket;
  // GET /metrics needs sys.read on `sys` (false: anyone who reaches the socket may read it).
  bool metrics_require_auth = false;
  // The mount of Vault's KV v2 facade on the API socket (/v1/<kv_mount>/data/..., docs/
  // vault-compat.md): one path segment, not a native one; "" = no facade.
  std::string kv_mount = "secret";
  secrets::ServiceOptions store;  // store.store_path defaults to <state_dir>/store.db
  hsm::BackendConfig backend;
  Limits limits;
  // ParseConfig sets both to their default under state_dir unless the file says otherwise.
  std::string policy_file;  // "" = built-in policy (root and the agent's own uid), only when asked for
  std::string audit_dir;    // "" = no audit log, only when asked for
  std::size_t audit_segment_bytes = 16 * 1024 * 1024;
  // Leased database users (docs/rotation.md): the socket of `sealkeep rotator
  // --serve-leases` (sealkeep-leases.service), which makes and drops the roles.
  std::string leases_socket = "/run/sealkeep-leases/leases.sock";
  int lease_sweep_seconds = 30;
  FleetConfig fleet;
};

// Parses TOML text; `source` names it in error messages. reason bad_config (kInvalidArgument).
Result<AgentConfig> ParseConfig(std::string_view text, const std::string& source);
// Reads and parses a file (at most 1 MiB). reason config_missing when it does not exist.
Result<AgentConfig> LoadConfig(const std::string& path);
// What the agent must say at start about a config that turns a safeguard off (today: no
// audit log), one warning each; empty when there is nothing to say.
std::vector<std::string> StartupWarnings(const AgentConfig& config);

// Whether a libpq URL holds a password: "password=" as a keyword or a query parameter, or
// user:password@ in a URI's authority. Such a URL would sit in a world-readable config, or in
// argv; [fleet] db and `sealkeep fleet --db` refuse it.
bool DbUrlHasPassword(std::string_view url);

inline constexpr const char* kDefaultConfigPath = "/etc/sealkeep/sealkeep.toml";

}  // namespace sk::config
