// The rotation targets' front (rotation_target.h): ValidateTargetSpec, the MakeTarget
// factory, and what both kinds share (rotation_target_internal.h). The targets themselves
// live in rotation_postgresql.cc and rotation_exec.cc.
#include "tools/cli/rotation_target.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "tools/cli/rotation_target_internal.h"

namespace sk::cli {
namespace internal {

namespace tr = target_reason;

Status Refused(std::string message) {
  return Status(Code::kUnauthenticated, std::string(tr::kRefused), std::move(message));
}
Status Unreachable(std::string message) {
  return Status(Code::kUnavailable, std::string(tr::kUnavailable), std::move(message));
}
Status StepFailed(std::string message) {
  return Status(Code::kFailedPrecondition, std::string(tr::kFailed), std::move(message));
}
Status BadTarget(std::string message) {
  return InvalidArgument(std::move(message), std::string(tr::kBadTarget));
}

int MillisLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 3'600'000));
}

}  // namespace internal

namespace {

using internal::BadTarget;

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

}  // namespace

Status ValidateTargetSpec(const TargetSpec& spec) {
  if (const auto* pg = std::get_if<PostgresqlTargetSpec>(&spec)) {
    const std::pair<const char*, const std::string*> fields[] = {
        {"host", &pg->host}, {"dbname", &pg->dbname}, {"role", &pg->role}, {"admin_user", &pg->admin_user}};
    for (const auto& [name, value] : fields) {
      if (value->empty() || HasNul(*value)) {
        return BadTarget(std::string("target.") + name + " must be a non-empty string without NUL bytes");
      }
    }
    // The server truncates longer names (NAMEDATALEN): the password would go to another role.
    if (pg->role.size() > 63) return BadTarget("target.role is longer than PostgreSQL's 63 bytes");
    if (pg->admin_user.size() > 63)
      return BadTarget("target.admin_user is longer than PostgreSQL's 63 bytes");
    if (pg->port == 0) return BadTarget("target.port must be between 1 and 65535");
    return OkStatus();
  }
  const auto& ex = std::get<ExecTargetSpec>(spec);
  if (ex.program.empty() || ex.program[0] != '/' || HasNul(ex.program)) {
    return BadTarget("target.program must be an absolute path");
  }
  for (const std::string& a : ex.args) {
    if (HasNul(a)) return BadTarget("target.args must not hold NUL bytes");
  }
  if (ex.timeout_s < std::chrono::seconds(1) || ex.timeout_s > std::chrono::hours(1)) {
    return BadTarget("target.timeout must be between 1s and 1h");
  }
  return OkStatus();
}

Result<std::unique_ptr<RotationTarget>> MakeTarget(const TargetSpec& spec, SecretBytes admin_password,
                                                   const char* libpq) {
  SK_RETURN_IF_ERROR(ValidateTargetSpec(spec));
  if (const auto* pg = std::get_if<PostgresqlTargetSpec>(&spec)) {
    return internal::MakePostgresqlTarget(*pg, std::move(admin_password), libpq);
  }
  return internal::MakeExecTarget(std::get<ExecTargetSpec>(spec));
}

}  // namespace sk::cli
