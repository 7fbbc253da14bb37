// A rotation target (issue 17): the place outside sealkeep where a rotated credential is
// used, which the rotator changes in three steps: Set the new value there, Test it, and on
// a failure Revert to the old one. Two kinds:
//   - postgresql: a role's password. The verifier is computed here (SCRAM-SHA-256, with
//     PQencryptPasswordConn) and only the verifier travels, in ALTER ROLE, so the value
//     never reaches the server's statement log. Test logs in as the role with the value.
//     libpq is loaded with dlopen when a target is made, so the CLI does not link it.
//   - exec: `program args... set|test|revert`, the value on stdin (then EOF), no shell, a
//     minimal environment (PATH only), cwd /, its own process group, SIGKILLed at timeout.
//     Exit 0 is success; for test, exit 1 is "does not accept it".
//
// Errors are Status with a reason from target_reason below (codes: refused and
// admin_refused kUnauthenticated; unavailable and timeout kUnavailable; failed
// kFailedPrecondition; bad_target and bad_value kInvalidArgument; libpq_missing
// kFailedPrecondition). Messages name the target (Describe()) and never hold a value or a
// password. An exec program's own output (at
// most kMaxExecOutput bytes, stdout and stderr together) is quoted in its failures: the
// program owns what it prints.
//
// Thread-safety: a target is used by one thread at a time. Set/Test/Revert block (up to
// the connect timeout of 10 s for postgresql, the spec's timeout for exec).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "crypto/bytes.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk::cli {

namespace target_reason {
inline constexpr std::string_view kRefused = "target_refused";             // Test: the value is not accepted
inline constexpr std::string_view kUnavailable = "target_unavailable";     // not reached; may be retried
inline constexpr std::string_view kFailed = "target_failed";               // reached, but the step failed
inline constexpr std::string_view kTimeout = "target_timeout";             // exec: killed at its timeout
inline constexpr std::string_view kAdminRefused = "target_admin_refused";  // the admin login failed
inline constexpr std::string_view kBadTarget = "bad_target";               // the spec cannot be used
inline constexpr std::string_view kBadValue = "bad_value";                 // the target cannot hold it
inline constexpr std::string_view kLibpqMissing = "libpq_missing";         // install libpq5
}  // namespace target_reason

struct PostgresqlTargetSpec {
  std::string host;  // a socket folder ("/run/postgresql") or a host name
  std::uint16_t port = 5432;
  std::string dbname = "postgres";
  std::string role;        // whose password rotates
  std::string admin_user;  // the login that runs ALTER ROLE (its password: MakeTarget's)
};

struct ExecTargetSpec {
  std::string program;  // an absolute path
  std::vector<std::string> args;
  std::chrono::seconds timeout_s{30};
};

using TargetSpec = std::variant<PostgresqlTargetSpec, ExecTargetSpec>;

// What an exec target keeps of its program's output for an error message.
inline constexpr std::size_t kMaxExecOutput = 4096;
// What the postgresql target loads; the package that ships it is libpq5.
inline constexpr const char* kLibpqSoname = "libpq.so.5";

class RotationTarget {
 public:
  virtual ~RotationTarget() = default;

  // "postgresql role app on /run/postgresql:5432", "exec /usr/local/bin/x": never a value.
  virtual std::string Describe() const = 0;
  // Makes the target accept new_value (old_value is for targets that need it to log in).
  virtual Status Set(ByteView new_value, ByteView old_value) = 0;
  // OK when the target accepts `value` now; kRefused when it plainly does not, kUnavailable
  // when it could not be reached, another reason when the test could not be made.
  virtual Status Test(ByteView value) = 0;
  // Puts the target back on old_value.
  virtual Status Revert(ByteView old_value, ByteView new_value) = 0;
};

// Checks a spec without touching the system (the config parser quotes its message):
// required fields present, no NUL bytes, role names of at most 63 bytes (PostgreSQL would
// truncate a longer one), a port, an absolute program, a timeout of 1 s to 1 h.
// Errors: bad_target (kInvalidArgument), naming the field.
Status ValidateTargetSpec(const TargetSpec& spec);

// Checks the spec (and that an exec program is an executable file) and makes its target.
// admin_password is the postgresql admin_user's password (required there; ignored by
// exec). `libpq` is which library to load (tests name a missing one). Errors: bad_target
// (kInvalidArgument), libpq_missing (kFailedPrecondition, naming the package libpq5).
Result<std::unique_ptr<RotationTarget>> MakeTarget(const TargetSpec& spec, SecretBytes admin_password,
                                                   const char* libpq = kLibpqSoname);

}  // namespace sk::cli
