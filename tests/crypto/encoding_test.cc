// Status/Result, hex/base64, and the bounded byte reader used by every binary format.
#include <gtest/gtest.h>

#include "crypto/bytes.h"
#include "crypto/self_test.h"
#include "crypto/status.h"

namespace sk {
namespace {

TEST(Status, CarriesCodeReasonAndMessage) {
  Status ok;
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.reason(), "ok");
  Status st = Conflict("head is 4, caller saw 3", "cas_mismatch");
  EXPECT_EQ(st.code(), Code::kConflict);
  EXPECT_EQ(st.reason(), "cas_mismatch");
  EXPECT_EQ(st.ToString(), "cas_mismatch: head is 4, caller saw 3");
  Status ctx = st.WithContext("rollback db/pw");
  EXPECT_EQ(ctx.reason(), "cas_mismatch");
  EXPECT_EQ(ctx.message(), "rollback db/pw: head is 4, caller saw 3");
  EXPECT_EQ(NotFound("x").reason(), "not_found");
}

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgument("odd");
  return x / 2;
}

Status Quarter(int x, int& out) {
  SK_ASSIGN_OR_RETURN(int h, Half(x));
  SK_ASSIGN_OR_RETURN(out, Half(h));
  return OkStatus();
}

TEST(Result, PropagatesErrorsThroughTheMacros) {
  int q = 0;
  EXPECT_TRUE(Quarter(8, q).ok());
  EXPECT_EQ(q, 2);
  EXPECT_EQ(Quarter(6, q).reason(), "invalid_argument");
  Result<int> bad{Status()};
  EXPECT_FALSE(bad.ok()) << "a Result made from an OK Status must not pretend to hold a value";
}

TEST(Encoding, HexRoundTripsAndRejectsJunk) {
  Bytes b = {0x00, 0xff, 0x10};
  EXPECT_EQ(HexEncode(b), "00ff10");
  EXPECT_EQ(HexDecode("00FF10"), b);
  EXPECT_FALSE(HexDecode("0").has_value());
  EXPECT_FALSE(HexDecode("zz").has_value());
}

TEST(Encoding, Base64MatchesRfc4648AndRejectsJunk) {
  const char* vectors[][2] = {{"", ""},
                              {"f", "Zg=="},
                              {"fo", "Zm8="},
                              {"foo", "Zm9v"},
                              {"foob", "Zm9vYg=="},
                              {"fooba", "Zm9vYmE="},
                              {"foobar", "Zm9vYmFy"}};
  for (auto& v : vectors) {
    EXPECT_EQ(Base64Encode(AsBytes(v[0])), v[1]);
    EXPECT_EQ(Base64Decode(v[1]), ToBytes(v[0]));
  }
  for (const char* bad : {"Zg=", "Z===", "Zg==Zg==", "Zm9v!", "Zm=v", "===="}) {
    EXPECT_FALSE(Base64Decode(bad).has_value()) << bad;
  }
}

TEST(ByteReader, NeverReadsPastItsInputOrACap) {
  ByteWriter w;
  w.U8(7);
  w.U32(0xDEADBEEF);
  w.Var16(std::string_view("hello"));
  w.U64(42);
  Bytes bytes = std::move(w).Take();
  ByteReader r(bytes);
  std::uint8_t a = 0;
  std::uint32_t b = 0;
  std::string s;
  std::uint64_t c = 0;
  ASSERT_TRUE(r.U8(a) && r.U32(b) && r.Var16(s) && r.U64(c));
  EXPECT_TRUE(r.AtEnd());
  EXPECT_EQ(b, 0xDEADBEEF);
  EXPECT_EQ(s, "hello");
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    ByteReader t(ByteView(bytes).first(n));
    bool ok = t.U8(a) && t.U32(b) && t.Var16(s) && t.U64(c);
    EXPECT_FALSE(ok) << "truncated at " << n;
    EXPECT_FALSE(t.ok());
  }
  ByteReader capped(ByteView(bytes).subspan(5));
  EXPECT_FALSE(capped.Var16(s, 4)) << "a length over the cap must be refused";
}

TEST(SelfTest, CryptoKnownAnswersPass) { EXPECT_TRUE(RunCryptoSelfTest().ok()); }

}  // namespace
}  // namespace sk
