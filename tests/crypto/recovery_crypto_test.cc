// The recovery key's pieces (docs/recovery.md): Shamir's scheme, the share's text form
// and its checksum, and the ECIES wrap.
#include <gtest/gtest.h>

#include <set>

#include "crypto/random.h"
#include "crypto/recovery_share.h"
#include "crypto/recovery_wrap.h"
#include "crypto/shamir.h"

namespace sk {
namespace {

SecretBytes Fixed(std::size_t n, std::uint8_t seed) {
  SecretBytes s(n);
  for (std::size_t i = 0; i < n; ++i) s.Expose()[i] = static_cast<std::uint8_t>(seed + i * 37);
  return s;
}

std::vector<ShamirShare> Pick(const std::vector<ShamirShare>& all, std::initializer_list<int> which) {
  std::vector<ShamirShare> out;
  for (int i : which)
    out.push_back(
        ShamirShare{all[static_cast<std::size_t>(i)].index, all[static_cast<std::size_t>(i)].y.Clone()});
  return out;
}

TEST(ShamirTest, AnyThresholdSubsetRebuildsTheSecretAndFewerDoNot) {
  SecretBytes secret = Fixed(32, 7);
  auto shares = ShamirSplit(secret, 3, 5);
  ASSERT_TRUE(shares.ok());
  ASSERT_EQ(shares->size(), 5U);
  int subsets = 0;
  for (int a = 0; a < 5; ++a) {
    for (int b = a + 1; b < 5; ++b) {
      for (int c = b + 1; c < 5; ++c) {
        auto got = ShamirCombine(Pick(*shares, {a, b, c}));
        ASSERT_TRUE(got.ok());
        EXPECT_TRUE(got->Equals(secret)) << a << b << c;
        ++subsets;
      }
      auto two = ShamirCombine(Pick(*shares, {a, b}));
      ASSERT_TRUE(two.ok());
      EXPECT_FALSE(two->Equals(secret)) << "two of a 3-of-5 split gave the secret";
    }
  }
  EXPECT_EQ(subsets, 10);
  auto all = ShamirCombine(Pick(*shares, {4, 0, 2, 3, 1}));
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->Equals(secret));
}

TEST(ShamirTest, BadArgumentsAreRefused) {
  SecretBytes secret = Fixed(4, 1);
  EXPECT_FALSE(ShamirSplit(secret, 1, 5).ok());
  EXPECT_FALSE(ShamirSplit(secret, 4, 3).ok());
  EXPECT_FALSE(ShamirSplit(secret, 2, 256).ok());
  EXPECT_FALSE(ShamirSplit(SecretBytes(), 2, 3).ok());
  auto shares = ShamirSplit(secret, 2, 3);
  ASSERT_TRUE(shares.ok());
  EXPECT_FALSE(ShamirCombine(Pick(*shares, {0, 0})).ok());
  EXPECT_FALSE(ShamirCombine({}).ok());
}

RecoveryShare FixedShare() {
  RecoveryShare s;
  s.threshold = 3;
  s.key_id = Bytes{1, 2, 3, 4, 5, 6, 7, 8};
  s.share.index = 2;
  s.share.y = Fixed(32, 99);
  return s;
}

TEST(RecoveryShareTest, TextRoundTripsAndIsForgivingAboutCaseSpacesAndLookalikes) {
  const RecoveryShare s = FixedShare();
  const std::string text = EncodeRecoveryShare(s);
  EXPECT_EQ(text.rfind("SKR1-3-2-", 0), 0U) << text;
  EXPECT_LT(text.size(), 100U);
  for (std::string variant : {text, std::string(" ") + text + "\n"}) {
    auto back = ParseRecoveryShare(variant);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->threshold, 3);
    EXPECT_EQ(back->share.index, 2);
    EXPECT_EQ(back->key_id, s.key_id);
    EXPECT_TRUE(back->share.y.Equals(s.share.y));
  }
  std::string lower = text;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_TRUE(ParseRecoveryShare(lower).ok());
  std::string spaced;  // groups separated by spaces instead of dashes (after the index)
  for (std::size_t i = 0; i < text.size(); ++i) spaced += (i > 9 && text[i] == '-') ? ' ' : text[i];
  EXPECT_TRUE(ParseRecoveryShare(spaced).ok()) << spaced;
  std::string lookalike = text;  // a 0 typed as O, a 1 as l
  for (std::size_t i = 9; i < lookalike.size(); ++i) {
    if (lookalike[i] == '0') lookalike[i] = 'O';
    if (lookalike[i] == '1') lookalike[i] = 'l';
  }
  EXPECT_TRUE(ParseRecoveryShare(lookalike).ok());
}

