// The TPM backend's formats and pure helpers, without a TPM: PCR lists, the policy digest
// (known answers), and the parsers of the record, sealed file and NV anchor, which must
// refuse every malformed input before slicing it.
#include <gtest/gtest.h>

#include "crypto/bytes.h"
#include "hsm/tpm/nv_anchor_format.h"
#include "hsm/tpm/pcr.h"
#include "hsm/tpm/policy.h"
#include "hsm/tpm/record_format.h"
#include "hsm/tpm/sealed_file_format.h"

namespace sk::hsm::tpm {
namespace {

std::string Hex(const Digest& d) { return HexEncode(d); }

TEST(PcrListTest, ParsesAndFormatsPcrLists) {
  auto m = ParsePcrList("7,11");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m, (1u << 7) | (1u << 11));
  EXPECT_EQ(FormatPcrMask(*m), "7,11");
  EXPECT_EQ(*ParsePcrList(""), 0u);
  EXPECT_EQ(*ParsePcrList("none"), 0u);
  EXPECT_EQ(FormatPcrMask(0), "none");
  EXPECT_EQ(PcrListFromMask(*m), (std::vector<int>{7, 11}));
}

TEST(PcrListTest, RejectsBadPcrLists) {
  for (const char* bad : {"24", "-1", "7,,11", "7,7", "a", "7 ", ",", "7,"}) {
    auto m = ParsePcrList(bad);
    EXPECT_FALSE(m.ok()) << bad;
    if (!m.ok()) {
      EXPECT_EQ(m.status().reason(), "bad_pcrs") << bad;
    }
  }
  EXPECT_FALSE(PcrMaskFromList({7, 7}).ok());
  EXPECT_FALSE(PcrMaskFromList({30}).ok());
}

TEST(PolicyDigestTest, AuthValueOnlyPolicyHasTheWellKnownDigest) {
  // TPM2_PolicyAuthValue from an empty policy (as `tpm2_policyauthvalue` prints it).
  EXPECT_EQ(Hex(PolicyDigest(0, Digest{})),
            "8fcd2169ab92694e0c633f1ab772842b8241bbc20288981fc7ac1eddc1fddb0e");
}

TEST(PolicyDigestTest, PcrSevenAtResetPolicyMatchesWhatTheTpmComputes) {
  // tpm2_startauthsession (trial); tpm2_policypcr -l sha256:7; tpm2_policyauthvalue on a
  // fresh swtpm, where PCR 7 holds 32 zero bytes.
  Digest composite = PcrComposite({Digest{}});
  EXPECT_EQ(Hex(composite), "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925");
  EXPECT_EQ(Hex(PolicyDigest(1u << 7, composite)),
            "b8db92fae7c1e0c588e7352d2fc10f27c7b384e32f706a520cb10bf7ffee8970");
}

TEST(PolicyDigestTest, PcrPolicyDependsOnSelectionAndValues) {
  Digest zero{};
  Digest composite = PcrComposite({zero});
  Digest a = PolicyDigest(1u << 7, composite);
  EXPECT_NE(a, PolicyDigest(1u << 11, composite));
  EXPECT_NE(a, PolicyDigest(1u << 7, PcrComposite({Digest{1}})));
  EXPECT_NE(a, PolicyDigest(0, Digest{}));
}

TEST(RecordFormatTest, RoundTripsAndMatchesTheWorkedExample) {
  TpmRecord r;
  r.keyset_id = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
  r.nv_counter_index = 0x01500100;
  r.nv_anchor_index = 0x01500101;
  Bytes b = EncodeRecord(r);
  EXPECT_EQ(HexEncode(b), "534b5452010123456789abcdef015001000150010100000000");
  auto back = ParseRecord(b);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->keyset_id, r.keyset_id);
  EXPECT_EQ(back->nv_anchor_index, r.nv_anchor_index);
}

TEST(RecordFormatTest, MalformedRecordsAreRefused) {
  TpmRecord r;
  r.nv_counter_index = 0x01500100;
  r.nv_anchor_index = 0x01500101;
  Bytes good = EncodeRecord(r);
  for (std::size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(ParseRecord(ByteView(good.data(), n)).ok()) << "truncated to " << n;
  }
  Bytes longer = good;
  longer.push_back(0);
  EXPECT_FALSE(ParseRecord(longer).ok());
  Bytes bad_magic = good;
  bad_magic[0] ^= 1;
  EXPECT_EQ(ParseRecord(bad_magic).status().reason(), "malformed_state");
  Bytes same_index = good;
  same_index[20] = 0x00;  // anchor index = counter index
  EXPECT_FALSE(ParseRecord(same_index).ok());
  Bytes bad_primary = good;
  bad_primary[21] = 0x80;
  EXPECT_FALSE(ParseRecord(bad_primary).ok());
}

