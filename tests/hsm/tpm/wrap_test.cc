// Wrap/Unwrap over the unsealed master key: round trips, AAD binding, tampering, blobs of
// another TPM, rotation and retirement (also across a reopen), and concurrent unwraps.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "hsm/tpm/state_dir.h"
#include "hsm/wrapped_blob_format.h"
#include "tests/hsm/tpm/test_util.h"

namespace sk::hsm::tpm {
namespace {

using sk::testing::Swtpm;
using sk::testing::TempDir;

class WrapTest : public TpmTest {
 protected:
  void SetUp() override {
    Provision();
    backend_ = OpenOrFail();
    ASSERT_NE(backend_, nullptr);
  }
  std::unique_ptr<TpmBackend> backend_;
  Bytes aad_ = ToBytes("path=db/password;v=3;purpose=dek");
};

TEST_F(WrapTest, WrappedKeyUnwrapsToTheSameBytes) {
  for (std::size_t n : {1u, 16u, 32u, 64u}) {
    SecretBytes key = NewKey(n);
    auto blob = backend_->Wrap(key, aad_);
    ASSERT_TRUE(blob.ok()) << blob.status().ToString();
    EXPECT_EQ(blob->size(), 42 + n);
    auto back = backend_->Unwrap(*blob, aad_);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(back->Equals(key));
  }
}

TEST_F(WrapTest, BlobRecordsTpmKindKeysetAndGeneration) {
  auto blob = backend_->Wrap(NewKey(), aad_);
  ASSERT_TRUE(blob.ok());
  auto parts = ParseWrappedBlob(*blob);
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(parts->header.kind, kKindTpm);
  EXPECT_EQ(parts->header.generation, 1u);
  EXPECT_EQ(HexEncode(parts->header.keyset_id), backend_->Info().keyset_id);
}

TEST_F(WrapTest, KeysOfBadSizeAreNotWrapped) {
  EXPECT_FALSE(backend_->Wrap(SecretBytes(), aad_).ok());
  EXPECT_FALSE(backend_->Wrap(NewKey(65), aad_).ok());
}

TEST_F(WrapTest, WrongAadDoesNotVerify) {
  auto blob = backend_->Wrap(NewKey(), aad_);
  ASSERT_TRUE(blob.ok());
  auto back = backend_->Unwrap(*blob, ToBytes("path=db/password;v=4;purpose=dek"));
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().reason(), "does_not_verify");
  EXPECT_FALSE(backend_->Unwrap(*blob, {}).ok());
}

TEST_F(WrapTest, EveryFlippedByteIsRefused) {
  auto blob = backend_->Wrap(NewKey(), aad_);
  ASSERT_TRUE(blob.ok());
  for (std::size_t i = 0; i < blob->size(); ++i) {
    Bytes bad = *blob;
    bad[i] ^= 0x01;
    auto back = backend_->Unwrap(bad, aad_);
    EXPECT_FALSE(back.ok()) << "byte " << i;
    if (i >= kWrappedHeaderSize) {
      EXPECT_EQ(back.status().reason(), "does_not_verify") << "byte " << i;
    }
  }
}

TEST_F(WrapTest, TruncatedBlobsAreMalformed) {
  auto blob = backend_->Wrap(NewKey(), aad_);
  ASSERT_TRUE(blob.ok());
  for (std::size_t n : {0u, 1u, 14u, 42u}) {
    auto back = backend_->Unwrap(ByteView(blob->data(), n), aad_);
    ASSERT_FALSE(back.ok());
    EXPECT_EQ(back.status().reason(), "malformed_blob") << n;
  }
}

TEST_F(WrapTest, BlobOfAnotherTpmIsWrongTpm) {
  TempDir other_dir("tpm-other");
  Swtpm other(other_dir.path());
  TpmConfig other_config = other.Config(other_dir.Join("state"));
  ASSERT_TRUE(ProvisionTpm(other_config).ok());
  auto other_backend = TpmBackend::Open(other_config);
  ASSERT_TRUE(other_backend.ok());
  auto blob = (*other_backend)->Wrap(NewKey(), aad_);
  ASSERT_TRUE(blob.ok());
  auto back = backend_->Unwrap(*blob, aad_);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().reason(), "wrong_tpm");

  Bytes pkcs11_kind = *blob;
  pkcs11_kind[1] = kKindPkcs11;
  EXPECT_EQ(backend_->Unwrap(pkcs11_kind, aad_).status().reason(), "wrong_tpm");
}

