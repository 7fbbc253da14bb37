// Master-key generations: rotation makes g+1 current while older blobs keep
// unwrapping; retiring a generation destroys its key and its blobs become key_retired.
#include <gtest/gtest.h>

#include "hsm/wrapped_blob_format.h"
#include "tests/fixtures/temp_dir.h"
#include "tests/hsm/pkcs11/test_util.h"

namespace sk::hsm {
namespace {

using sk::testing::SoftHsmToken;
using sk::testing::TempDir;

std::uint32_t GenerationOf(const Bytes& blob) { return ParseWrappedBlob(blob).value().header.generation; }

class RotationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = OpenOrDie(token_);
    ASSERT_NE(backend_, nullptr);
  }
  TempDir dir_{"p11-rot"};
  SoftHsmToken token_{dir_.path()};
  std::unique_ptr<KeyBackend> backend_;
  const Bytes aad_ = ToBytes("path=x;v=1");
};

TEST_F(RotationTest, RotationKeepsOldBlobsUnwrapping) {
  SecretBytes k1 = NewKey();
  auto b1 = backend_->Wrap(k1, aad_);
  ASSERT_TRUE(b1.ok());
  auto g = backend_->Rotate();
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(*g, 2u);
  BackendInfo info = backend_->Info();
  EXPECT_EQ(info.current_generation, 2u);
  EXPECT_EQ(info.generations, (std::vector<std::uint32_t>{1, 2}));
  SecretBytes k2 = NewKey();
  auto b2 = backend_->Wrap(k2, aad_);
  ASSERT_TRUE(b2.ok());
  EXPECT_EQ(GenerationOf(*b1), 1u);
  EXPECT_EQ(GenerationOf(*b2), 2u);
  auto u1 = backend_->Unwrap(*b1, aad_);
  auto u2 = backend_->Unwrap(*b2, aad_);
  ASSERT_TRUE(u1.ok() && u2.ok());
  EXPECT_TRUE(u1->Equals(k1));
  EXPECT_TRUE(u2->Equals(k2));
  // A blob claiming the other generation does not open (the generation is AAD).
  Bytes moved = *b1;
  moved[13] = 2;
  EXPECT_EQ(backend_->Unwrap(moved, aad_).status().reason(), "does_not_verify");
}

TEST_F(RotationTest, GenerationsPersistAcrossReopen) {
  ASSERT_TRUE(backend_->Rotate().ok());
  ASSERT_TRUE(backend_->Rotate().ok());
  auto blob = backend_->Wrap(NewKey(), aad_);
  ASSERT_TRUE(blob.ok());
  backend_.reset();
  auto reopened = OpenOrDie(token_);
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->Info().current_generation, 3u);
  EXPECT_EQ(reopened->Info().generations, (std::vector<std::uint32_t>{1, 2, 3}));
  EXPECT_TRUE(reopened->Unwrap(*blob, aad_).ok());
}

TEST_F(RotationTest, RetiredGenerationBlobsAreKeyRetired) {
  auto b1 = backend_->Wrap(NewKey(), aad_);
  ASSERT_TRUE(b1.ok());
  ASSERT_TRUE(backend_->Rotate().ok());
  SecretBytes k2 = NewKey();
  auto b2 = backend_->Wrap(k2, aad_);
  ASSERT_TRUE(b2.ok());
  Status st = backend_->Retire(1);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(backend_->Info().generations, (std::vector<std::uint32_t>{2}));
  auto r = backend_->Unwrap(*b1, aad_);
  EXPECT_EQ(r.status().reason(), "key_retired") << r.status().ToString();
  EXPECT_TRUE(backend_->Unwrap(*b2, aad_).ok());
  // The key is gone from the token, not only from this backend's table.
  backend_.reset();
  auto reopened = OpenOrDie(token_);
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->Info().generations, (std::vector<std::uint32_t>{2}));
  EXPECT_EQ(reopened->Unwrap(*b1, aad_).status().reason(), "key_retired");
  int rc = 0;
  std::string objects = token_.PkcsTool("--list-objects --type secrkey", &rc);
  EXPECT_EQ(objects.find("sealkeep-master-g1"), std::string::npos) << objects;
  EXPECT_NE(objects.find("sealkeep-master-g2"), std::string::npos) << objects;
}

TEST_F(RotationTest, RetiringTheCurrentGenerationIsRefused) {
  Status st = backend_->Retire(1);
  EXPECT_EQ(st.reason(), "is_current") << st.ToString();
  ASSERT_TRUE(backend_->Rotate().ok());
  EXPECT_EQ(backend_->Retire(2).reason(), "is_current");
}

TEST_F(RotationTest, RetiringAnUnknownGenerationIsNotFound) {
  EXPECT_EQ(backend_->Retire(7).reason(), "not_found");
  ASSERT_TRUE(backend_->Rotate().ok());
  ASSERT_TRUE(backend_->Retire(1).ok());
  EXPECT_EQ(backend_->Retire(1).reason(), "not_found");
}

// The anchor was sealed under generation 1; retiring 1 must leave it verifiable.
TEST_F(RotationTest, AnchorSurvivesRetiringTheGenerationThatSealedIt) {
  auto a = backend_->AdvanceAnchor(4, Sha256(AsBytes("entry 4")));
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(backend_->Rotate().ok());
  ASSERT_TRUE(backend_->Retire(1).ok());
  auto r = backend_->ReadAnchor();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->seq, 4u);
  EXPECT_EQ(r->counter, 1u) << "re-sealing is not an advance";
  EXPECT_EQ(r->head_hash, Sha256(AsBytes("entry 4")));
}

// Another process rotated while this backend was open: this one refuses to make a
// duplicate generation rather than guess.
TEST_F(RotationTest, RotateRefusesWhenAnotherProcessAddedAGeneration) {
  auto other = OpenOrDie(token_);  // stands in for `sealkeep hsm rotate` elsewhere
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(other->Rotate().ok());
  auto g = backend_->Rotate();
  EXPECT_EQ(g.status().reason(), "generations_changed") << g.status().ToString();
}

}  // namespace
}  // namespace sk::hsm
