// Where leased database users are made (docs/rotation.md "Leases"): a PostgreSQL server
// the lease server (`sealkeep rotator --serve-leases`) logs in to as an admin. The SQL is
// the operator's, from rotation.toml's [[lease]] tables, with three placeholders:
//   {{role}}         the role's name, quoted as an identifier ("sk_lease_0123abcd...")
//   {{password}}     a SCRAM-SHA-256 verifier of the password, computed here and quoted as a
//                    literal: the password itself never reaches the server or its log
//   {{valid_until}}  the lease's end as a timestamp literal ('2026-12-07 10:00:00+00')
// Create runs the create statements in one transaction. Drop makes the role NOLOGIN,
// terminates its sessions, then runs the revoke statements in one transaction (by default
// DROP OWNED BY {{role}}; DROP ROLE {{role}}); a role that does not exist is dropped.
//
// Errors as the rotation targets' (rotation_target.h): target_unavailable (kUnavailable)
// when the server cannot be reached, target_admin_refused, target_failed (a statement
// failed: its SQLSTATE and primary message only, never the statement), bad_value.
// Thread-safety: one thread at a time; each call opens its own connection.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "crypto/bytes.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"
#include "tools/cli/rotation_target.h"

namespace sk::cli {

struct LeaseDatabaseSpec {
  PostgresqlTargetSpec db;  // host, port, dbname, admin_user (role unused)
  std::vector<std::string> create;
  std::vector<std::string> revoke;
};

inline const std::vector<std::string> kDefaultLeaseRevoke = {"DROP OWNED BY {{role}}", "DROP ROLE {{role}}"};

class LeaseDatabase {
 public:
  virtual ~LeaseDatabase() = default;
  virtual std::string Describe() const = 0;
  virtual Status Create(const std::string& role, ByteView password, std::int64_t valid_until_unix) = 0;
  virtual Status Drop(const std::string& role) = 0;
  // Drops every lease role (sk_lease_ and 16 hex digits) whose VALID UNTIL passed more than
  // `grace_s` ago, whatever the agent's journal says: a safety net for roles whose record
  // was lost (a store put back from an old copy and accepted with recover). Returns how
  // many were dropped.
  virtual Result<int> Reap(std::int64_t grace_s) = 0;
};

// `admin_password` is db.admin_user's. Errors: bad_target, libpq_missing (as MakeTarget).
Result<std::unique_ptr<LeaseDatabase>> MakeLeaseDatabase(const LeaseDatabaseSpec& spec,
                                                         SecretBytes admin_password,
                                                         const char* libpq = kLibpqSoname);

// The placeholders a statement may hold; "" when `sql` has only those, else the first other
// "{{...}}" it holds (for the config parser's message).
std::string UnknownPlaceholder(const std::string& sql);

// `sealkeep rotator --serve-leases` (lease_commands.cc): serves the [[lease]] kinds of
// `config` on the Unix socket `listen` ("" = /run/sealkeep-leases/leases.sock) until killed.
[[noreturn]] void ServeLeases(const std::string& config, const std::string& listen);

}  // namespace sk::cli