TEST_F(WrapTest, RotationKeepsOldBlobsAndRetireMakesThemKeyRetired) {
  SecretBytes k1 = NewKey();
  auto b1 = backend_->Wrap(k1, aad_);
  ASSERT_TRUE(b1.ok());
  auto g2 = backend_->Rotate();
  ASSERT_TRUE(g2.ok()) << g2.status().ToString();
  EXPECT_EQ(*g2, 2u);
  SecretBytes k2 = NewKey();
  auto b2 = backend_->Wrap(k2, aad_);
  ASSERT_TRUE(b2.ok());
  EXPECT_EQ(ParseWrappedBlob(*b2)->header.generation, 2u);
  EXPECT_TRUE(backend_->Unwrap(*b1, aad_)->Equals(k1));
  EXPECT_EQ(backend_->Info().generations, (std::vector<std::uint32_t>{1, 2}));

  // Both generations survive a reopen.
  backend_.reset();
  backend_ = OpenOrFail();
  ASSERT_NE(backend_, nullptr);
  EXPECT_EQ(backend_->Info().current_generation, 2u);
  EXPECT_TRUE(backend_->Unwrap(*b1, aad_)->Equals(k1));
  EXPECT_TRUE(backend_->Unwrap(*b2, aad_)->Equals(k2));

  EXPECT_EQ(backend_->Retire(2).reason(), "is_current");
  EXPECT_EQ(backend_->Retire(7).reason(), "not_found");
  ASSERT_TRUE(backend_->Retire(1).ok());
  auto gone = backend_->Unwrap(*b1, aad_);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().reason(), "key_retired");
  EXPECT_TRUE(backend_->Unwrap(*b2, aad_)->Equals(k2));

  // Retirement is permanent: the generation's file is gone.
  backend_.reset();
  backend_ = OpenOrFail();
  ASSERT_NE(backend_, nullptr);
  EXPECT_EQ(backend_->Info().generations, (std::vector<std::uint32_t>{2}));
  EXPECT_EQ(backend_->Unwrap(*b1, aad_).status().reason(), "key_retired");
  EXPECT_EQ(swtpm_.TransientHandles(), 0);
}

TEST_F(WrapTest, RotationKeepsTheSealPolicy) {
  TempDir d("tpm-policy");
  Swtpm tpm(d.path());
  TpmConfig c = tpm.Config(d.Join("state"));
  c.pcrs = {7};
  ASSERT_TRUE(ProvisionTpm(c).ok());
  auto b = TpmBackend::Open(c);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE((*b)->Rotate().ok());
  auto seals = (*b)->Seals();
  ASSERT_EQ(seals.size(), 2u);
  EXPECT_EQ(seals[1].pcrs, (std::vector<int>{7}));
  b->reset();
  tpm.ExtendPcr(7);
  EXPECT_EQ(TpmBackend::Open(c).status().reason(), "boot_state_changed");
}

TEST_F(WrapTest, FailedRotationWriteChangesNothing) {
  StateDir::SetFaultHookForTesting([](std::string_view op, const std::string&) {
    return op == "write" ? Unavailable("injected write failure", "state_io_error") : OkStatus();
  });
  auto g = backend_->Rotate();
  StateDir::SetFaultHookForTesting(nullptr);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().reason(), "state_io_error");
  EXPECT_EQ(backend_->Info().current_generation, 1u);
  EXPECT_EQ(swtpm_.TransientHandles(), 0);
  auto g2 = backend_->Rotate();
  ASSERT_TRUE(g2.ok());
  EXPECT_EQ(*g2, 2u);
}

TEST_F(WrapTest, EightThreadsUnwrapConcurrently) {
  constexpr int kBlobs = 16;
  std::vector<SecretBytes> keys;
  std::vector<Bytes> blobs;
  for (int i = 0; i < kBlobs; ++i) {
    keys.push_back(NewKey());
    auto b = backend_->Wrap(keys.back(), aad_);
    ASSERT_TRUE(b.ok());
    blobs.push_back(*b);
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        int k = (i + t) % kBlobs;
        auto back = backend_->Unwrap(blobs[static_cast<std::size_t>(k)], aad_);
        if (!back.ok() || !back->Equals(keys[static_cast<std::size_t>(k)])) failures++;
        if (i % 50 == 0 && !backend_->Wrap(keys[0], aad_).ok()) failures++;
      }
    });
  }
  // An admin rotation in the middle does not disturb them.
  ASSERT_TRUE(backend_->Rotate().ok());
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace sk::hsm::tpm
