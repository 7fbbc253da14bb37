// The fleet host key in a real SoftHSM2 token (hsm/pkcs11/ecdh_key.h): made once, found
// again by its label, its private half never readable, and its ECDH the same as software's.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "crypto/recovery_wrap.h"
#include "hsm/pkcs11/ecdh_key.h"
#include "hsm/pkcs11/objects.h"
#include "hsm/pkcs11/open_token.h"
#include "tests/fixtures/temp_dir.h"
#include "tests/hsm/pkcs11/test_util.h"

namespace sk::hsm::pkcs11 {
namespace {

using sk::testing::SoftHsmToken;
using sk::testing::TempDir;

constexpr char kLabel[] = "sealkeep-fleet-host";

// The token objects of `cls` labelled kLabel.
std::vector<ck_object_handle_t> Objects(const Session& session, ck_object_class_t cls) {
  std::string label = kLabel;
  ck_attribute tmpl[] = {Attr(CKA_CLASS, &cls, sizeof cls), Attr(CKA_LABEL, label.data(), label.size())};
  auto found = FindObjects(session, tmpl);
  EXPECT_TRUE(found.ok()) << found.status().ToString();
  return found.ok() ? *found : std::vector<ck_object_handle_t>{};
}

TEST(TokenEcdhKey, IsMadeOnceFoundAgainAndAgreesWithSoftwareEcdh) {
  TempDir dir("p11-ecdh");
  SoftHsmToken token(dir.path());
  EXPECT_EQ(OpenEcdhKey(token.Config(), kLabel, false).status().reason(), "ecdh_key_not_found");
  Result<std::unique_ptr<EcdhPrivateKey>> key = OpenEcdhKey(token.Config(), kLabel, true);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  const Bytes public_key = (*key)->public_key();
  ASSERT_EQ(public_key.size(), 65U);
  ASSERT_EQ(public_key[0], 0x04);

  // ECDH with a software peer: both sides get the same secret.
  Result<RecoveryKeyPair> peer = GenerateRecoveryKey();
  ASSERT_TRUE(peer.ok());
  Result<SecretBytes> z_token = (*key)->SharedSecret(peer->public_key);
  ASSERT_TRUE(z_token.ok()) << z_token.status().ToString();
  Result<std::unique_ptr<EcdhPrivateKey>> soft = SoftwareEcdhKey(peer->private_key.Clone());
  ASSERT_TRUE(soft.ok());
  Result<SecretBytes> z_soft = (*soft)->SharedSecret(public_key);
  ASSERT_TRUE(z_soft.ok());
  EXPECT_TRUE(z_token->Equals(*z_soft));

  // A blob wrapped to the token's key opens through the token, and only with its AAD.
  Result<std::unique_ptr<RecoverySealer>> sealer = RecoverySealer::Create(public_key);
  ASSERT_TRUE(sealer.ok());
  const SecretBytes dek = NewKey();
  Result<Bytes> blob = (*sealer)->Seal(dek, ToBytes("web-1|apps/web/db|1"));
  ASSERT_TRUE(blob.ok());
  std::unique_ptr<RecoveryOpener> opener = RecoveryOpener::Create(std::move(*key));
  Result<SecretBytes> opened = opener->Open(*blob, ToBytes("web-1|apps/web/db|1"));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_TRUE(opened->Equals(dek));
  EXPECT_FALSE(opener->Open(*blob, ToBytes("db-1|apps/web/db|1")).ok());

  // Opened again, it is the same key; no second one is made.
  Result<std::unique_ptr<EcdhPrivateKey>> again = OpenEcdhKey(token.Config(), kLabel, true);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->public_key(), public_key);

  // Its private half is sensitive, never extractable, and its value is never shown.
  auto t = OpenAndLogin(token.Config());
  ASSERT_TRUE(t.ok());
  auto found = Objects(t->session, CKO_PRIVATE_KEY);
  ASSERT_EQ(found.size(), 1U);
  EXPECT_TRUE(GetBool(t->session, found.front(), CKA_SENSITIVE).value());
  EXPECT_FALSE(GetBool(t->session, found.front(), CKA_EXTRACTABLE).value());
  EXPECT_TRUE(GetBool(t->session, found.front(), CKA_TOKEN).value());
  EXPECT_FALSE(GetBytes(t->session, found.front(), CKA_VALUE).ok())
      << "the private scalar must not be readable";
}

// Half a key pair left on the token (a public object deleted by hand) is refused, and no
// second pair is made beside it.
TEST(TokenEcdhKey, HalfAKeyPairIsRefusedAndNotCompletedWithAnotherPair) {
  TempDir dir("p11-ecdh-half");
  SoftHsmToken token(dir.path());
  ASSERT_TRUE(OpenEcdhKey(token.Config(), kLabel, true).ok());
  auto t = OpenAndLogin(token.Config());
  ASSERT_TRUE(t.ok());
  auto found = Objects(t->session, CKO_PUBLIC_KEY);
  ASSERT_EQ(found.size(), 1U);
  ASSERT_TRUE(DestroyObject(t->session, found.front()).ok());
  EXPECT_EQ(OpenEcdhKey(token.Config(), kLabel, true).status().reason(), "ecdh_key_incomplete");
  EXPECT_EQ(OpenEcdhKey(token.Config(), kLabel, false).status().reason(), "ecdh_key_incomplete");
  EXPECT_EQ(Objects(t->session, CKO_PRIVATE_KEY).size(), 1U);
}

}  // namespace
}  // namespace sk::hsm::pkcs11
