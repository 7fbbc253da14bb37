// Sealing and unsealing against a real swtpm: the PCR policy (boot state), re-sealing,
// the auth value, objects from another TPM, and that nothing stays loaded in the TPM.
#include <gtest/gtest.h>

#include <signal.h>

#include <cstdlib>
#include <filesystem>

#include "hsm/tpm/pcr.h"
#include "hsm/tpm/sealed_file_format.h"
#include "hsm/tpm/sealed_key.h"
#include "hsm/tpm/state_dir.h"
#include "tests/hsm/tpm/test_util.h"

namespace sk::hsm::tpm {
namespace {

using sk::testing::ReadFile;
using sk::testing::Swtpm;
using sk::testing::TempDir;
using sk::testing::WriteFile;

class SealTest : public TpmTest {};

// Sets an environment variable for one scope (this test process only).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) { ::setenv(name, value.c_str(), 1); }
  ~ScopedEnv() { ::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

TEST_F(SealTest, ProvisionedKeyOpensAndReportsTheTpm) {
  Provision();
  auto b = OpenOrFail();
  ASSERT_NE(b, nullptr);
  BackendInfo info = b->Info();
  EXPECT_EQ(info.kind, "tpm");
  EXPECT_EQ(info.current_generation, 1u);
  EXPECT_EQ(info.generations, (std::vector<std::uint32_t>{1}));
  EXPECT_TRUE(info.hardware_counter);
  EXPECT_NE(info.identity.find("IBM"), std::string::npos) << info.identity;
  EXPECT_NE(info.anchor_location.find("0x01500100"), std::string::npos);
  EXPECT_EQ(info.keyset_id.size(), 16u);
}

TEST_F(SealTest, ChangedPcrMakesOpenFailWithBootStateChangedNamingThePcr) {
  config_.pcrs = {7};
  Provision();
  ASSERT_NE(OpenOrFail(), nullptr);
  swtpm_.ExtendPcr(7);
  auto b = Open();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().reason(), "boot_state_changed");
  EXPECT_EQ(b.status().code(), Code::kSealed);
  EXPECT_NE(
      std::string(b.status().message()).find("boot state changed: PCR 7 differs from the sealed policy"),
      std::string::npos)
      << b.status().message();
  EXPECT_EQ(swtpm_.TransientHandles(), 0);
  EXPECT_EQ(swtpm_.LoadedSessions(), 0);

  swtpm_.Restart();  // a reboot into the same boot state resets the PCRs
  auto again = Open();
  EXPECT_TRUE(again.ok()) << again.status().ToString();
}

TEST_F(SealTest, ExtendingAnUnselectedPcrDoesNotMatter) {
  config_.pcrs = {7};
  Provision();
  swtpm_.ExtendPcr(8);
  EXPECT_TRUE(Open().ok());
}

TEST_F(SealTest, TwoChangedPcrsAreBothNamed) {
  config_.pcrs = {7, 11, 14};
  Provision();
  swtpm_.ExtendPcr(7);
  swtpm_.ExtendPcr(14);
  auto b = Open();
  ASSERT_FALSE(b.ok());
  EXPECT_NE(std::string(b.status().message()).find("PCRs 7, 14 differ from the sealed policy"),
            std::string::npos)
      << b.status().message();
}

TEST_F(SealTest, ResealToTheNewBootStateKeepsTheKeyAndOpensAfterTheChange) {
  config_.pcrs = {7};
  Provision();
  auto b = OpenOrFail();
  ASSERT_NE(b, nullptr);
  auto blob = b->Wrap(NewKey(), ToBytes("aad"));
  ASSERT_TRUE(blob.ok());
  auto old_key = b->Unwrap(*blob, ToBytes("aad"));
  ASSERT_TRUE(old_key.ok());

  // An accepted firmware update: the boot state changes while the agent runs.
  swtpm_.ExtendPcr(7);
  ASSERT_TRUE(b->Reseal({7, 11}).ok());
  auto seals = b->Seals();
  ASSERT_EQ(seals.size(), 1u);
  EXPECT_EQ(seals[0].pcrs, (std::vector<int>{7, 11}));
  b.reset();

  auto reopened = Open();
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  auto same = (*reopened)->Unwrap(*blob, ToBytes("aad"));
  ASSERT_TRUE(same.ok()) << same.status().ToString();
  EXPECT_TRUE(same->Equals(*old_key));
  EXPECT_EQ(swtpm_.TransientHandles(), 0);

  // The old boot state no longer unseals it.
  reopened->reset();
  swtpm_.Restart();
  auto old_state = Open();
  ASSERT_FALSE(old_state.ok());
  EXPECT_EQ(old_state.status().reason(), "boot_state_changed");
}

TEST_F(SealTest, ResealThroughTheKeyBackendInterface) {
  Provision();
  auto b = OpenOrFail();
  ASSERT_NE(b, nullptr);
  KeyBackend& kb = *b;
  EXPECT_TRUE(ResealTpmBackend(kb, {7}).ok());
  EXPECT_EQ(b->Seals()[0].pcrs, (std::vector<int>{7}));
  Status bad = ResealTpmBackend(kb, {99});
  EXPECT_EQ(bad.reason(), "bad_pcrs");
}

TEST_F(SealTest, AStagedResealIsNotInEffectUntilCommittedAndDroppingItChangesNothing) {
  config_.pcrs = {7};
  Provision();
  auto b = OpenOrFail();
  ASSERT_NE(b, nullptr);
  const std::string live = config_.state_dir + "/" + SealedFileName(1);
  const std::string staged = config_.state_dir + "/" + StagedSealedFileName(1);
  const std::string before = ReadFile(live);
  swtpm_.ExtendPcr(7);

  auto pending = b->BeginReseal({7});
  ASSERT_TRUE(pending.ok()) << pending.status().ToString();
  EXPECT_TRUE(std::filesystem::exists(staged));
  EXPECT_TRUE(ReadFile(live) == before) << "the live seal is untouched while staged";
  EXPECT_EQ(b->Seals()[0].pcrs, (std::vector<int>{7}));
  // Another process opening the state folder now reads the live seal only: the old boot
  // state, which no longer matches.
  EXPECT_EQ(Open().status().reason(), "boot_state_changed");
  // Nothing else that changes the seals runs meanwhile, and nothing waits for it.
  EXPECT_EQ(b->Rotate().status().reason(), "reseal_in_progress");
  EXPECT_EQ(b->Retire(1).reason(), "reseal_in_progress");
  EXPECT_EQ(b->BeginReseal({7}).status().reason(), "reseal_in_progress");

  pending->reset();  // dropped: the caller could not journal it
  EXPECT_FALSE(std::filesystem::exists(staged));
  EXPECT_TRUE(ReadFile(live) == before);
  b.reset();
  EXPECT_EQ(Open().status().reason(), "boot_state_changed") << "still sealed to the old PCR 7";
  EXPECT_EQ(swtpm_.TransientHandles(), 0);
  EXPECT_EQ(swtpm_.LoadedSessions(), 0);
}

TEST_F(SealTest, ACommittedResealReplacesTheLiveSealAndLeavesNoStagedFile) {
  config_.pcrs = {7};
  Provision();
  auto b = OpenOrFail();
  ASSERT_NE(b, nullptr);
  swtpm_.ExtendPcr(7);
  auto pending = b->BeginReseal({7});
  ASSERT_TRUE(pending.ok()) << pending.status().ToString();
  ASSERT_TRUE((*pending)->Commit().ok());
  EXPECT_EQ((*pending)->Commit().reason(), "reseal_done") << "a re-seal commits once";
  pending->reset();  // after Commit, dropping it removes nothing
  EXPECT_FALSE(std::filesystem::exists(config_.state_dir + "/" + StagedSealedFileName(1)));
  EXPECT_TRUE(b->Rotate().ok()) << "no longer in progress";
  b.reset();
  auto reopened = Open();
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ((*reopened)->Seals().size(), 2u);
}

TEST_F(SealTest, AResealWhoseRenameFailsKeepsTheOldSealAndItsStagedFileIsRemoved) {
  config_.pcrs = {7};
  Provision();
  auto b = OpenOrFail();
  ASSERT_NE(b, nullptr);
  swtpm_.ExtendPcr(7);
  auto pending = b->BeginReseal({7});
  ASSERT_TRUE(pending.ok()) << pending.status().ToString();
  StateDir::SetFaultHookForTesting([](std::string_view op, const std::string&) {
    return op == "rename" ? Unavailable("injected rename failure", "state_io_error") : OkStatus();
  });
  Status st = (*pending)->Commit();
  StateDir::SetFaultHookForTesting(nullptr);
  EXPECT_EQ(st.reason(), "state_io_error");
  EXPECT_FALSE(std::filesystem::exists(config_.state_dir + "/" + StagedSealedFileName(1)));
  b.reset();
  EXPECT_EQ(Open().status().reason(), "boot_state_changed");
}

TEST_F(SealTest, AResealThatCannotBeStagedLeavesNothingPending) {
  config_.pcrs = {7};
  Provision();
  auto b = OpenOrFail();
  ASSERT_NE(b, nullptr);
  StateDir::SetFaultHookForTesting([](std::string_view op, const std::string&) {
    return op == "write" ? Unavailable("injected write failure", "state_io_error") : OkStatus();
  });
  auto failed = b->BeginReseal({7});
  StateDir::SetFaultHookForTesting(nullptr);
  EXPECT_EQ(failed.status().reason(), "state_io_error");
  EXPECT_FALSE(std::filesystem::exists(config_.state_dir + "/" + StagedSealedFileName(1)));
  auto again = b->BeginReseal({7});
  EXPECT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(swtpm_.TransientHandles(), 0);
  again->reset();

  // A TPM error midway (the TPM is gone: swtpm killed, not restarted) leaves nothing
  // pending either.
  ASSERT_EQ(::kill(std::atoi(ReadFile(swtpm_.state_dir() + "/swtpm.pid").c_str()), SIGKILL), 0);
  auto broken = b->BeginReseal({7});
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().reason(), "reseal_in_progress") << broken.status().ToString();
  EXPECT_NE(b->BeginReseal({7}).status().reason(), "reseal_in_progress");
}

TEST_F(SealTest, ResealingRequiresATpmBackend) {
  class NotTpm : public KeyBackend {
   public:
    Result<Bytes> Wrap(const SecretBytes&, ByteView) override { return Unimplemented(""); }
    Result<SecretBytes> Unwrap(ByteView, ByteView) override { return Unimplemented(""); }
    Result<Anchor> ReadAnchor() override { return Unimplemented(""); }
    Result<Anchor> AdvanceAnchor(std::uint64_t, const Digest&) override { return Unimplemented(""); }
    BackendInfo Info() const override { return {"pkcs11", "", "", 1, {1}, false, ""}; }
    Result<std::uint32_t> Rotate() override { return Unimplemented(""); }
    Status Retire(std::uint32_t) override { return Unimplemented(""); }
  } other;
  Status st = ResealTpmBackend(other, {7});
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_EQ(st.reason(), "not_tpm_backend");
  EXPECT_EQ(BeginResealTpmBackend(other, {7}).status().reason(), "not_tpm_backend");
}

TEST_F(SealTest, AuthValueIsRequiredAndAWrongOneIsAuthIncorrect) {
  UseAuthFile("the right auth value");
  Provision();
  ASSERT_NE(OpenOrFail(), nullptr);

  WriteFile(config_.auth_file, "a wrong auth value\n");
  auto wrong = Open();
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().reason(), "auth_incorrect");
  EXPECT_EQ(wrong.status().code(), Code::kUnauthenticated);
  // Neither value appears in the message.
  EXPECT_EQ(std::string(wrong.status().message()).find("auth value\n"), std::string::npos);
  EXPECT_EQ(std::string(wrong.status().message()).find("wrong auth"), std::string::npos);
  EXPECT_EQ(swtpm_.TransientHandles(), 0);

