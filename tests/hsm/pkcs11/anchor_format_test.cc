// The anchor value format (anchor_format.h): layout, the worked example of
// docs/pkcs11.md, and refusal of malformed values. Pure bytes, no token.
#include <gtest/gtest.h>

#include "hsm/pkcs11/anchor_format.h"

namespace sk::hsm::pkcs11 {
namespace {

AnchorRecord Example() {
  AnchorRecord r;
  r.keyset_id = {0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x60, 0x71, 0x82};
  r.generation = 2;
  r.anchor.seq = 1000;
  for (std::size_t i = 0; i < r.anchor.head_hash.size(); ++i)
    r.anchor.head_hash[i] = static_cast<std::uint8_t>(i);
  r.anchor.counter = 7;
  return r;
}

// docs/pkcs11.md shows these bytes.
TEST(AnchorFormat, WorkedExampleEncodesAsDocumented) {
  Bytes sealed = EncodeAnchorSealedPart(Example());
  EXPECT_EQ(sealed.size(), kAnchorSealedPartSize);
  EXPECT_EQ(HexEncode(sealed),
            "01"                                                                // version
            "1b2c3d4e5f607182"                                                  // keyset id
            "00000002"                                                          // generation
            "00000000000003e8"                                                  // seq 1000
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"  // head hash
            "0000000000000007");                                                // counter
  Bytes aad = AnchorAad(sealed);
  EXPECT_EQ(std::string(AsChars(ByteView(aad).first(kAnchorAadPrefix.size()))), "sealkeep/pkcs11-anchor/v1");
  EXPECT_EQ(aad.size(), 25u + 61u);
}

TEST(AnchorFormat, ParsesWhatItEncodes) {
  Bytes value = EncodeAnchorSealedPart(Example());
  value.resize(kAnchorValueSize, 0xaa);  // IV and tag: opaque here
  auto p = ParseAnchorValue(value);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->record.keyset_id, Example().keyset_id);
  EXPECT_EQ(p->record.generation, 2u);
  EXPECT_EQ(p->record.anchor.seq, 1000u);
  EXPECT_EQ(p->record.anchor.head_hash, Example().anchor.head_hash);
  EXPECT_EQ(p->record.anchor.counter, 7u);
  EXPECT_EQ(p->iv.size(), 12u);
  EXPECT_EQ(p->tag.size(), 16u);
  EXPECT_EQ(p->sealed_part.size(), 61u);
}

TEST(AnchorFormat, WrongSizeVersionOrGenerationIsAnchorInvalid) {
  Bytes value = EncodeAnchorSealedPart(Example());
  value.resize(kAnchorValueSize);
  for (std::size_t n : {0u, 1u, 61u, 88u, 90u}) {
    Bytes v = value;
    v.resize(n);
    EXPECT_EQ(ParseAnchorValue(v).status().reason(), "anchor_invalid") << n;
  }
  Bytes v2 = value;
  v2[0] = 0x02;
  EXPECT_EQ(ParseAnchorValue(v2).status().reason(), "anchor_invalid");
  Bytes g0 = value;
  g0[12] = 0;
  EXPECT_EQ(ParseAnchorValue(g0).status().reason(), "anchor_invalid");
}

}  // namespace
}  // namespace sk::hsm::pkcs11
