// The journal anchor in TPM NV: read/advance, the counter only ever increasing, and the
// anchor surviving a close/reopen, an orderly reboot and a power loss.
#include <gtest/gtest.h>

#include "hsm/tpm/esys_context.h"
#include "hsm/tpm/inspect.h"
#include "hsm/tpm/nv_anchor.h"
#include "hsm/tpm/primary.h"
#include "tests/hsm/tpm/test_util.h"

namespace sk::hsm::tpm {
namespace {

using sk::testing::RunCommand;

Digest HashOf(std::uint8_t b) {
  Digest d{};
  d.fill(b);
  return d;
}

class AnchorTest : public TpmTest {
 protected:
  void SetUp() override {
    Provision();
    backend_ = OpenOrFail();
    ASSERT_NE(backend_, nullptr);
  }
  std::unique_ptr<TpmBackend> backend_;
};

TEST_F(AnchorTest, FreshAnchorIsTheEmptyJournal) {
  auto a = backend_->ReadAnchor();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->seq, 0u);
  EXPECT_EQ(a->head_hash, Digest{});
  EXPECT_GE(a->counter, 1u);
}

TEST_F(AnchorTest, AdvanceStoresTheHeadAndTheCounterIncreases) {
  auto before = backend_->ReadAnchor();
  ASSERT_TRUE(before.ok());
  std::uint64_t last = before->counter;
  for (std::uint64_t seq = 1; seq <= 5; ++seq) {
    auto a = backend_->AdvanceAnchor(seq, HashOf(static_cast<std::uint8_t>(seq)));
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_EQ(a->seq, seq);
    EXPECT_EQ(a->head_hash, HashOf(static_cast<std::uint8_t>(seq)));
    EXPECT_EQ(a->counter, last + 1);
    last = a->counter;
    auto read = backend_->ReadAnchor();
    ASSERT_TRUE(read.ok());
    EXPECT_EQ(read->seq, seq);
    EXPECT_EQ(read->head_hash, a->head_hash);
    EXPECT_EQ(read->counter, a->counter);
  }
  EXPECT_EQ(swtpm_.TransientHandles(), 0);
  EXPECT_EQ(swtpm_.LoadedSessions(), 0);
}

TEST_F(AnchorTest, AnchorPersistsAcrossCloseAndReopen) {
  auto a = backend_->AdvanceAnchor(42, HashOf(0x42));
  ASSERT_TRUE(a.ok());
  backend_.reset();
  backend_ = OpenOrFail();
  ASSERT_NE(backend_, nullptr);
  auto read = backend_->ReadAnchor();
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->seq, 42u);
  EXPECT_EQ(read->head_hash, HashOf(0x42));
  EXPECT_EQ(read->counter, a->counter);
}

TEST_F(AnchorTest, AnchorPersistsAcrossAnOrderlyReboot) {
  auto a = backend_->AdvanceAnchor(7, HashOf(7));
  ASSERT_TRUE(a.ok());
  backend_.reset();
  swtpm_.Restart();
  backend_ = OpenOrFail();
  ASSERT_NE(backend_, nullptr);
  auto read = backend_->ReadAnchor();
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->seq, 7u);
  EXPECT_EQ(read->head_hash, HashOf(7));
  EXPECT_EQ(read->counter, a->counter);  // orderly shutdown: the counter was saved
  auto next = backend_->AdvanceAnchor(8, HashOf(8));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->counter, a->counter + 1);
}

TEST_F(AnchorTest, AfterPowerLossTheHeadIsKeptAndTheOrderlyCounterJumpsAhead) {
  auto a = backend_->AdvanceAnchor(9, HashOf(9));
  ASSERT_TRUE(a.ok());
  backend_.reset();
  // SIGKILL without TPM2_Shutdown: the TPM starts with no orderly state saved, so it
  // moves the orderly counter past any value it may have handed out (swtpm 0.7.1 with
  // TPM2_PT_ORDERLY_COUNT 255: to the end of the current block of 256, here 2 -> 255).
  swtpm_.PowerLoss();
  backend_ = OpenOrFail();
  ASSERT_NE(backend_, nullptr);
  auto read = backend_->ReadAnchor();
  ASSERT_TRUE(read.ok()) << read.status().ToString()
                         << ": a counter above the stored one is no reason to refuse the anchor";
  // The anchor index is not orderly: its last write survived.
  EXPECT_EQ(read->seq, 9u);
  EXPECT_EQ(read->head_hash, HashOf(9));
  // The jump is real: the hardware counter is ahead of what the anchor stored, with no
  // increment in between.
  EXPECT_GT(read->counter, a->counter + 1);
  auto next = backend_->AdvanceAnchor(10, HashOf(10));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->counter, read->counter + 1);
}

