// `sealkeep hsm ...` end to end: the built binary against a SoftHSM2 token.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/fixtures/softhsm.h"
#include "tests/fixtures/temp_dir.h"

namespace sk::hsm {
namespace {

using sk::testing::PrepareSoftHsmDir;
using sk::testing::RunCommandOutput;
using sk::testing::TempDir;
using sk::testing::WriteFile;

const std::string kSealkeep = std::string(SK_BINARY_DIR) + "/tools/sealkeep";

struct CliRun {
  int rc = -1;
  std::string out;
};

// Runs the CLI with SOFTHSM2_CONF (set by PrepareSoftHsmDir) inherited; stderr is
// captured with stdout.
CliRun Sealkeep(const std::string& args) {
  CliRun r;
  r.out = RunCommandOutput(kSealkeep + " " + args + " 2>&1", &r.rc);
  return r;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PrepareSoftHsmDir(dir_.path());
    WriteFile(pin_, "cli-user-pin-2468\n");
    WriteFile(so_pin_, "cli-so-pin-1357\n");
  }
  std::string TokenArgs() const { return "--token cli --pin-file " + pin_; }
  nlohmann::json StatusJson() {
    CliRun r = Sealkeep("--json hsm status " + TokenArgs());
    EXPECT_EQ(r.rc, 0) << r.out;
    return nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  }

