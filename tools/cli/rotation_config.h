// The rotator's schedule: /etc/sealkeep/rotation.toml (issue 17), one [[rotation]] table
// per rotated secret:
//
//   [[rotation]]
//   path = "db/app/password"   # a sealkeep secret path (segments [A-Za-z0-9._-]+, <= 256 bytes)
//   every = "30d"              # a duration (ParseDuration), at least 1m
//   generator = { type = "password", length = 32, classes = ["lower", "upper", "digit", "symbol"],
//                 exclude = "\"'" }
//            # or { type = "bytes", length = 32, encoding = "hex" | "base64" }; optional
//            # (without one the rotator must be given the value)
//   target = { type = "postgresql", host = "/run/postgresql", port = 5432, dbname = "postgres",
//              role = "app", admin_user = "sealkeep_rotator", admin_secret = "db/admin/password" }
//         # or { type = "exec", program = "/usr/local/bin/rotate-thing", args = ["--x"],
//         #      timeout = "30s" }
//
// port (5432), dbname ("postgres"), args ([]) and timeout ("30s", at most 1h) have defaults;
// every other key of a target is required. admin_secret names the secret holding
// admin_user's password. The generator is checked for its keys and their types and handed
// to the agent as JSON, which owns its limits. Unknown keys and tables, a path configured
// twice, and a file over kMaxRotationConfig bytes are errors. Every error is bad_config
// (kInvalidArgument) and reads "FILE:LINE: rotation[N].KEY ...".
//
// The same file declares the kinds of leased database users the lease server makes
// (`sealkeep rotator --serve-leases`, docs/rotation.md "Leases"), one [[lease]] each:
//
//   [[lease]]
//   name = "pg/readonly"       # what `sealkeep lease create` names; policy: `lease` on it
//   max_ttl = "24h"            # the longest lease (default 24h, at most 365d)
//   database = { host = "/run/postgresql", port = 5432, dbname = "postgres",
//                admin_user = "sealkeep_rotator", admin_secret = "db/admin/password" }
//   create = ["CREATE ROLE {{role}} LOGIN PASSWORD {{password}} VALID UNTIL {{valid_until}}",
//             "GRANT pg_read_all_data TO {{role}}"]
//   revoke = ["DROP OWNED BY {{role}}", "DROP ROLE {{role}}"]   # the default
//
// The create statements must use {{role}}, {{password}} and {{valid_until}} (so every role
// made expires in the database too); no other {{...}} is allowed (lease_database.h).
//
// ParseRotationConfig and ParseLeaseConfig are pure functions over the file's text (fuzz
// targets); each checks the whole file, the other half included.
#pragma once

#include <chrono>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/status.h"
#include "tools/cli/rotation_target.h"

namespace sk::cli {

inline constexpr std::size_t kMaxRotationConfig = 1024 * 1024;
inline constexpr std::string_view kRotationConfigFile = "/etc/sealkeep/rotation.toml";

struct RotationEntry {
  std::string path;
  std::chrono::seconds every{0};
  nlohmann::json generator;  // as the file gives it; null when there is none
  TargetSpec target;
  std::string admin_secret;  // postgresql: the path of admin_user's password; "" for exec
};

struct LeaseEntry {
  std::string name;
  std::chrono::seconds max_ttl{24 * 3600};
  PostgresqlTargetSpec db;   // role unused
  std::string admin_secret;  // the path of db.admin_user's password
  std::vector<std::string> create;
  std::vector<std::string> revoke;  // empty: kDefaultLeaseRevoke
};

// "<n><unit>": n a positive decimal integer, unit s, m, h or d; at most 100 years.
// Errors: bad_duration (kInvalidArgument).
Result<std::chrono::seconds> ParseDuration(std::string_view text);

// `name` is the file name errors quote.
Result<std::vector<RotationEntry>> ParseRotationConfig(std::string_view text, std::string_view name);
Result<std::vector<LeaseEntry>> ParseLeaseConfig(std::string_view text, std::string_view name);
// Reads and parses `file`. Errors: config_missing (kNotFound) when it cannot be read, and
// the parser's.
Result<std::vector<RotationEntry>> LoadRotationConfig(const std::string& file);
Result<std::vector<LeaseEntry>> LoadLeaseConfig(const std::string& file);

}  // namespace sk::cli
