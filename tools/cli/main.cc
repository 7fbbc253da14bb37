// sealkeep: the admin and client CLI. main() only assembles the registered commands.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "sealkeep_version.h"
#include "tools/cli/command.h"

namespace sk::cli {
void AddRegisteredCommands(CLI::App& app);
}

int main(int argc, char** argv) {
  CLI::App app{"sealkeep: provision HSM slots and TPM seals, manage versioned secrets, verify journals",
               "sealkeep"};
  app.require_subcommand(0, 1);
  app.fallthrough();
  auto& g = sk::cli::Globals();
  if (const char* env = std::getenv("SEALKEEP_SOCKET"); env != nullptr && *env != '\0') g.socket = env;
  if (g.socket.empty()) g.socket = "/run/sealkeep/api.sock";
  // --version is the program's, not a subcommand's. With fallthrough() an option a
  // subcommand does not know goes to this app, so `sealkeep status --version` used to run
  // status (and print the version after it). The flag now acts the moment it is parsed,
  // before any subcommand callback: it prints the version and exits 0 when it comes before
  // any subcommand, and is a usage error after one. (Subcommands that take their own
  // `--version N`, like get, parse it themselves and never get here.)
  app.add_flag_callback(
         "--version",
         [&app] {
           if (!app.get_subcommands().empty()) {
             throw CLI::ValidationError("--version",
                                        "an option of sealkeep itself, not of a subcommand: put it first "
                                        "(sealkeep --version)");
           }
           throw CLI::CallForVersion(std::string("sealkeep ") + SEALKEEP_VERSION, 0);
         },
         "Print the version and exit")
      ->trigger_on_parse();
  app.add_option("--socket", g.socket,
                 "Agent API socket (default: $SEALKEEP_SOCKET or /run/sealkeep/api.sock)");
  app.add_flag("--json", g.json, "Machine-readable JSON output");
  app.footer(
      "Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 conflict/refused, 5 forbidden,\n"
      "            6 sealed/unavailable, 7 corruption/verification failed.");
  sk::cli::AddRegisteredCommands(app);
  try {
    app.parse(argc, argv);
    if (app.get_subcommands().empty()) {
      std::printf("%s", app.help().c_str());
      return 0;
    }
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);  // prints help, the version, or the parse error
    return rc == 0 ? 0 : sk::cli::kExitUsage;
  } catch (const sk::cli::ExitRequest& e) {
    return e.code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sealkeep: internal error: %s\n", e.what());
    return sk::cli::kExitError;
  }
  return 0;
}
