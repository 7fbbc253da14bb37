// Provisioning against a real swtpm: what it creates, that running it again is safe and
// says what exists, what `status` reports, and what it refuses.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include "hsm/tpm/inspect.h"
#include "hsm/tpm/nv_anchor.h"
#include "hsm/tpm/record_format.h"
#include "hsm/tpm/sealed_file_format.h"
#include "tests/hsm/tpm/test_util.h"

namespace sk::hsm::tpm {
namespace {

using sk::testing::ReadFile;
using sk::testing::RunCommand;
using sk::testing::TempDir;
using sk::testing::WriteFile;

std::string StateOf(const ProvisionReport& r, const std::string& item) {
  for (const auto& s : r.steps)
    if (s.item == item) return s.state;
  return "missing";
}

class ProvisionTest : public TpmTest {};

TEST_F(ProvisionTest, ProvisionCreatesRecordSealedKeyAndNvIndices) {
  config_.pcrs = {7};
  auto report = ProvisionTpm(config_);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(StateOf(*report, "record"), "created");
  EXPECT_EQ(StateOf(*report, "sealed key"), "created");
  EXPECT_EQ(StateOf(*report, "NV counter"), "created");
  EXPECT_EQ(StateOf(*report, "NV anchor"), "created");
  EXPECT_EQ(StateOf(*report, "NV anchor contents"), "initialised");
  EXPECT_EQ(report->keyset_id.size(), 16u);
  EXPECT_NE(report->tpm.find("IBM"), std::string::npos) << report->tpm;

  struct stat st {};
  ASSERT_EQ(::stat(dir_.Join("state/tpm-record").c_str(), &st), 0);
  ASSERT_EQ(::stat(dir_.Join("state/master-00000001.sealed").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(dir_.Join("state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto file = ParseSealedFile(ToBytes(ReadFile(dir_.Join("state/master-00000001.sealed"))));
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->pcr_mask, 1u << 7);
  EXPECT_FALSE(file->auth_required());
  EXPECT_EQ(swtpm_.TransientHandles(), 0);
  EXPECT_EQ(swtpm_.LoadedSessions(), 0);
}

TEST_F(ProvisionTest, ProvisioningTwiceChangesNothingAndSaysWhatExists) {
  Provision();
  std::string record = ReadFile(dir_.Join("state/tpm-record"));
  std::string sealed = ReadFile(dir_.Join("state/master-00000001.sealed"));
  config_.pcrs = {7, 11};  // differs from the existing seal: kept, with a note
  auto again = ProvisionTpm(config_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(again->created_anything());
  for (const auto& s : again->steps) EXPECT_EQ(s.state, "exists") << s.item;
  ASSERT_EQ(again->notes.size(), 1u);
  EXPECT_NE(again->notes[0].find("7,11"), std::string::npos);
  EXPECT_EQ(ReadFile(dir_.Join("state/tpm-record")), record);
  EXPECT_EQ(ReadFile(dir_.Join("state/master-00000001.sealed")), sealed);
  EXPECT_EQ(swtpm_.TransientHandles(), 0);
}

TEST_F(ProvisionTest, AnInterruptedProvisioningIsFinishedByTheNextRun) {
  Provision();
  // As if the first run stopped after writing the sealed key: the NV indices are gone.
  ASSERT_EQ(RunCommand("TPM2TOOLS_TCTI='" + swtpm_.Tcti() + "' tpm2_nvundefine 0x01500101 -C o"), 0);
  auto again = ProvisionTpm(config_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(StateOf(*again, "sealed key"), "exists");
  EXPECT_EQ(StateOf(*again, "NV counter"), "exists");
  EXPECT_EQ(StateOf(*again, "NV anchor"), "created");
  EXPECT_TRUE(Open().ok());
}

TEST_F(ProvisionTest, ProvisioningRefusesNvIndicesItDidNotCreate) {
  Provision();
  // A second state folder on the same TPM, at the same NV handles.
  TpmConfig other = config_;
  other.state_dir = dir_.Join("other");
  auto report = ProvisionTpm(other);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().reason(), "already_exists");
  EXPECT_NE(std::string(report.status().message()).find("0x01500100"), std::string::npos);
  // Nothing was written there.
  struct stat st {};
  EXPECT_NE(::stat(dir_.Join("other/tpm-record").c_str(), &st), 0);
  // With other handles it works, and both installations open.
  other.nv_counter_index = 0x01500200;
  other.nv_anchor_index = 0x01500201;
  ASSERT_TRUE(ProvisionTpm(other).ok());
  EXPECT_TRUE(TpmBackend::Open(other).ok());
  EXPECT_TRUE(Open().ok());
}

TEST_F(ProvisionTest, OpeningAnUnprovisionedFolderSaysNotProvisioned) {
  auto b = Open();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().reason(), "not_provisioned");
}

TEST_F(ProvisionTest, MissingNvIndicesMakeOpenSayNotProvisioned) {
  Provision();
  ASSERT_EQ(RunCommand("TPM2TOOLS_TCTI='" + swtpm_.Tcti() + "' tpm2_nvundefine 0x01500100 -C o"), 0);
  auto b = Open();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().reason(), "not_provisioned");
  EXPECT_EQ(swtpm_.TransientHandles(), 0);
}

TEST_F(ProvisionTest, ConfiguredIndicesMustMatchTheRecord) {
  Provision();
  config_.nv_anchor_index = 0x01500999;
  auto b = Open();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().reason(), "bad_config");
}

TEST_F(ProvisionTest, BadPcrListsAreRefusedBeforeAnythingIsWritten) {
  config_.pcrs = {7, 24};
  auto report = ProvisionTpm(config_);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().reason(), "bad_pcrs");
  struct stat st {};
  EXPECT_NE(::stat(dir_.Join("state").c_str(), &st), 0);
}

TEST_F(ProvisionTest, AnUnreachableTpmIsReportedAsUnavailable) {
  TpmConfig unreachable = config_;
  unreachable.tcti = "swtpm:host=127.0.0.1,port=1";
  auto report = ProvisionTpm(unreachable);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().reason(), "tpm_unavailable");
  EXPECT_EQ(report.status().code(), Code::kUnavailable);
  Provision();
  auto b = TpmBackend::Open(unreachable);  // a provisioned folder, but no TPM at that address
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().reason(), "tpm_unavailable");
}

