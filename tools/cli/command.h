// How the sealkeep CLI is assembled: every tools/cli/*_commands.cc registers a function
// that adds its subcommands to the app, so areas (hsm, tpm, secrets, policy, audit...)
// each own one file and main.cc never changes for a new command.
//
// A command reports failure with Fail(status): the message goes to stderr (or as JSON
// with --json), and the process exits with the code ExitCodeFor() gives. Exit codes:
//   0 ok            1 error (other)         2 usage (bad flags or arguments)
//   3 not found     4 conflict / refused    5 forbidden / unauthenticated
//   6 sealed or unavailable (agent, HSM, TPM not reachable or not unsealed)
//   7 corruption / verification failed (tampered store, journal, audit log, blob)
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "crypto/status.h"

namespace sk::cli {

// Options every command can read (set before any command callback runs).
struct GlobalOptions {
  std::string socket;  // --socket, else $SEALKEEP_SOCKET, else /run/sealkeep/api.sock
  bool json = false;   // --json: machine-readable output
};
GlobalOptions& Globals();

using AddCommands = void (*)(CLI::App& app);
// Registers `add` at static-initialisation time; `order` sorts the commands in --help.
struct Registrar {
  explicit Registrar(AddCommands add, int order = 100);
};

enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,
  kExitUsage = 2,
  kExitNotFound = 3,
  kExitConflict = 4,
  kExitForbidden = 5,
  kExitSealed = 6,
  kExitCorruption = 7,
};
int ExitCodeFor(const Status& status);

// Thrown to end the program with an exit code; main() catches it.
struct ExitRequest {
  int code;
};

// Prints `status` (human: "sealkeep: <reason>: <message>" on stderr; --json: an error
// object on stdout) and exits with ExitCodeFor(status).
[[noreturn]] void Fail(const Status& status);

}  // namespace sk::cli