SealedFile SampleFile() {
  SealedFile f;
  f.keyset_id = {1, 2, 3, 4, 5, 6, 7, 8};
  f.generation = 3;
  f.flags = kFlagAuthValue;
  f.pcr_mask = (1u << 7) | (1u << 11);
  f.pcr_values = {Digest{7}, Digest{11}};
  f.pcr_composite = PcrComposite(f.pcr_values);
  f.public_area = {0x00, 0x03, 0xAA, 0xBB, 0xCC};
  f.private_area = {0x00, 0x02, 0x11, 0x22};
  return f;
}

TEST(SealedFileFormatTest, RoundTrips) {
  Bytes b = EncodeSealedFile(SampleFile());
  auto f = ParseSealedFile(b);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->generation, 3u);
  EXPECT_TRUE(f->auth_required());
  EXPECT_EQ(f->pcr_values.size(), 2u);
  EXPECT_EQ(f->public_area, SampleFile().public_area);
  EXPECT_EQ(f->private_area, SampleFile().private_area);
}

TEST(SealedFileFormatTest, EveryTruncationAndTrailingByteIsRefused) {
  Bytes good = EncodeSealedFile(SampleFile());
  for (std::size_t n = 0; n < good.size(); ++n) {
    auto f = ParseSealedFile(ByteView(good.data(), n));
    EXPECT_FALSE(f.ok()) << "truncated to " << n;
  }
  Bytes longer = good;
  longer.push_back(0);
  EXPECT_FALSE(ParseSealedFile(longer).ok());
}

TEST(SealedFileFormatTest, InconsistentFieldsAreRefused) {
  SealedFile f = SampleFile();
  f.pcr_composite = Digest{};  // does not match the values
  EXPECT_FALSE(ParseSealedFile(EncodeSealedFile(f)).ok());
  f = SampleFile();
  f.public_area = {0x00, 0x09, 0xAA};  // TPM2B size field disagrees
  EXPECT_FALSE(ParseSealedFile(EncodeSealedFile(f)).ok());
  f = SampleFile();
  f.flags = 0x80;
  EXPECT_FALSE(ParseSealedFile(EncodeSealedFile(f)).ok());
  f = SampleFile();
  f.generation = 0;
  EXPECT_FALSE(ParseSealedFile(EncodeSealedFile(f)).ok());
  Bytes huge = EncodeSealedFile(SampleFile());
  huge.resize(kMaxSealedFile + 1);
  EXPECT_FALSE(ParseSealedFile(huge).ok());
}

TEST(SealedFileFormatTest, FileNamesRoundTripAndOthersAreIgnored) {
  EXPECT_EQ(SealedFileName(1), "master-00000001.sealed");
  EXPECT_EQ(ParseSealedFileName("master-00000042.sealed"), 42u);
  for (const char* other : {"master-00000000.sealed", "master-1.sealed", ".master-00000001.sealed.tmp",
                            "master-0000000x.sealed", "tpm-record"}) {
    EXPECT_FALSE(ParseSealedFileName(other).has_value()) << other;
  }
}

TEST(SealedPayloadTest, RoundTripsAndRefusesOtherSizes) {
  SealedPayload p;
  p.keyset_id = {9, 9, 9, 9, 9, 9, 9, 9};
  p.generation = 5;
  p.master_key = SecretBytes(32);
  p.anchor_auth = SecretBytes(32);
  p.master_key.Expose()[0] = 0x42;
  auto bytes = EncodePayload(p);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(bytes->size(), kPayloadSize);
  auto back = ParsePayload(bytes->Expose());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->generation, 5u);
  EXPECT_TRUE(back->master_key.Equals(p.master_key));
  EXPECT_FALSE(ParsePayload(bytes->Expose().first(kPayloadSize - 1)).ok());
}

TEST(NvAnchorFormatTest, RoundTripsAndRefusesOtherSizes) {
  NvAnchorContents c;
  c.keyset_id = {1, 2, 3, 4, 5, 6, 7, 8};
  c.anchor.seq = 77;
  c.anchor.head_hash = Digest{0xEE};
  c.anchor.counter = 9;
  Bytes b = EncodeNvAnchor(c);
  EXPECT_EQ(b.size(), kNvAnchorSize);
  auto back = ParseNvAnchor(b);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->anchor.seq, 77u);
  EXPECT_EQ(back->anchor.counter, 9u);
  EXPECT_EQ(back->anchor.head_hash, c.anchor.head_hash);
  EXPECT_FALSE(ParseNvAnchor(ByteView(b.data(), b.size() - 1)).ok());
  b[0] = 2;
  EXPECT_FALSE(ParseNvAnchor(b).ok());
}

}  // namespace
}  // namespace sk::hsm::tpm
