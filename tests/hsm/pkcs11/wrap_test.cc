// Wrap/Unwrap against a real SoftHSM2 token: round trips, AAD binding, tampering,
// blobs from another token, and concurrent unwraps.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "hsm/wrapped_blob_format.h"
#include "tests/fixtures/temp_dir.h"
#include "tests/hsm/pkcs11/test_util.h"

namespace sk::hsm {
namespace {

using sk::testing::SoftHsmToken;
using sk::testing::TempDir;

class WrapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = OpenOrDie(token_);
    ASSERT_NE(backend_, nullptr);
  }
  TempDir dir_{"p11-wrap"};
  SoftHsmToken token_{dir_.path()};
  std::unique_ptr<KeyBackend> backend_;
};

TEST_F(WrapTest, WrappedKeyUnwrapsToTheSameBytes) {
  Bytes aad = ToBytes("path=db/password;v=3;purpose=dek");
  for (std::size_t n : {1u, 16u, 32u, 64u}) {
    SecretBytes key = NewKey(n);
    auto blob = backend_->Wrap(key, aad);
    ASSERT_TRUE(blob.ok()) << blob.status().ToString();
    EXPECT_EQ(blob->size(), 42 + n);
    auto back = backend_->Unwrap(*blob, aad);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(back->Equals(key));
  }
}

TEST_F(WrapTest, BlobRecordsKindKeysetAndGeneration) {
  auto blob = backend_->Wrap(NewKey(), {});
  ASSERT_TRUE(blob.ok());
  auto parts = ParseWrappedBlob(*blob);
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  EXPECT_EQ(parts->header.kind, kKindPkcs11);
  EXPECT_EQ(parts->header.generation, 1u);
  EXPECT_EQ(HexEncode(parts->header.keyset_id), backend_->Info().keyset_id);
}

TEST_F(WrapTest, TwoWrapsOfOneKeyDiffer) {
  SecretBytes key = NewKey();
  auto a = backend_->Wrap(key, {});
  auto b = backend_->Wrap(key, {});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);  // fresh IV each time
}

TEST_F(WrapTest, EmptyOrOversizedKeyIsRefused) {
  EXPECT_EQ(backend_->Wrap(SecretBytes(), {}).status().reason(), "key_size");
  EXPECT_EQ(backend_->Wrap(NewKey(65), {}).status().reason(), "key_size");
}

TEST_F(WrapTest, WrongAadDoesNotVerify) {
  SecretBytes key = NewKey();
  auto blob = backend_->Wrap(key, AsBytes("path=a;v=1"));
  ASSERT_TRUE(blob.ok());
  for (const char* aad : {"path=a;v=2", "path=b;v=1", "", "path=a;v=1 "}) {
    auto r = backend_->Unwrap(*blob, AsBytes(aad));
    ASSERT_FALSE(r.ok()) << "unwrapped with aad '" << aad << "'";
    EXPECT_EQ(r.status().reason(), "does_not_verify") << r.status().ToString();
    EXPECT_EQ(r.status().code(), Code::kCorruption);
  }
  EXPECT_TRUE(backend_->Unwrap(*blob, AsBytes("path=a;v=1")).ok());  // the session pool still works
}

// Every byte of the blob is checked: header bytes by parsing and by the keyset and
// generation lookups, the rest by the GCM tag (the header is AAD too).
TEST_F(WrapTest, EveryFlippedByteIsRefused) {
  Bytes aad = ToBytes("aad");
  SecretBytes key = NewKey();
  auto blob = backend_->Wrap(key, aad);
  ASSERT_TRUE(blob.ok());
  for (std::size_t i = 0; i < blob->size(); ++i) {
    for (int mask : {0x01, 0x80}) {
      Bytes bad = *blob;
      bad[i] = static_cast<std::uint8_t>(bad[i] ^ mask);
      auto r = backend_->Unwrap(bad, aad);
      ASSERT_FALSE(r.ok()) << "byte " << i << " mask " << mask << " went unnoticed";
      std::string_view reason = r.status().reason();
      std::set<std::string_view> expected;
      if (i == 0)
        expected = {"malformed_blob"};
      else if (i == 1)
        expected = {"malformed_blob", "wrong_token"};
      else if (i < 10)
        expected = {"wrong_token"};
      else if (i < 14)
        expected = {"key_retired", "malformed_blob"};
      else
        expected = {"does_not_verify"};
      EXPECT_TRUE(expected.count(reason)) << "byte " << i << ": " << r.status().ToString();
    }
  }
  auto ok = backend_->Unwrap(*blob, aad);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_TRUE(ok->Equals(key));
}

