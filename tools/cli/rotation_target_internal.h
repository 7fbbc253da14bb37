// Internals of the rotation targets (rotation_target.h), not public API: the factory
// (rotation_target.cc) makes each kind through the maker in its own file
// (rotation_postgresql.cc, rotation_exec.cc), and the pieces they share live in
// rotation_target.cc: the Status builders for target_reason and the poll(2) deadline.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "crypto/secret_bytes.h"
#include "crypto/status.h"
#include "tools/cli/rotation_target.h"

namespace sk::cli::internal {

using Clock = std::chrono::steady_clock;

// A Status with its target_reason and code (see rotation_target.h).
Status Refused(std::string message);      // kRefused, kUnauthenticated
Status Unreachable(std::string message);  // kUnavailable, kUnavailable
Status StepFailed(std::string message);   // kFailed, kFailedPrecondition
Status BadTarget(std::string message);    // kBadTarget, kInvalidArgument

// Milliseconds left until `deadline` (0 when past), for poll(2).
int MillisLeft(Clock::time_point deadline);

// The makers behind MakeTarget; `spec` has passed ValidateTargetSpec. The postgresql one
// needs admin_password (NUL-free) and loads `libpq`; the exec one checks that the program
// is an executable file. Errors as MakeTarget's.
Result<std::unique_ptr<RotationTarget>> MakePostgresqlTarget(const PostgresqlTargetSpec& spec,
                                                             SecretBytes admin_password, const char* libpq);
Result<std::unique_ptr<RotationTarget>> MakeExecTarget(const ExecTargetSpec& spec);

}  // namespace sk::cli::internal