TEST_F(AnchorTest, AnOrderlyRebootMakesNoJumpButAPowerLossAfterItDoes) {
  // The contrast that shows the jump comes from the unclean shutdown, not from a restart.
  auto a = backend_->AdvanceAnchor(1, HashOf(1));
  ASSERT_TRUE(a.ok());
  backend_.reset();
  swtpm_.Restart();
  backend_ = OpenOrFail();
  ASSERT_NE(backend_, nullptr);
  auto after_reboot = backend_->ReadAnchor();
  ASSERT_TRUE(after_reboot.ok());
  EXPECT_EQ(after_reboot->counter, a->counter);
  backend_.reset();
  swtpm_.PowerLoss();
  backend_ = OpenOrFail();
  ASSERT_NE(backend_, nullptr);
  auto after_loss = backend_->ReadAnchor();
  ASSERT_TRUE(after_loss.ok());
  EXPECT_GT(after_loss->counter, a->counter + 1);
  EXPECT_EQ(after_loss->seq, 1u);
}

TEST_F(AnchorTest, StatusReadsTheAnchorAsOwner) {
  ASSERT_TRUE(backend_->AdvanceAnchor(3, HashOf(3)).ok());
  auto st = InspectTpm(config_);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  ASSERT_TRUE(st->anchored.has_value());
  EXPECT_EQ(st->anchored->seq, 3u);
  EXPECT_EQ(st->anchored->head_hash, HashOf(3));
  EXPECT_TRUE(st->anchor_keyset_matches);
}

TEST_F(AnchorTest, AnAnchorAuthValueEndingInZeroBytesWorks) {
  // The TPM drops trailing zero bytes of an index's auth value; ESYS must be given the same.
  auto esys = EsysContext::Open(config_.tcti);
  ASSERT_TRUE(esys.ok());
  ESYS_CONTEXT* ctx = (*esys)->get();
  SecretBytes auth = NewKey(32);
  auth.Expose()[30] = 0;
  auth.Expose()[31] = 0;
  {
    auto primary = LoadPrimary(ctx, 0);
    ASSERT_TRUE(primary.ok());
    ASSERT_TRUE(DefineCounterIndex(ctx, primary->get(), 0x01500300, auth, SecretBytes()).ok());
    ASSERT_TRUE(DefineAnchorIndex(ctx, primary->get(), 0x01500301, auth, SecretBytes()).ok());
  }
  auto nv = NvAnchor::Attach(ctx, 0x01500300, 0x01500301);
  ASSERT_TRUE(nv.ok()) << nv.status().ToString();
  ASSERT_TRUE((*nv)->SetAnchorAuth(auth).ok());
  KeysetId keyset{1, 2, 3, 4, 5, 6, 7, 8};
  auto a = (*nv)->Advance(keyset, 1, HashOf(1));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto read = (*nv)->Read(keyset);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->seq, 1u);
}

TEST_F(AnchorTest, AnchorIndexRedefinedBySomeoneElseIsWrongTpm) {
  backend_.reset();
  // Someone with owner auth replaces the anchor index with one of the same shape but an
  // auth value of their choosing, to write an old head into it.
  std::string tools = "TPM2TOOLS_TCTI='" + swtpm_.Tcti() + "' ";
  ASSERT_EQ(RunCommand(tools + "tpm2_nvundefine 0x01500101 -C o"), 0);
  ASSERT_EQ(RunCommand(tools + "tpm2_nvdefine 0x01500101 -C o -s 57 -p attacker "
                               "-a 'authwrite|authread|ownerread|no_da|writeall'"),
            0);
  auto b = Open();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().reason(), "wrong_tpm") << b.status().ToString();
  EXPECT_EQ(swtpm_.TransientHandles(), 0);
}

TEST_F(AnchorTest, CounterIndexReplacedWithOtherAttributesIsWrongTpm) {
  backend_.reset();
  std::string tools = "TPM2TOOLS_TCTI='" + swtpm_.Tcti() + "' ";
  ASSERT_EQ(RunCommand(tools + "tpm2_nvundefine 0x01500100 -C o"), 0);
  ASSERT_EQ(RunCommand(tools + "tpm2_nvdefine 0x01500100 -C o -s 8 -a 'ownerwrite|ownerread|nt=counter'"), 0);
  auto b = Open();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().reason(), "wrong_tpm") << b.status().ToString();
}

}  // namespace
}  // namespace sk::hsm::tpm