TEST_F(ProvisionTest, StatusShowsPoliciesPcrMatchAndTheAnchorWithoutUnsealing) {
  config_.pcrs = {7, 11};
  UseAuthFile("correct horse battery staple");
  Provision();
  config_.auth_file = dir_.Join("nonexistent");  // status never needs the auth value
  auto st = InspectTpm(config_);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  ASSERT_EQ(st->generations.size(), 1u);
  EXPECT_EQ(st->generations[0].pcrs, (std::vector<int>{7, 11}));
  EXPECT_TRUE(st->generations[0].auth_required);
  EXPECT_TRUE(st->generations[0].pcrs_match);
  EXPECT_TRUE(st->counter.defined);
  EXPECT_TRUE(st->anchor.defined);
  ASSERT_TRUE(st->anchored.has_value());
  EXPECT_EQ(st->anchored->seq, 0u);
  EXPECT_TRUE(st->anchor_keyset_matches);
  EXPECT_TRUE(st->problems.empty());

  swtpm_.ExtendPcr(11);
  st = InspectTpm(config_);
  ASSERT_TRUE(st.ok());
  EXPECT_FALSE(st->generations[0].pcrs_match);
  EXPECT_EQ(st->generations[0].differing_pcrs, (std::vector<int>{11}));
  EXPECT_FALSE(st->problems.empty());
}

}  // namespace
}  // namespace sk::hsm::tpm
