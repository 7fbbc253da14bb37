// sealkeep: the admin and client CLI. main() only assembles the registered commands.
//
// Built twice (tools/CMakeLists.txt): sealkeep-full has every command; sealkeep (built with
// SK_CLI_LIGHT) has those that only talk to the agent, and hands anything else to
// sealkeep-full, with the same arguments and environment: see ExecFull below.
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

#include "sealkeep_version.h"
#include "tools/cli/command.h"

namespace sk::cli {
// Adds the registered commands in their order; with `until`, stops once a command of that
// name is there (building every command's options was a sixth of a `sealkeep get`).
void AddRegisteredCommands(CLI::App& app, const std::string& until = "");
}  // namespace sk::cli

#ifdef SK_CLI_LIGHT
namespace {

// The command argv names: the first argument that is not one of the program's own options
// (--socket S, --socket=S, --json); "" when another option comes first (--help, --version)
// or there is none.
std::string CommandName(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--socket") {
      ++i;
      continue;
    }
    if (a == "--json" || a.rfind("--socket=", 0) == 0) continue;
    if (a.empty() || a[0] == '-') return "";
    return std::string(a);
  }
  return "";
}

// Whether this (light) app has command `name`. No command or one it lacks: false, for
// sealkeep-full.
bool Handles(CLI::App& app, const std::string& name) {
  return !name.empty() &&
         !app.get_subcommands([&name](CLI::App* sub) { return sub->check_name(name); }).empty();
}

// Runs sealkeep-full with argv: beside this program (the build tree), then in
// ../libexec/sealkeep/ from it, then /usr/libexec/sealkeep/. Returns only on failure.
int ExecFull(char** argv) {
  char self[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  std::string dir = "/usr/bin";
  if (n > 0) {
    self[n] = '\0';
    dir = std::string(self);
    dir.resize(dir.rfind('/') == std::string::npos ? 0 : dir.rfind('/'));
  }
  for (const std::string& path : {dir + "/sealkeep-full", dir + "/../libexec/sealkeep/sealkeep-full",
                                  std::string("/usr/libexec/sealkeep/sealkeep-full")}) {
    if (::access(path.c_str(), X_OK) == 0) {
      ::execv(path.c_str(), argv);
      std::fprintf(stderr, "sealkeep: cannot run %s: %s\n", path.c_str(), std::strerror(errno));
      return sk::cli::kExitError;
    }
  }
  std::fprintf(stderr,
               "sealkeep: this command is in sealkeep-full, which is not installed beside %s or in "
               "/usr/libexec/sealkeep (reinstall the sealkeep package)\n",
               dir.c_str());
  return sk::cli::kExitError;
}

}  // namespace
#endif

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
#ifdef SK_CLI_LIGHT
  const std::string command = CommandName(argc, argv);
  if (command.empty()) return ExecFull(argv);
  sk::cli::AddRegisteredCommands(app, command);
  if (!Handles(app, command)) return ExecFull(argv);
#else
  sk::cli::AddRegisteredCommands(app);
#endif
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
