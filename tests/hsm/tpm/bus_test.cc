// What crosses the bus between sealkeep and the TPM: every command and response is
// captured with tpm2-tss's pcap TCTI while provisioning, opening and anchoring, and the
// capture must not contain the master key, the anchor auth value or the auth value in
// clear (salted sessions with parameter encryption, HMAC authorisation).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

#include "hsm/tpm/esys_context.h"
#include "hsm/tpm/keyset.h"
#include "hsm/tpm/primary.h"
#include "tests/hsm/tpm/test_util.h"

namespace sk::hsm::tpm {
namespace {

using sk::testing::ReadFile;

bool Contains(const std::string& haystack, std::span<const std::uint8_t> needle) {
  std::string n(needle.begin(), needle.end());
  return haystack.find(n) != std::string::npos;
}

class BusTest : public TpmTest {};

TEST_F(BusTest, NoSecretCrossesTheBusInClear) {
  std::string pcap = dir_.Join("bus.pcap");
  ::setenv("TCTI_PCAP_FILE", pcap.c_str(), 1);
  UseAuthFile("bus auth value");
  config_.pcrs = {7};
  std::string plain_tcti = config_.tcti;
  config_.tcti = "pcap:" + plain_tcti;
  Provision();
  {
    auto b = OpenOrFail();
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(b->AdvanceAnchor(1, Digest{}).ok());
    ASSERT_TRUE(b->ReadAnchor().ok());
    ASSERT_TRUE(b->Rotate().ok());
    ASSERT_TRUE(b->Reseal({7}).ok());
  }
  ::unsetenv("TCTI_PCAP_FILE");
  std::string capture = ReadFile(pcap);
  ASSERT_GT(capture.size(), 1000u);

  // The secrets, unsealed here over a connection that is not captured.
  auto esys = EsysContext::Open(plain_tcti);
  ASSERT_TRUE(esys.ok());
  StateDir dir(config_.state_dir);
  auto record = LoadRecord(dir);
  ASSERT_TRUE(record.ok());
  auto primary = LoadPrimary((*esys)->get(), 0);
  ASSERT_TRUE(primary.ok());
  auto ks = UnsealKeyset((*esys)->get(), primary->get(), dir, *record, config_.auth_file);
  ASSERT_TRUE(ks.ok()) << ks.status().ToString();
  ASSERT_EQ(ks->keys.size(), 2u);

  // The capture works: public anchor contents (which hold the keyset id) are in it.
  EXPECT_TRUE(Contains(capture, record->keyset_id));
  for (const auto& [g, key] : ks->keys) EXPECT_FALSE(Contains(capture, key.Expose())) << "generation " << g;
  EXPECT_FALSE(Contains(capture, ks->anchor_auth.Expose()));
  EXPECT_FALSE(Contains(capture, ks->auth_value.Expose()));
  EXPECT_FALSE(Contains(capture, ToBytes("bus auth value")));
}

}  // namespace
}  // namespace sk::hsm::tpm