// Every one-character typo of the share's body is caught: by its checksum, or as a
// character outside the alphabet. The share is fixed, so the outcome is too.
TEST(RecoveryShareTest, EveryOneCharacterTypoIsCaught) {
  const std::string text = EncodeRecoveryShare(FixedShare());
  const std::string alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  int typos = 0;
  for (std::size_t i = 9; i < text.size(); ++i) {
    if (text[i] == '-') continue;
    for (char c : alphabet) {
      if (c == text[i]) continue;
      std::string typo = text;
      typo[i] = c;
      auto r = ParseRecoveryShare(typo);
      ASSERT_FALSE(r.ok()) << "typo at " << i << " (" << c << ") not caught";
      EXPECT_EQ(r.status().reason(), "share_checksum");
      ++typos;
    }
  }
  EXPECT_GT(typos, 2000);
  // Two characters swapped, one dropped, one added.
  int swaps = 0;
  for (std::size_t i = 9; i + 1 < text.size(); ++i) {
    if (text[i] == '-' || text[i + 1] == '-' || text[i] == text[i + 1]) continue;
    std::string swapped = text;
    std::swap(swapped[i], swapped[i + 1]);
    EXPECT_EQ(ParseRecoveryShare(swapped).status().reason(), "share_checksum") << "swap at " << i;
    ++swaps;
  }
  EXPECT_GT(swaps, 40);
  std::string dropped = text;
  dropped.erase(20, 1);
  EXPECT_EQ(ParseRecoveryShare(dropped).status().reason(), "share_malformed");
  EXPECT_NE(ParseRecoveryShare(dropped).status().message().find("missing"), std::string::npos);
  EXPECT_EQ(ParseRecoveryShare(text + "A").status().reason(), "share_malformed");
  EXPECT_EQ(ParseRecoveryShare("hello").status().reason(), "share_malformed");
  EXPECT_EQ(ParseRecoveryShare("").status().reason(), "share_malformed");
  std::string bad_char = text;
  bad_char[15] = 'U';
  EXPECT_EQ(ParseRecoveryShare(bad_char).status().reason(), "share_malformed");
}

std::vector<RecoveryShare> SplitKey(const RecoveryKeyPair& kp, int t, int n) {
  auto parts = ShamirSplit(kp.private_key, t, n);
  EXPECT_TRUE(parts.ok());
  std::vector<RecoveryShare> out;
  for (auto& p : *parts) {
    RecoveryShare s;
    s.threshold = t;
    s.key_id = RecoveryKeyId(kp.public_key);
    s.share = std::move(p);
    // Through the text form, as a person would carry it.
    auto back = ParseRecoveryShare(EncodeRecoveryShare(s));
    EXPECT_TRUE(back.ok());
    out.push_back(std::move(back).value());
  }
  return out;
}

std::vector<RecoveryShare> Take(const std::vector<RecoveryShare>& all, std::initializer_list<int> which) {
  std::vector<RecoveryShare> out;
  for (int i : which) {
    const RecoveryShare& s = all[static_cast<std::size_t>(i)];
    out.push_back(RecoveryShare{s.threshold, s.key_id, ShamirShare{s.share.index, s.share.y.Clone()}});
  }
  return out;
}