TEST_F(WrapTest, TruncatedOrExtendedBlobIsMalformed) {
  auto blob = backend_->Wrap(NewKey(), {});
  ASSERT_TRUE(blob.ok());
  Bytes shorter(blob->begin(), blob->begin() + 41);
  EXPECT_EQ(backend_->Unwrap(shorter, {}).status().reason(), "malformed_blob");
  Bytes longer = *blob;
  longer.resize(42 + 65);
  EXPECT_EQ(backend_->Unwrap(longer, {}).status().reason(), "malformed_blob");
  // One byte shorter still parses (a 31-byte key) but the tag catches it.
  Bytes one_less(blob->begin(), blob->end() - 1);
  EXPECT_EQ(backend_->Unwrap(one_less, {}).status().reason(), "does_not_verify");
}

TEST(WrapAcrossTokens, BlobFromASecondTokenIsWrongToken) {
  TempDir dir("p11-two");
  SoftHsmToken alpha(dir.path(), "alpha");
  SoftHsmToken beta(dir.path(), "beta");
  auto a = OpenOrDie(alpha);
  auto b = OpenOrDie(beta);
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->Info().keyset_id, b->Info().keyset_id);
  Bytes aad = ToBytes("same aad");
  SecretBytes key = NewKey();
  auto from_a = a->Wrap(key, aad);
  ASSERT_TRUE(from_a.ok());
  auto r = b->Unwrap(*from_a, aad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().reason(), "wrong_token") << r.status().ToString();
  // Even with beta's keyset id pasted in, beta's key does not open alpha's blob.
  Bytes forged = *from_a;
  auto beta_keyset = HexDecode(b->Info().keyset_id);
  ASSERT_TRUE(beta_keyset.has_value());
  std::copy(beta_keyset->begin(), beta_keyset->end(), forged.begin() + 2);
  EXPECT_EQ(b->Unwrap(forged, aad).status().reason(), "does_not_verify");
  auto back = a->Unwrap(*from_a, aad);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->Equals(key));
}

TEST_F(WrapTest, TpmBlobIsWrongToken) {
  auto blob = backend_->Wrap(NewKey(), {});
  ASSERT_TRUE(blob.ok());
  (*blob)[1] = kKindTpm;
  EXPECT_EQ(backend_->Unwrap(*blob, {}).status().reason(), "wrong_token");
}

TEST_F(WrapTest, EightThreadsUnwrapConcurrentlyWithoutError) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 300;
  std::vector<SecretBytes> keys;
  std::vector<Bytes> blobs;
  for (int i = 0; i < 16; ++i) {
    keys.push_back(NewKey());
    auto blob = backend_->Wrap(keys.back(), AsBytes("v=" + std::to_string(i)));
    ASSERT_TRUE(blob.ok());
    blobs.push_back(std::move(blob).value());
  }
  std::atomic<int> failures{0};
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::size_t k = static_cast<std::size_t>((t * 7 + i) % 16);
        auto r = backend_->Unwrap(blobs[k], AsBytes("v=" + std::to_string(k)));
        if (!r.ok()) {
          failures++;
        } else if (!r->Equals(keys[k])) {
          mismatches++;
        }
        if (i % 50 == 0) {  // wraps interleave with the unwraps
          if (!backend_->Wrap(keys[k], AsBytes("x")).ok()) failures++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace sk::hsm