  TempDir dir_{"p11-cli"};
  const std::string pin_ = dir_.Join("cli.pin");
  const std::string so_pin_ = dir_.Join("cli.so-pin");
};

TEST_F(CliTest, ProvisionTwiceThenStatusRotateAndRetire) {
  CliRun first = Sealkeep("hsm provision --init --so-pin-file " + so_pin_ + " " + TokenArgs());
  ASSERT_EQ(first.rc, 0) << first.out;
  EXPECT_NE(first.out.find("token: initialised on a free slot"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("master key: created generation 1"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("anchor: created"), std::string::npos) << first.out;

  CliRun second = Sealkeep("hsm provision --init --so-pin-file " + so_pin_ + " " + TokenArgs());
  ASSERT_EQ(second.rc, 0) << second.out;
  EXPECT_NE(second.out.find("token: already initialised"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("master key: already there (generations 1)"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("anchor: already there"), std::string::npos) << second.out;

  nlohmann::json s = StatusJson();
  ASSERT_FALSE(s.is_discarded());
  EXPECT_EQ(s["token"]["label"], "cli");
  EXPECT_EQ(s["current_generation"], 1);
  ASSERT_EQ(s["master_keys"].size(), 1u);
  EXPECT_EQ(s["master_keys"][0]["label"], "sealkeep-master-g1");
  EXPECT_EQ(s["master_keys"][0]["sensitive"], true);
  EXPECT_EQ(s["master_keys"][0]["never_extractable"], true);
  EXPECT_EQ(s["master_keys"][0]["extractable"], false);
  EXPECT_EQ(s["anchor"]["verifies"], true);
  EXPECT_EQ(s["anchor"]["counter"], 0);
  const std::string keyset = s["keyset_id"];

  CliRun human = Sealkeep("hsm status " + TokenArgs());
  ASSERT_EQ(human.rc, 0) << human.out;
  EXPECT_NE(human.out.find("sealkeep-master-g1"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("never-extractable"), std::string::npos) << human.out;

  CliRun rotate = Sealkeep("hsm rotate " + TokenArgs());
  ASSERT_EQ(rotate.rc, 0) << rotate.out;
  EXPECT_NE(rotate.out.find("generation 2 created"), std::string::npos) << rotate.out;
  s = StatusJson();
  EXPECT_EQ(s["current_generation"], 2);
  EXPECT_EQ(s["master_keys"].size(), 2u);
  EXPECT_EQ(s["keyset_id"], keyset) << "one keyset across generations";

  CliRun current = Sealkeep("hsm retire --generation 2 " + TokenArgs());
  EXPECT_EQ(current.rc, 4) << current.out;
  EXPECT_NE(current.out.find("is_current"), std::string::npos) << current.out;
  CliRun retire = Sealkeep("--json hsm retire --generation 1 " + TokenArgs());
  ASSERT_EQ(retire.rc, 0) << retire.out;
  auto rj = nlohmann::json::parse(retire.out, nullptr, false);
  EXPECT_EQ(rj["generations"], nlohmann::json::array({2}));
  EXPECT_EQ(StatusJson()["master_keys"].size(), 1u);
}

TEST_F(CliTest, ErrorsHaveReasonsAndExitCodesAndNoPins) {
  ASSERT_EQ(Sealkeep("hsm provision --init --so-pin-file " + so_pin_ + " " + TokenArgs()).rc, 0);
  const std::string wrong = dir_.Join("wrong.pin");
  WriteFile(wrong, "not-the-pin-0000\n");
  CliRun bad = Sealkeep("hsm status --token cli --pin-file " + wrong);
  EXPECT_EQ(bad.rc, 5) << bad.out;
  EXPECT_NE(bad.out.find("pin_incorrect"), std::string::npos) << bad.out;
  EXPECT_EQ(bad.out.find("not-the-pin-0000"), std::string::npos) << bad.out;
  EXPECT_EQ(bad.out.find("cli-user-pin-2468"), std::string::npos) << bad.out;

  CliRun bad_json = Sealkeep("--json hsm status --token cli --pin-file " + wrong);
  auto j = nlohmann::json::parse(bad_json.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << bad_json.out;
  EXPECT_EQ(j["error"]["code"], "pin_incorrect");

  CliRun no_module = Sealkeep("hsm status --module " + dir_.Join("nope.so") + " " + TokenArgs());
  EXPECT_EQ(no_module.rc, 3) << no_module.out;
  EXPECT_NE(no_module.out.find("module_not_found"), std::string::npos) << no_module.out;

  CliRun no_token = Sealkeep("hsm status --token other --pin-file " + pin_);
  EXPECT_EQ(no_token.rc, 3) << no_token.out;
  EXPECT_NE(no_token.out.find("token_not_found"), std::string::npos) << no_token.out;

  CliRun no_generation = Sealkeep("hsm retire " + TokenArgs());
  EXPECT_EQ(no_generation.rc, 2) << "usage error: " << no_generation.out;
}

TEST_F(CliTest, PinComesFromTheCredentialsDirectoryByDefault) {
  ASSERT_EQ(Sealkeep("hsm provision --init --so-pin-file " + so_pin_ + " " + TokenArgs()).rc, 0);
  const std::string creds = dir_.Join("creds");
  std::filesystem::create_directory(creds);
  std::filesystem::copy_file(pin_, creds + "/hsm-pin");
  CliRun r;
  r.out = RunCommandOutput(
      "CREDENTIALS_DIRECTORY=" + creds + " " + kSealkeep + " hsm status --token cli 2>&1", &r.rc);
  EXPECT_EQ(r.rc, 0) << r.out;
  CliRun none;
  none.out = RunCommandOutput("env -u CREDENTIALS_DIRECTORY " + kSealkeep + " hsm status --token cli 2>&1",
                              &none.rc);
  EXPECT_EQ(none.rc, 3) << none.out;
  EXPECT_NE(none.out.find("credential_missing"), std::string::npos) << none.out;
}

TEST_F(CliTest, HelpNamesTheOptionsAndDefaults) {
  CliRun help = Sealkeep("hsm provision --help");
  EXPECT_EQ(help.rc, 0);
  for (const char* s : {"--module", "/usr/lib/softhsm/libsofthsm2.so", "--token", "sealkeep", "--pin-file",
                        "$CREDENTIALS_DIRECTORY/hsm-pin", "--init", "--so-pin-file"}) {
    EXPECT_NE(help.out.find(s), std::string::npos) << s << " missing from:\n" << help.out;
  }
  CliRun retire = Sealkeep("hsm retire --help");
  EXPECT_NE(retire.out.find("--generation"), std::string::npos) << retire.out;
}

// --sync-dir (SoftHSM2's tokendir, fsynced after each change: hsm/pkcs11/sync_dir.h) on
// the commands that change the token.
TEST_F(CliTest, ProvisionRotateAndRetireAcceptTheTokenFolderAsSyncDir) {
  const std::string sync = " --sync-dir " + dir_.Join("softhsm/tokens");
  CliRun provision = Sealkeep("hsm provision --init --so-pin-file " + so_pin_ + " " + TokenArgs() + sync);
  ASSERT_EQ(provision.rc, 0) << provision.out;
  EXPECT_NE(provision.out.find("master key: created generation 1"), std::string::npos) << provision.out;
  CliRun again = Sealkeep("hsm provision " + TokenArgs() + sync);
  ASSERT_EQ(again.rc, 0) << again.out;
  CliRun rotate = Sealkeep("hsm rotate " + TokenArgs() + sync);
  ASSERT_EQ(rotate.rc, 0) << rotate.out;
  EXPECT_NE(rotate.out.find("generation 2 created"), std::string::npos) << rotate.out;
  CliRun retire = Sealkeep("hsm retire --generation 1 " + TokenArgs() + sync);
  ASSERT_EQ(retire.rc, 0) << retire.out;
  EXPECT_EQ(StatusJson()["master_keys"].size(), 1u);

  CliRun help = Sealkeep("hsm provision --help");
  EXPECT_NE(help.out.find("--sync-dir"), std::string::npos) << help.out;
}

TEST_F(CliTest, ANonexistentSyncDirIsAUsageErrorAndChangesNothing) {
  const std::string missing = dir_.Join("no-such-folder");
  CliRun r = Sealkeep("hsm provision --init --so-pin-file " + so_pin_ + " " + TokenArgs() + " --sync-dir " +
                      missing);
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("--sync-dir"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("does not exist"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(missing), std::string::npos) << r.out;
  // Refused before the token was touched: no token carries the label yet.
  CliRun status = Sealkeep("hsm status " + TokenArgs());
  EXPECT_EQ(status.rc, 3) << status.out;
  EXPECT_NE(status.out.find("token_not_found"), std::string::npos) << status.out;

  ASSERT_EQ(Sealkeep("hsm provision --init --so-pin-file " + so_pin_ + " " + TokenArgs()).rc, 0);
  for (const char* cmd : {"hsm rotate ", "hsm retire --generation 1 "}) {
    CliRun c = Sealkeep(cmd + TokenArgs() + " --sync-dir " + missing);
    EXPECT_EQ(c.rc, 2) << cmd << ": " << c.out;
    EXPECT_NE(c.out.find("does not exist"), std::string::npos) << cmd << ": " << c.out;
  }
  EXPECT_EQ(StatusJson()["current_generation"], 1) << "rotate must not have run";
}

// The option reaches the library: a folder whose files cannot be fsynced (procfs answers
// fsync with EINVAL) makes the change fail with sync_failed, naming the path.
TEST_F(CliTest, ASyncDirThatCannotBeSyncedFailsTheChangeWithSyncFailed) {
  const std::string proc = "/proc/sys/kernel";
  ASSERT_TRUE(std::filesystem::is_directory(proc)) << proc << " is not available";
  ASSERT_EQ(Sealkeep("hsm provision --init --so-pin-file " + so_pin_ + " " + TokenArgs()).rc, 0);
  CliRun r = Sealkeep("hsm rotate " + TokenArgs() + " --sync-dir " + proc);
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("sync_failed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(proc), std::string::npos) << r.out;
}

}  // namespace
}  // namespace sk::hsm
