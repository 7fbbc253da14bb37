// The fleet host key in a real swtpm (hsm/tpm/ecdh_key.h): its ECDH is the same as
// software's, a blob wrapped to it opens through the TPM, it loads in no other TPM, a
// damaged blob is refused, and nothing stays loaded in the TPM.
#include <gtest/gtest.h>

#include "crypto/recovery_wrap.h"
#include "hsm/tpm/ecdh_key.h"
#include "tests/hsm/tpm/test_util.h"

namespace sk::hsm::tpm {
namespace {

class TpmEcdhKeyTest : public TpmTest {};

TEST_F(TpmEcdhKeyTest, AgreesWithSoftwareEcdhAndOpensWhatIsWrappedToIt) {
  Result<Bytes> blob = CreateTpmEcdhKey(config_);
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  Result<std::unique_ptr<EcdhPrivateKey>> key = OpenTpmEcdhKey(config_, *blob);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  const Bytes public_key = (*key)->public_key();
  ASSERT_EQ(public_key.size(), 65U);

  Result<RecoveryKeyPair> peer = GenerateRecoveryKey();
  ASSERT_TRUE(peer.ok());
  Result<SecretBytes> z_tpm = (*key)->SharedSecret(peer->public_key);
  ASSERT_TRUE(z_tpm.ok()) << z_tpm.status().ToString();
  Result<std::unique_ptr<EcdhPrivateKey>> soft = SoftwareEcdhKey(peer->private_key.Clone());
  ASSERT_TRUE(soft.ok());
  Result<SecretBytes> z_soft = (*soft)->SharedSecret(public_key);
  ASSERT_TRUE(z_soft.ok());
  EXPECT_TRUE(z_tpm->Equals(*z_soft));

  Result<std::unique_ptr<RecoverySealer>> sealer = RecoverySealer::Create(public_key);
  ASSERT_TRUE(sealer.ok());
  const SecretBytes dek = NewKey();
  Result<Bytes> wrapped = (*sealer)->Seal(dek, ToBytes("db-1|apps/db/password|3"));
  ASSERT_TRUE(wrapped.ok());
  std::unique_ptr<RecoveryOpener> opener = RecoveryOpener::Create(std::move(*key));
  Result<SecretBytes> opened = opener->Open(*wrapped, ToBytes("db-1|apps/db/password|3"));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_TRUE(opened->Equals(dek));
  EXPECT_EQ(swtpm_.TransientHandles(), 0);
  EXPECT_EQ(swtpm_.LoadedSessions(), 0);

  // The same blob, opened again (a restart), is the same key.
  Result<std::unique_ptr<EcdhPrivateKey>> again = OpenTpmEcdhKey(config_, *blob);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->public_key(), public_key);
  Result<SecretBytes> z_again = (*again)->SharedSecret(peer->public_key);
  ASSERT_TRUE(z_again.ok());
  EXPECT_TRUE(z_again->Equals(*z_soft));
}

TEST_F(TpmEcdhKeyTest, ItsBlobIsUselessToAnotherTpmAndADamagedOneIsRefused) {
  Result<Bytes> blob = CreateTpmEcdhKey(config_);
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  Result<RecoveryKeyPair> peer = GenerateRecoveryKey();
  ASSERT_TRUE(peer.ok());

  sk::testing::TempDir other_dir("tpm-other");
  sk::testing::Swtpm other(other_dir.path());
  Result<std::unique_ptr<EcdhPrivateKey>> moved =
      OpenTpmEcdhKey(other.Config(other_dir.Join("state")), *blob);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();  // parsing needs no TPM
  Result<SecretBytes> z = (*moved)->SharedSecret(peer->public_key);
  ASSERT_FALSE(z.ok());
  EXPECT_EQ(z.status().reason(), "tpm_error") << z.status().ToString();
  EXPECT_EQ(other.TransientHandles(), 0);

  for (std::size_t n : {std::size_t{0}, std::size_t{4}, blob->size() / 2, blob->size() - 1}) {
    EXPECT_EQ(OpenTpmEcdhKey(config_, ByteView(*blob).first(n)).status().reason(), "malformed_state") << n;
  }
  Bytes bad_magic = *blob;
  bad_magic[0] ^= 1;
  EXPECT_EQ(OpenTpmEcdhKey(config_, bad_magic).status().reason(), "malformed_state");
}

}  // namespace
}  // namespace sk::hsm::tpm
