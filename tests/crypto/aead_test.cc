// The AEAD blob format: round trips, AAD binding, tamper detection, truncation.
#include <gtest/gtest.h>

#include "crypto/aead.h"
#include "crypto/mac.h"
#include "crypto/random.h"

namespace sk {
namespace {

SecretBytes NewKey() { return std::move(RandomSecret(kAeadKeySize).value()); }

TEST(Aead, SealedBlobOpensWithTheSameKeyAndAad) {
  SecretBytes key = NewKey();
  Bytes aad = ToBytes("path=db/password;v=3");
  for (std::size_t n : {0u, 1u, 32u, 1000u, 65536u}) {
    Bytes value(n, 0x42);
    auto blob = AeadSeal(key, aad, value);
    ASSERT_TRUE(blob.ok());
    EXPECT_EQ(blob->size(), n + kAeadBlobOverhead);
    EXPECT_EQ((*blob)[0], kAeadBlobVersion);
    auto back = AeadOpen(key, aad, *blob);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(std::equal(value.begin(), value.end(), back->Expose().begin(), back->Expose().end()));
  }
}

TEST(Aead, TwoSealsOfOneValueDifferInNonce) {
  SecretBytes key = NewKey();
  auto a = AeadSeal(key, {}, AsBytes("same"));
  auto b = AeadSeal(key, {}, AsBytes("same"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
}

TEST(Aead, EveryByteOfTheBlobIsAuthenticated) {
  SecretBytes key = NewKey();
  Bytes aad = ToBytes("aad");
  auto blob = AeadSeal(key, aad, AsBytes("a secret value"));
  ASSERT_TRUE(blob.ok());
  for (std::size_t i = 0; i < blob->size(); ++i) {
    Bytes bad = *blob;
    bad[i] ^= 0x01;
    auto out = AeadOpen(key, aad, bad);
    EXPECT_FALSE(out.ok()) << "flipped byte " << i << " was accepted";
    EXPECT_EQ(out.status().code(), Code::kCorruption);
  }
}

TEST(Aead, WrongAadWrongKeyAndTruncationAreRefused) {
  SecretBytes key = NewKey();
  auto blob = AeadSeal(key, AsBytes("path=a;v=1"), AsBytes("v"));
  ASSERT_TRUE(blob.ok());
  EXPECT_EQ(AeadOpen(key, AsBytes("path=a;v=2"), *blob).status().reason(), "does_not_verify");
  EXPECT_EQ(AeadOpen(NewKey(), AsBytes("path=a;v=1"), *blob).status().reason(), "does_not_verify");
  for (std::size_t n = 0; n < blob->size(); ++n) {
    EXPECT_FALSE(AeadOpen(key, AsBytes("path=a;v=1"), ByteView(*blob).first(n)).ok());
  }
}

TEST(Aead, KeyAndNonceSizesAreChecked) {
  SecretBytes short_key(16);
  Bytes out(16);
  Bytes nonce(12);
  EXPECT_EQ(AesGcmSeal(short_key, nonce, {}, {}, out).reason(), "bad_key_size");
  Bytes bad_nonce(16);
  EXPECT_EQ(AesGcmSeal(NewKey(), bad_nonce, {}, {}, out).reason(), "bad_nonce_size");
}

TEST(Hkdf, RejectsZeroAndOversizedOutput) {
  SecretBytes ikm(32);
  EXPECT_EQ(HkdfSha256(ikm, {}, {}, 0).status().reason(), "bad_length");
  EXPECT_EQ(HkdfSha256(ikm, {}, {}, kHkdfMaxOutput + 1).status().reason(), "bad_length");
  EXPECT_TRUE(HkdfSha256(ikm, {}, {}, kHkdfMaxOutput).ok());
}

TEST(Sha256, IncrementalMatchesOneShot) {
  Bytes data(1000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i);
  Sha256Hasher h;
  h.Update(ByteView(data).first(3)).Update(ByteView(data).subspan(3));
  EXPECT_EQ(h.Finish(), Sha256(data));
}

}  // namespace
}  // namespace sk
