// ECDSA P-256 round trips with sealkeep's own keys (Wycheproof covers verification alone).
#include <gtest/gtest.h>

#include "crypto/ecdsa.h"
#include "crypto/recovery_wrap.h"

namespace sk {
namespace {

TEST(Ecdsa, ASignatureVerifiesUnderItsKeyAndNothingElse) {
  Result<RecoveryKeyPair> key = GenerateRecoveryKey();
  Result<RecoveryKeyPair> other = GenerateRecoveryKey();
  ASSERT_TRUE(key.ok() && other.ok());
  const Bytes msg = ToBytes("fleet entry 7");
  Result<Bytes> sig = EcdsaP256Sign(key->private_key, msg);
  ASSERT_TRUE(sig.ok()) << sig.status().ToString();
  ASSERT_EQ(sig->size(), kEcdsaSignatureSize);
  EXPECT_TRUE(EcdsaP256Verify(key->public_key, msg, *sig).ok());
  // RFC 6979: the same key and message give the same signature.
  Result<Bytes> again = EcdsaP256Sign(key->private_key, msg);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *sig);

  EXPECT_EQ(EcdsaP256Verify(other->public_key, msg, *sig).reason(), "bad_signature");
  EXPECT_EQ(EcdsaP256Verify(key->public_key, ToBytes("fleet entry 8"), *sig).reason(), "bad_signature");
  for (std::size_t i : {std::size_t{0}, std::size_t{31}, std::size_t{32}, std::size_t{63}}) {
    Bytes flipped = *sig;
    flipped[i] ^= 0x01;
    EXPECT_EQ(EcdsaP256Verify(key->public_key, msg, flipped).reason(), "bad_signature") << i;
  }
  Bytes shorter(sig->begin(), sig->end() - 1);
  EXPECT_EQ(EcdsaP256Verify(key->public_key, msg, shorter).reason(), "bad_signature");
}

TEST(Ecdsa, KeysThatAreNotP256KeysAreRefused) {
  const Bytes msg = ToBytes("m");
  EXPECT_EQ(EcdsaP256Sign(SecretBytes(31), msg).status().reason(), "bad_signing_key");
  EXPECT_EQ(EcdsaP256Sign(SecretBytes(32), msg).status().reason(), "bad_signing_key");  // zero scalar
  Result<RecoveryKeyPair> key = GenerateRecoveryKey();
  ASSERT_TRUE(key.ok());
  Result<Bytes> sig = EcdsaP256Sign(key->private_key, msg);
  ASSERT_TRUE(sig.ok());
  Bytes off_curve = key->public_key;
  off_curve[64] ^= 0x01;
  EXPECT_EQ(EcdsaP256Verify(off_curve, msg, *sig).reason(), "bad_signing_key");
  Bytes compressed(key->public_key.begin(), key->public_key.begin() + 33);
  compressed[0] = 0x02;
  EXPECT_EQ(EcdsaP256Verify(compressed, msg, *sig).reason(), "bad_signing_key");
}

}  // namespace
}  // namespace sk
