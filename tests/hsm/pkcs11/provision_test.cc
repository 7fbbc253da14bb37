// Provisioning: creates the master key and anchor, is safe to repeat, initialises a
// free slot on request, and an external tool (pkcs11-tool) agrees about the key.
#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "hsm/pkcs11/provision.h"
#include "tests/fixtures/temp_dir.h"
#include "tests/hsm/pkcs11/test_util.h"

namespace sk::hsm {
namespace {

using pkcs11::Provision;
using pkcs11::ProvisionOptions;
using sk::testing::PrepareSoftHsmDir;
using sk::testing::SoftHsmToken;
using sk::testing::TempDir;
using sk::testing::WriteFile;

ProvisionOptions OptionsFor(const SoftHsmToken& token) {
  ProvisionOptions o;
  o.config = token.Config();
  return o;
}

TEST(Provision, ProvisionCreatesMasterKeyAndAnchor) {
  TempDir dir("p11-prov");
  SoftHsmToken token(dir.path(), "sealkeep", /*provision=*/false);
  auto report = Provision(OptionsFor(token));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_FALSE(report->token_initialised);
  EXPECT_TRUE(report->master_key_created);
  EXPECT_TRUE(report->anchor_created);
  const auto& s = report->status;
  EXPECT_EQ(s.label, "sealkeep");
  ASSERT_EQ(s.keys.size(), 1u);
  const auto& k = s.keys.front();
  EXPECT_EQ(k.generation, 1u);
  EXPECT_EQ(k.label, "sealkeep-master-g1");
  EXPECT_TRUE(k.sensitive && k.always_sensitive && k.never_extractable && k.local && k.usable);
  EXPECT_FALSE(k.extractable);
  EXPECT_EQ(k.keyset_id.size(), 16u);
  EXPECT_EQ(s.keyset_id, k.keyset_id);
  EXPECT_EQ(s.current_generation, 1u);
  EXPECT_TRUE(s.anchor.present);
  EXPECT_TRUE(s.anchor.verifies) << s.anchor.problem;
  EXPECT_EQ(s.anchor.objects, 1u);
  EXPECT_EQ(s.anchor.value.counter, 0u);
  EXPECT_EQ(s.anchor.sealed_by, 1u);
}

TEST(Provision, ProvisioningTwiceCreatesNothingNew) {
  TempDir dir("p11-prov");
  SoftHsmToken token(dir.path());  // provisioned once already
  auto backend = OpenOrDie(token);
  ASSERT_NE(backend, nullptr);
  ASSERT_TRUE(backend->AdvanceAnchor(7, Sha256(AsBytes("seven"))).ok());
  const std::string keyset = backend->Info().keyset_id;
  backend.reset();
  auto again = Provision(OptionsFor(token));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(again->master_key_created);
  EXPECT_FALSE(again->anchor_created);
  EXPECT_EQ(again->status.keyset_id, keyset);
  EXPECT_EQ(again->status.keys.size(), 1u);
  EXPECT_EQ(again->status.anchor.value.seq, 7u) << "an existing anchor is never reset";
  EXPECT_EQ(again->status.anchor.value.counter, 1u);
}

TEST(Provision, InitInitialisesAFreeSlotOnceAndNeverAgain) {
  TempDir dir("p11-prov");
  PrepareSoftHsmDir(dir.path());
  ProvisionOptions o;
  o.config.module = sk::testing::kSoftHsmModule;
  o.config.token_label = "fresh";
  o.config.pin_file = dir.Join("fresh.pin");
  o.so_pin_file = dir.Join("fresh.so-pin");
  o.init = true;
  WriteFile(o.config.pin_file, "user-pin-1234\n");
  WriteFile(o.so_pin_file, "so-pin-5678\n");
  auto first = Provision(o);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(first->token_initialised);
  EXPECT_TRUE(first->master_key_created);
  EXPECT_TRUE(first->anchor_created);
  auto second = Provision(o);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_FALSE(second->token_initialised) << "an existing token is never re-initialised";
  EXPECT_FALSE(second->master_key_created);
  EXPECT_EQ(second->status.keyset_id, first->status.keyset_id);
  EXPECT_EQ(second->status.serial, first->status.serial);
}

TEST(Provision, InitWithoutSoPinFileIsRefused) {
  TempDir dir("p11-prov");
  PrepareSoftHsmDir(dir.path());
  ProvisionOptions o;
  o.config.module = sk::testing::kSoftHsmModule;
  o.config.token_label = "fresh";
  o.config.pin_file = dir.Join("fresh.pin");
  WriteFile(o.config.pin_file, "user-pin-1234\n");
  o.init = true;
  EXPECT_EQ(Provision(o).status().reason(), "so_pin_missing");
}

TEST(Provision, WithoutInitAnAbsentTokenIsTokenNotFound) {
  TempDir dir("p11-prov");
  SoftHsmToken token(dir.path());
  ProvisionOptions o = OptionsFor(token);
  o.config.token_label = "absent";
  EXPECT_EQ(Provision(o).status().reason(), "token_not_found");
}

// pkcs11-tool's block for the object labelled `label`: from its "... Object;" line up
// to the next object's.
std::string ObjectBlock(const std::string& listing, const std::string& label) {
  std::istringstream in(listing);
  std::string line, current;
  auto matches = [&] { return current.find("label:      " + label + "\n") != std::string::npos; };
  while (std::getline(in, line)) {
    if (line.find("Object;") != std::string::npos) {
      if (matches()) return current;
      current.clear();
    }
    current += line + "\n";
  }
  return matches() ? current : "";
}

TEST(Provision, PkcsToolSeesASensitiveNeverExtractableMasterKey) {
  TempDir dir("p11-prov");
  SoftHsmToken token(dir.path());
  int rc = 0;
  std::string listing = token.PkcsTool("--list-objects", &rc);
  ASSERT_EQ(rc, 0) << listing;
  std::string block = ObjectBlock(listing, "sealkeep-master-g1");
  ASSERT_FALSE(block.empty()) << listing;
  EXPECT_NE(block.find("Secret Key Object; AES length 32"), std::string::npos) << block;
  auto pos = block.find("Access:");
  ASSERT_NE(pos, std::string::npos) << block;
  std::string access = block.substr(pos + 7, block.find('\n', pos) - pos - 7);
  std::set<std::string> flags;
  std::istringstream parts(access);
  for (std::string f; std::getline(parts, f, ',');) {
    f.erase(0, f.find_first_not_of(' '));
    f.erase(f.find_last_not_of(' ') + 1);
    flags.insert(f);
  }
  EXPECT_TRUE(flags.count("sensitive")) << access;
  EXPECT_TRUE(flags.count("always sensitive")) << access;
  EXPECT_TRUE(flags.count("never extractable")) << access;
  EXPECT_TRUE(flags.count("local")) << access;
  EXPECT_FALSE(flags.count("extractable")) << access;
  EXPECT_EQ(block.find("VALUE:"), std::string::npos) << "pkcs11-tool could read the key: " << block;
  // The anchor is a private data object: it shows only after login.
  EXPECT_NE(listing.find("sealkeep-anchor"), std::string::npos) << listing;
}

}  // namespace
}  // namespace sk::hsm
