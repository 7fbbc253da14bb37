// The two built programs answer --help, --version and (sealkeepd) --self-check with exit 0
// and meaningful text: the version the build was configured with, usage lines that name
// the options. No agent is started: these run without a config, token or socket.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "tests/fixtures/temp_dir.h"

namespace sk::testing {
namespace {

const std::string kSealkeep = std::string(SK_BINARY_DIR) + "/tools/sealkeep";
const std::string kSealkeepd = std::string(SK_BINARY_DIR) + "/agent/sealkeepd";

struct ProgramRun {
  int rc = -1;
  std::string out;  // stdout only
  std::string err;  // stderr only
};

// Runs `program args` with stdout and stderr captured apart, so each assertion knows
// which stream the text went to. SEALKEEP_SOCKET points nowhere, so nothing can reach
// a real agent.
ProgramRun Exec(const std::string& program, const std::string& args) {
  TempDir dir("programs");
  const std::string err_file = dir.Join("stderr");
  ProgramRun r;
  r.out = RunCommandOutput("SEALKEEP_SOCKET=" + dir.Join("no.sock") + " " + program + " " + args + " 2>" +
                               err_file + " </dev/null",
                           &r.rc);
  r.err = RunCommandOutput("cat " + err_file);
  return r;
}

bool Has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

TEST(Programs, SealkeepdVersionPrintsTheBuildsVersion) {
  ProgramRun r = Exec(kSealkeepd, "--version");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, std::string("sealkeepd ") + SK_EXPECTED_VERSION + "\n");
}

TEST(Programs, SealkeepdHelpShowsTheUsageAndNamesEveryOption) {
  ProgramRun r = Exec(kSealkeepd, "--help");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(Has(r.out, "Usage: ")) << r.out;
  EXPECT_TRUE(Has(r.out, "sealkeepd")) << r.out;
  for (const char* opt : {"--config", "--check-config", "--self-check", "--version", "--help"}) {
    EXPECT_TRUE(Has(r.out, opt)) << opt << " missing from:\n" << r.out;
  }
  EXPECT_TRUE(Has(r.out, "SIGHUP")) << "the help says what the signals do:\n" << r.out;
}

TEST(Programs, SealkeepdSelfCheckPassesAndSaysWhatItChecked) {
  ProgramRun r = Exec(kSealkeepd, "--self-check");
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_TRUE(Has(r.out, std::string("sealkeepd ") + SK_EXPECTED_VERSION + " self-check")) << r.out;
  EXPECT_TRUE(Has(r.out, "crypto known answers ok")) << r.out;
  EXPECT_TRUE(Has(r.out, "random source ok")) << r.out;
  // Either the memory is locked, or the output says plainly that it is not and how to fix it.
  EXPECT_TRUE(Has(r.out, "secret memory locked") || Has(r.err, "NOT locked")) << r.out << r.err;
}

// With RLIMIT_MEMLOCK at 0 and no CAP_IPC_LOCK (as root, the command drops to nobody),
// mlock() is refused: the self-check still passes, since the daemon runs that way too, but
// warns on stderr with the limit in force and the fix (agent/main.cc says why).
TEST(Programs, SealkeepdSelfCheckWarnsWhenSecretMemoryCannotBeLocked) {
  const std::string drop = ::geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";
  ProgramRun r = Exec("ulimit -l 0 && exec " + drop + kSealkeepd, "--self-check");
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_TRUE(Has(r.err, "WARNING: secret memory is NOT locked")) << r.err;
  EXPECT_TRUE(Has(r.err, "RLIMIT_MEMLOCK 0 bytes")) << r.err;
  EXPECT_TRUE(Has(r.err, "LimitMEMLOCK=")) << "the warning names the fix: " << r.err;
  EXPECT_TRUE(Has(r.out, "secret memory NOT locked")) << r.out;
  EXPECT_TRUE(Has(r.out, "crypto known answers ok")) << r.out;
}

TEST(Programs, SealkeepdRefusesAnUnknownOptionAsAUsageError) {
  ProgramRun r = Exec(kSealkeepd, "--no-such-option");
  EXPECT_NE(r.rc, 0);
  EXPECT_TRUE(Has(r.err, "--no-such-option")) << r.err;
}

TEST(Programs, SealkeepVersionPrintsTheBuildsVersion) {
  ProgramRun r = Exec(kSealkeep, "--version");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, std::string("sealkeep ") + SK_EXPECTED_VERSION + "\n");
}

TEST(Programs, SealkeepHelpShowsTheUsageSubcommandsAndExitCodes) {
  ProgramRun r = Exec(kSealkeep, "--help");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(Has(r.out, "Usage: ")) << r.out;
  for (const char* s : {"--socket", "--json", "--version", "put", "get", "hsm", "Exit codes"}) {
    EXPECT_TRUE(Has(r.out, s)) << s << " missing from:\n" << r.out;
  }
  ProgramRun bare = Exec(kSealkeep, "");
  EXPECT_EQ(bare.rc, 0) << "no subcommand prints the help";
  EXPECT_EQ(bare.out, r.out);
}

