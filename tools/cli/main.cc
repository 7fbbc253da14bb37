// sealkeep: the admin and client CLI. main() only assembles the subcommands.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "crypto/self_test.h"
#include "sealkeep_version.h"

int main(int argc, char** argv) {
  CLI::App app{"sealkeep: provision HSM slots and TPM seals, manage versioned secrets, verify journals",
               "sealkeep"};
  app.require_subcommand(0, 1);
  bool version = false;
  app.add_flag("--version", version, "Print the version and exit");
  auto* self_check = app.add_subcommand("self-check", "Run the crypto known-answer self-test");
  CLI11_PARSE(app, argc, argv);
  if (version) {
    std::printf("sealkeep %s\n", SEALKEEP_VERSION);
    return 0;
  }
  if (self_check->parsed()) {
    sk::Status st = sk::RunCryptoSelfTest();
    std::printf("%s\n", st.ok() ? "crypto self-test: ok" : st.ToString().c_str());
    return st.ok() ? 0 : 1;
  }
  std::printf("%s", app.help().c_str());
  return 0;
}