  // One failure is below swtpm's lockout threshold (3): the right value still opens.
  WriteFile(config_.auth_file, "the right auth value\n");
  EXPECT_TRUE(Open().ok());

  std::string missing = config_.auth_file + ".missing";
  config_.auth_file = missing;
  auto no_file = Open();
  ASSERT_FALSE(no_file.ok());
  EXPECT_EQ(no_file.status().reason(), "credential_missing");
}

TEST_F(SealTest, RepeatedWrongAuthValuesLockTheTpmOutUntilCleared) {
  UseAuthFile("the right auth value");
  Provision();
  WriteFile(config_.auth_file, "wrong\n");
  std::string last;
  for (int i = 0; i < 4; ++i) last = std::string(Open().status().reason());
  EXPECT_EQ(last, "auth_locked_out");
  WriteFile(config_.auth_file, "the right auth value\n");
  EXPECT_EQ(Open().status().reason(), "auth_locked_out");
  swtpm_.ClearLockout();
  EXPECT_TRUE(Open().ok());
}

TEST_F(SealTest, AnAuthValueEndingInZeroBytesOpens) {
  // A TPM drops trailing zero bytes of the auth values it stores; a derived auth value that
  // ends in 0x00 (1 in 256 credentials) must still authorise.
  std::string credential;
  for (int i = 0; credential.empty(); ++i) {
    std::string candidate = "zero-tail-" + std::to_string(i);
    if (DeriveAuthValue(SecretBytes::CopyFrom(AsBytes(candidate))).Expose().back() == 0)
      credential = candidate;
  }
  UseAuthFile(credential);
  Provision();
  auto b = Open();
  EXPECT_TRUE(b.ok()) << b.status().ToString();
}

