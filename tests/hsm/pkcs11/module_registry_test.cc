// The process-wide module registry: backends share one C_Initialize, the last close
// finalizes, and a later open with another SOFTHSM2_CONF initialises afresh.
#include <gtest/gtest.h>

#include <filesystem>

#include "hsm/pkcs11/module.h"
#include "hsm/pkcs11/pkcs11_backend.h"
#include "tests/fixtures/temp_dir.h"
#include "tests/hsm/pkcs11/test_util.h"

namespace sk::hsm {
namespace {

using pkcs11::LoadModule;
using pkcs11::ModuleReferences;
using sk::testing::kSoftHsmModule;
using sk::testing::SoftHsmToken;
using sk::testing::TempDir;

TEST(ModuleRegistry, TwoTokensShareOneInitialisationUntilTheLastCloses) {
  TempDir dir("p11-reg");
  SoftHsmToken alpha(dir.path(), "alpha");
  SoftHsmToken beta(dir.path(), "beta");
  EXPECT_EQ(ModuleReferences(kSoftHsmModule), 0u);
  auto a = OpenOrDie(alpha);
  EXPECT_EQ(ModuleReferences(kSoftHsmModule), 1u);
  auto b = OpenOrDie(beta);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(ModuleReferences(kSoftHsmModule), 2u);
  a.reset();
  EXPECT_EQ(ModuleReferences(kSoftHsmModule), 1u);
  // beta still works after alpha closed (no C_Finalize, no logout behind its back).
  auto blob = b->Wrap(NewKey(), {});
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  EXPECT_TRUE(b->Unwrap(*blob, {}).ok());
  b.reset();
  EXPECT_EQ(ModuleReferences(kSoftHsmModule), 0u);
}

TEST(ModuleRegistry, TwoBackendsOnOneTokenKeepEachOtherLoggedIn) {
  TempDir dir("p11-reg");
  SoftHsmToken token(dir.path());
  auto a = OpenOrDie(token);
  auto b = OpenOrDie(token);
  ASSERT_TRUE(a && b);
  auto blob = a->Wrap(NewKey(), {});
  ASSERT_TRUE(blob.ok());
  a.reset();
  EXPECT_TRUE(b->Unwrap(*blob, {}).ok());
  EXPECT_TRUE(b->ReadAnchor().ok());
}

// SoftHSM2 does not see tokens another process initialises while it is initialised
// here, so the fixture initialises through the module then (tests/fixtures/softhsm.h).
TEST(ModuleRegistry, ATokenMadeWhileABackendIsOpenIsUsable) {
  TempDir dir("p11-reg");
  SoftHsmToken alpha(dir.path(), "alpha");
  auto a = OpenOrDie(alpha);
  ASSERT_NE(a, nullptr);
  SoftHsmToken beta(dir.path(), "beta");
  auto b = OpenOrDie(beta);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a->Info().keyset_id, b->Info().keyset_id);
  auto blob = b->Wrap(NewKey(), {});
  ASSERT_TRUE(blob.ok());
  EXPECT_TRUE(b->Unwrap(*blob, {}).ok());
  EXPECT_EQ(a->Unwrap(*blob, {}).status().reason(), "wrong_token");
}

TEST(ModuleRegistry, ASymlinkToTheModuleIsTheSameModule) {
  TempDir dir("p11-reg");
  sk::testing::PrepareSoftHsmDir(dir.path());
  const std::string link = dir.Join("softhsm-link.so");
  std::filesystem::create_symlink(kSoftHsmModule, link);
  auto m1 = LoadModule(kSoftHsmModule);
  auto m2 = LoadModule(link);
  ASSERT_TRUE(m1.ok() && m2.ok()) << m1.status().ToString() << m2.status().ToString();
  EXPECT_EQ((*m1)->path(), (*m2)->path());
  EXPECT_EQ(ModuleReferences(link), 2u);
}

TEST(ModuleRegistry, ReopeningAfterTheLastCloseReadsANewSoftHsmConf) {
  TempDir first_dir("p11-reg");
  TempDir second_dir("p11-reg");
  {
    SoftHsmToken first(first_dir.path(), "first");
    auto backend = OpenOrDie(first);
    ASSERT_NE(backend, nullptr);
  }
  SoftHsmToken second(second_dir.path(), "second");  // sets SOFTHSM2_CONF to the second dir
  auto backend = OpenOrDie(second);
  ASSERT_NE(backend, nullptr);
  // The module now reads the second folder: the first token is not there.
  Pkcs11Config old = second.Config();
  old.token_label = "first";
  old.pin_file = first_dir.Join("first.pin");
  EXPECT_EQ(pkcs11::OpenPkcs11Backend(old).status().reason(), "token_not_found");
}

}  // namespace
}  // namespace sk::hsm