TEST(Programs, SealkeepSubcommandHelpNamesItsOptions) {
  ProgramRun r = Exec(kSealkeep, "put --help");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(Has(r.out, "Usage: ")) << r.out;
  EXPECT_TRUE(Has(r.out, "put")) << r.out;
  EXPECT_TRUE(Has(r.out, "--cas")) << r.out;
}

// --version belongs to the program, not to a subcommand: after a subcommand it is a
// usage error (exit 2), and the subcommand does not run.
TEST(Programs, SealkeepVersionAfterASubcommandIsAUsageError) {
  ProgramRun r = Exec(kSealkeep, "status --version");
  EXPECT_EQ(r.rc, 2) << r.out << r.err;
  EXPECT_TRUE(Has(r.err, "--version")) << r.err;
  EXPECT_FALSE(Has(r.out, SK_EXPECTED_VERSION)) << r.out;
  EXPECT_FALSE(Has(r.err, "no.sock")) << "status ran: " << r.err;
}

// sealkeep is the light half of the CLI (tools/CMakeLists.txt): the commands that only
// talk to the agent, without the TPM stack, libcrypto or SQLite loaded at all; every other
// command goes to sealkeep-full beside it, the same arguments, the same answers.
std::string Needed(const std::string& program) {
  return RunCommandOutput("readelf -d " + program + " | grep NEEDED");
}

TEST(Programs, TheLightSealkeepLoadsNeitherTheTpmStackNorLibcryptoNorSqlite) {
  const std::string light = Needed(kSealkeep);
  ASSERT_TRUE(Has(light, "libc.so")) << light;
  // Nor libstdc++.so and libgcc_s (linked in; toml++ is header-only): their symbol
  // lookups and libgcc_s's CPUID constructor were most of its start-up.
  for (const char* lib :
       {"libtss2", "libcrypto", "libsqlite3", "libp11", "libstdc++", "libgcc_s", "libtomlplusplus"}) {
    EXPECT_FALSE(Has(light, lib)) << kSealkeep << " needs " << lib << ":\n" << light;
  }
  const std::string full = Needed(std::string(SK_BINARY_DIR) + "/tools/sealkeep-full");
  EXPECT_TRUE(Has(full, "libtss2-esys")) << "sealkeep-full has the TPM commands:\n" << full;
}

TEST(Programs, CommandsTheLightSealkeepLacksRunInSealkeepFull) {
  ProgramRun tpm = Exec(kSealkeep, "tpm --help");
  EXPECT_EQ(tpm.rc, 0) << tpm.err;
  EXPECT_TRUE(Has(tpm.out, "Usage: sealkeep tpm")) << tpm.out;
  ProgramRun hsm = Exec(kSealkeep, "--json hsm --help");
  EXPECT_EQ(hsm.rc, 0) << hsm.err;
  EXPECT_TRUE(Has(hsm.out, "Usage: sealkeep hsm")) << hsm.out;
  // The top-level help lists every command, the light ones and the others.
  ProgramRun help = Exec(kSealkeep, "--help");
  EXPECT_EQ(help.rc, 0);
  for (const char* cmd : {"get", "lease", "rotation", "tpm", "hsm", "setup"}) {
    EXPECT_TRUE(Has(help.out, std::string("  ") + cmd)) << cmd << " missing from:\n" << help.out;
  }
  // A light command runs in the light program itself (it fails to reach the agent here).
  ProgramRun get = Exec(kSealkeep, "get x");
  EXPECT_EQ(get.rc, 6) << get.err;
}

TEST(Programs, WithoutSealkeepFullBesideItTheLightSealkeepSaysWhatIsMissing) {
  TempDir dir("light-alone");
  ASSERT_EQ(std::system(("cp " + kSealkeep + " " + dir.Join("sealkeep")).c_str()), 0);
  ProgramRun r = Exec(dir.Join("sealkeep"), "tpm --help");
  if (::access("/usr/libexec/sealkeep/sealkeep-full", X_OK) == 0) {
    GTEST_SKIP() << "an installed sealkeep-full answers for it on this machine";
  }
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(Has(r.err, "sealkeep-full")) << r.err;
  EXPECT_TRUE(Has(r.err, "reinstall the sealkeep package")) << r.err;
  // Its own commands still work alone.
  ProgramRun get = Exec(dir.Join("sealkeep"), "get --help");
  EXPECT_EQ(get.rc, 0) << get.err;
}

}  // namespace
}  // namespace sk::testing