TEST_F(SealTest, AuthValueFromTheCredentialDirectoryIsUsedWhenNoFileIsConfigured) {
  TempDir creds("tpm-creds");
  WriteFile(creds.Join("tpm-auth"), "from systemd\n");
  {
    ScopedEnv env("CREDENTIALS_DIRECTORY", creds.path());
    Provision();
    auto seals = OpenOrFail();
    ASSERT_NE(seals, nullptr);
    EXPECT_TRUE(seals->Seals()[0].auth_required);
  }
  auto without = Open();
  ASSERT_FALSE(without.ok());
  EXPECT_EQ(without.status().reason(), "credential_missing");
}

TEST_F(SealTest, StateFolderCopiedFromAnotherTpmIsWrongTpm) {
  Provision();
  TempDir other_dir("tpm-other");
  Swtpm other(other_dir.path());
  TpmConfig other_config = other.Config(other_dir.Join("state"));
  ASSERT_TRUE(ProvisionTpm(other_config).ok());

  // This TPM's whole state folder, presented to the other TPM.
  std::filesystem::remove_all(other_dir.Join("state"));
  std::filesystem::copy(dir_.Join("state"), other_dir.Join("state"));
  auto b = TpmBackend::Open(other_config);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().reason(), "wrong_tpm") << b.status().ToString();
  EXPECT_EQ(other.TransientHandles(), 0);
}

