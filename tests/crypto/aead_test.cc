// The AEAD blob format: round trips, AAD binding, tamper detection, truncation.
#include <gtest/gtest.h>

#include <cstring>

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

#include "crypto/random.h"
#include "crypto/sha256_engine.h"

namespace sk {
namespace {

// The fast block function (SHA extensions, when the CPU has them) must agree with the
// portable one on every length, including every padding boundary.
TEST(Sha256, FastAndPortableBlockFunctionsAgree) {
  std::printf("[sha256] block function: %s\n",
              internal::Sha256UsesShaNi() ? "x86 SHA extensions" : "portable");
  for (std::size_t n : {0u, 1u, 55u, 56u, 63u, 64u, 65u, 119u, 120u, 127u, 128u, 1000u, 4096u, 65537u}) {
    Bytes data(n);
    ASSERT_TRUE(FillRandom(data).ok());
    std::uint32_t fast[8], slow[8];
    for (int i = 0; i < 8; ++i) fast[i] = slow[i] = 0x01020304u * static_cast<std::uint32_t>(i + 1);
    internal::Sha256Blocks(fast, data.data(), n / 64);
    internal::Sha256BlocksPortable(slow, data.data(), n / 64);
    EXPECT_EQ(0, std::memcmp(fast, slow, sizeof fast)) << "length " << n;
  }
}

TEST(Sha256, KnownAnswersAndStreamingSplits) {
  EXPECT_EQ(HexEncode(Sha256(AsBytes(""))),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(HexEncode(Sha256(AsBytes("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  std::string million(1'000'000, 'a');
  EXPECT_EQ(HexEncode(Sha256(AsBytes(million))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  Bytes data(777);
  ASSERT_TRUE(FillRandom(data).ok());
  Digest whole = Sha256(data);
  for (std::size_t split : {1u, 63u, 64u, 65u, 500u}) {
    Sha256Hasher h;
    h.Update(ByteView(data).first(split)).Update(ByteView(data).subspan(split));
    EXPECT_EQ(h.Finish(), whole) << split;
  }
}

}  // namespace
}  // namespace sk
