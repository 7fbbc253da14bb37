// Master-key labels and the session copies the backend works with.
#include <gtest/gtest.h>

#include "hsm/pkcs11/master_key.h"
#include "hsm/pkcs11/objects.h"
#include "hsm/pkcs11/open_token.h"
#include "tests/fixtures/temp_dir.h"
#include "tests/hsm/pkcs11/test_util.h"

namespace sk::hsm::pkcs11 {
namespace {

using sk::testing::SoftHsmToken;
using sk::testing::TempDir;

TEST(MasterKeyLabel, OnlyExactGenerationLabelsCount) {
  EXPECT_EQ(MasterKeyLabel(1), "sealkeep-master-g1");
  EXPECT_EQ(ParseMasterKeyLabel("sealkeep-master-g1"), 1u);
  EXPECT_EQ(ParseMasterKeyLabel("sealkeep-master-g4294967295"), 4294967295u);
  for (const char* bad :
       {"sealkeep-master-g0", "sealkeep-master-g01", "sealkeep-master-g", "sealkeep-master-g1x",
        "sealkeep-master-g4294967296", "sealkeep-master-g-1", "other-g1", "Sealkeep-master-g1"}) {
    EXPECT_FALSE(ParseMasterKeyLabel(bad).has_value()) << bad;
  }
}

TEST(MasterKeySessionCopy, KeepsTheProtectionsAndEncryptsLikeTheOriginal) {
  TempDir dir("p11-mk");
  SoftHsmToken token(dir.path());
  auto t = OpenAndLogin(token.Config());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto keys = ListMasterKeys(t->session);
  ASSERT_TRUE(keys.ok() && keys->size() == 1u);
  auto copy = SessionCopy(t->session, keys->front());
  ASSERT_TRUE(copy.ok()) << copy.status().ToString();
  EXPECT_FALSE(GetBool(t->session, *copy, CKA_TOKEN).value());
  EXPECT_TRUE(GetBool(t->session, *copy, CKA_SENSITIVE).value());
  EXPECT_FALSE(GetBool(t->session, *copy, CKA_EXTRACTABLE).value());
  EXPECT_TRUE(GetBool(t->session, *copy, CKA_NEVER_EXTRACTABLE).value());
  EXPECT_FALSE(GetBytes(t->session, *copy, CKA_VALUE).ok()) << "the copy's value must not be readable";
  // Not a token object: no new master key appears on the token.
  EXPECT_EQ(ListMasterKeys(t->session)->size(), 1u);
  // A blob wrapped by the backend (which uses its own copy) opens with this copy's
  // original, so copy and original are the same key.
  auto backend = OpenOrDie(token);
  ASSERT_NE(backend, nullptr);
  SecretBytes key = NewKey();
  auto blob = backend->Wrap(key, {});
  ASSERT_TRUE(blob.ok());
  backend.reset();
  auto again = OpenOrDie(token);
  auto back = again->Unwrap(*blob, {});
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->Equals(key));
}

}  // namespace
}  // namespace sk::hsm::pkcs11