TEST_F(SealTest, SealedFileOfAnotherKeysetIsWrongTpm) {
  Provision();
  TempDir other_dir("tpm-other");
  Swtpm other(other_dir.path());
  ASSERT_TRUE(ProvisionTpm(other.Config(other_dir.Join("state"))).ok());
  std::filesystem::copy_file(other_dir.Join("state/master-00000001.sealed"),
                             dir_.Join("state/master-00000001.sealed"),
                             std::filesystem::copy_options::overwrite_existing);
  auto b = Open();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().reason(), "wrong_tpm");
}

TEST_F(SealTest, EditedPolicyRecordIsMalformedState) {
  config_.pcrs = {7};
  Provision();
  std::string path = dir_.Join("state/master-00000001.sealed");
  auto file = ParseSealedFile(ToBytes(ReadFile(path)));
  ASSERT_TRUE(file.ok());
  // A consistent edit (value and composite) that only the check against the sealed
  // object's authPolicy can notice.
  file->pcr_values[0][0] ^= 0x01;
  file->pcr_composite = PcrComposite(file->pcr_values);
  Bytes edited = EncodeSealedFile(*file);
  WriteFile(path, std::string(edited.begin(), edited.end()));
  auto b = Open();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().reason(), "malformed_state") << b.status().ToString();
}

TEST_F(SealTest, OpeningFiftyTimesLeavesNoObjectOrSessionInTheTpm) {
  config_.pcrs = {7};
  UseAuthFile("auth");
  Provision();
  for (int i = 0; i < 50; ++i) {
    auto b = Open();
    ASSERT_TRUE(b.ok()) << "open " << i << ": " << b.status().ToString();
    if (i % 10 == 0) {
      ASSERT_TRUE((*b)->AdvanceAnchor(static_cast<std::uint64_t>(i), Digest{}).ok());
      ASSERT_TRUE((*b)->Rotate().ok());
    }
  }
  EXPECT_EQ(swtpm_.TransientHandles(), 0);
  EXPECT_EQ(swtpm_.LoadedSessions(), 0);
}

}  // namespace
}  // namespace sk::hsm::tpm
