// `sealkeep self-check`: the crypto known-answer self-test, for a quick health check.
#include <cstdio>

#include "crypto/self_test.h"
#include "tools/cli/command.h"

namespace sk::cli {
namespace {

void Add(CLI::App& app) {
  auto* cmd = app.add_subcommand("self-check", "Run the crypto known-answer self-test");
  cmd->callback([] {
    Status st = RunCryptoSelfTest();
    if (!st.ok()) Fail(st);
    std::printf("crypto self-test: ok\n");
  });
}

const Registrar kRegistrar(Add, 900);

}  // namespace
}  // namespace sk::cli