TEST(RecoveryShareTest, CombiningNamesEachMistake) {
  auto kp = GenerateRecoveryKey();
  ASSERT_TRUE(kp.ok());
  auto shares = SplitKey(*kp, 3, 5);
  auto key = CombineRecoveryShares(Take(shares, {4, 1, 2}));
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_TRUE(key->Equals(kp->private_key));
  EXPECT_EQ(CombineRecoveryShares(Take(shares, {0, 1})).status().reason(), "too_few_shares");
  EXPECT_EQ(CombineRecoveryShares({}).status().reason(), "too_few_shares");
  EXPECT_EQ(CombineRecoveryShares(Take(shares, {0, 1, 1})).status().reason(), "duplicate_share");
  auto other = GenerateRecoveryKey();
  ASSERT_TRUE(other.ok());
  auto others = SplitKey(*other, 3, 5);
  std::vector<RecoveryShare> mixed = Take(shares, {0, 1});
  mixed.push_back(std::move(Take(others, {2})[0]));
  EXPECT_EQ(CombineRecoveryShares(mixed).status().reason(), "shares_mismatch");
  // A share whose checksum is right but whose bytes are wrong (a typo that slipped by).
  std::vector<RecoveryShare> wrong = Take(shares, {0, 1, 2});
  wrong[2].share.y.Expose()[5] ^= 0x40;
  EXPECT_EQ(CombineRecoveryShares(wrong).status().reason(), "wrong_shares");
}

TEST(RecoveryWrapTest, ABlobOpensOnlyWithItsKeyAndItsAad) {
  auto kp = GenerateRecoveryKey();
  ASSERT_TRUE(kp.ok());
  auto pub = RecoveryPublicKey(kp->private_key);
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(*pub, kp->public_key);
  auto sealer = RecoverySealer::Create(kp->public_key);
  ASSERT_TRUE(sealer.ok()) << sealer.status().ToString();
  auto dek = RandomSecret(32);
  ASSERT_TRUE(dek.ok());
  const Bytes aad = {'p', '/', 'a', 0, 1};
  auto blob = (*sealer)->Seal(*dek, aad);
  ASSERT_TRUE(blob.ok());
  EXPECT_EQ(blob->size(), 32 + kRecoveryBlobOverhead);
  EXPECT_EQ(*RecoveryBlobKeyId(*blob), RecoveryKeyId(kp->public_key));

  auto opener = RecoveryOpener::Create(kp->private_key.Clone());
  ASSERT_TRUE(opener.ok());
  auto back = (*opener)->Open(*blob, aad);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->Equals(*dek));
  // A second sealer (another agent start): another ephemeral key, the same opener.
  auto sealer2 = RecoverySealer::Create(kp->public_key);
  ASSERT_TRUE(sealer2.ok());
  auto blob2 = (*sealer2)->Seal(*dek, aad);
  ASSERT_TRUE(blob2.ok());
  EXPECT_NE(Bytes(blob2->begin(), blob2->begin() + 78), Bytes(blob->begin(), blob->begin() + 78));
  EXPECT_TRUE((*opener)->Open(*blob2, aad).ok());

  EXPECT_EQ((*opener)->Open(*blob, Bytes{'p', '/', 'b', 0, 1}).status().reason(), "does_not_verify");
  for (std::size_t i = 0; i < blob->size(); ++i) {
    Bytes bad = *blob;
    bad[i] ^= 0x01;
    auto r = (*opener)->Open(bad, aad);
    EXPECT_FALSE(r.ok()) << "a flipped bit at " << i << " went unnoticed";
  }
  EXPECT_EQ((*opener)->Open(ByteView(*blob).first(40), aad).status().reason(), "malformed_recovery_blob");
  auto other = GenerateRecoveryKey();
  ASSERT_TRUE(other.ok());
  auto other_opener = RecoveryOpener::Create(other->private_key.Clone());
  ASSERT_TRUE(other_opener.ok());
  EXPECT_EQ((*other_opener)->Open(*blob, aad).status().reason(), "wrong_recovery_key");
}

TEST(RecoveryWrapTest, InvalidKeysAreRefused) {
  EXPECT_EQ(RecoverySealer::Create(Bytes(65, 0)).status().reason(), "bad_recovery_key");
  EXPECT_EQ(RecoverySealer::Create(Bytes(10, 4)).status().reason(), "bad_recovery_key");
  EXPECT_EQ(RecoveryPublicKey(SecretBytes(32)).status().reason(), "bad_recovery_key");  // zero scalar
  SecretBytes too_big(32);
  for (auto& b : too_big.Expose()) b = 0xff;  // above the group order
  EXPECT_EQ(RecoveryPublicKey(too_big).status().reason(), "bad_recovery_key");
}

}  // namespace
}  // namespace sk
