// Conformance of the crypto layer against Project Wycheproof vectors (tests/data/wycheproof).
// Every case the API can express runs: a `valid` case must give the expected output, an
// `invalid` one must be refused. Cases are skipped only for parameters the API deliberately
// does not offer; each skip is counted under its named reason and printed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "crypto/aead.h"
#include "crypto/ct.h"
#include "crypto/ecdsa.h"
#include "crypto/mac.h"

namespace sk {
namespace {

using nlohmann::json;

json Load(const std::string& name) {
  std::string path = std::string(SK_SOURCE_DIR) + "/tests/data/wycheproof/" + name;
  std::ifstream in(path);
  if (!in) ADD_FAILURE() << "missing test vectors: " << path;
  return in ? json::parse(in) : json::object();
}

Bytes Hex(const json& j) {
  auto b = HexDecode(j.get<std::string>());
  EXPECT_TRUE(b.has_value());
  return b.value_or(Bytes{});
}

// Tallies what ran and what was skipped (by reason). Report() prints it to stdout (see
// README: `crypto_test --gtest_filter='Wycheproof*' | grep wycheproof`) and records it as
// test properties, so the counts also land in the gtest XML / ctest output.
struct Tally {
  explicit Tally(std::string f) : file(std::move(f)) {}
  Tally(const Tally&) = delete;
  Tally& operator=(const Tally&) = delete;
  std::string file;
  int ran = 0;
  int valid = 0;
  int invalid = 0;
  std::map<std::string, int> skipped;
  int Skips() const {
    int skips = 0;
    for (const auto& [why, n] : skipped) skips += n;
    return skips;
  }
  void Ran(const std::string& result) {
    ++ran;
    (result == "invalid" ? invalid : valid)++;
  }
  void Report() const {
    std::printf("[wycheproof] %s: %d cases ran (%d valid, %d invalid), %d skipped\n", file.c_str(), ran,
                valid, invalid, Skips());
    for (const auto& [why, n] : skipped) std::printf("[wycheproof]   skipped %d: %s\n", n, why.c_str());
    std::fflush(stdout);
    ::testing::Test::RecordProperty("wycheproof_ran", ran);
    ::testing::Test::RecordProperty("wycheproof_ran_valid", valid);
    ::testing::Test::RecordProperty("wycheproof_ran_invalid", invalid);
    ::testing::Test::RecordProperty("wycheproof_skipped", Skips());
  }
};

bool AllZero(const Bytes& b) {
  return std::all_of(b.begin(), b.end(), [](std::uint8_t x) { return x == 0; });
}

// Skip reasons; the tests below assert their exact counts.
const char kSkipAes128[] = "valid AES-128 cases (the API offers AES-256 keys only; it refuses others)";
const char kSkipAes192[] = "valid AES-192 cases (the API offers AES-256 keys only; it refuses others)";
const char kSkipNonce[] =
    "valid AES-256 cases with a nonce other than 96 bits (the API offers 96-bit nonces only; it "
    "refuses others)";
const char kSkipShortTag[] =
    "valid cases with a 128-bit truncated tag (the API never truncates a tag; Verify refuses a short "
    "one)";

// A parameter the API does not offer (key size, nonce size) must be refused by both seal and open
// with the named reason, before any cryptography runs.
void ExpectRefused(const SecretBytes& key, const Bytes& iv, const Bytes& aad, const Bytes& msg,
                   const Bytes& sealed, const std::string& reason) {
  Bytes out(msg.size() + kAeadTagSize);
  Status seal = AesGcmSeal(key, iv, aad, msg, out);
  EXPECT_FALSE(seal.ok()) << "seal accepted an unsupported parameter";
  EXPECT_EQ(seal.code(), Code::kInvalidArgument);
  EXPECT_EQ(seal.reason(), reason);
  Bytes opened(sealed.size() >= kAeadTagSize ? sealed.size() - kAeadTagSize : 0);
  Status open = AesGcmOpen(key, iv, aad, sealed, opened);
  EXPECT_FALSE(open.ok()) << "open accepted an unsupported parameter";
  EXPECT_EQ(open.code(), Code::kInvalidArgument);
  EXPECT_EQ(open.reason(), reason);
  EXPECT_TRUE(AllZero(opened)) << "output written despite refusal";
}

// Every `invalid` case runs: with AES-256 and a 96-bit nonce it must fail the tag check; with a
// key or nonce size the API does not offer it must be refused for that size. A `valid` case
// with such a size cannot give its expected output, so it is skipped under a named reason (after
// checking that the API really refuses it).
TEST(Wycheproof, AesGcmEveryExpressibleCase) {
  json doc = Load("aes_gcm_test.json");
  Tally t("aes_gcm_test.json");
  for (const auto& group : doc["testGroups"]) {
    int key_bits = group["keySize"], iv_bits = group["ivSize"], tag_bits = group["tagSize"];
    ASSERT_EQ(tag_bits, 128) << "a tag size this test does not handle; add a named skip";
    for (const auto& c : group["tests"]) {
      std::string result = c["result"];
      SCOPED_TRACE("tcId " + std::to_string(c["tcId"].get<int>()) + " " + c["comment"].get<std::string>());
      SecretBytes key = SecretBytes::CopyFrom(Hex(c["key"]));
      Bytes iv = Hex(c["iv"]), aad = Hex(c["aad"]), msg = Hex(c["msg"]);
      Bytes expect = Hex(c["ct"]);
      Bytes tag = Hex(c["tag"]);
      expect.insert(expect.end(), tag.begin(), tag.end());
      ASSERT_EQ(key.size() * 8, static_cast<std::size_t>(key_bits));
      ASSERT_EQ(iv.size() * 8, static_cast<std::size_t>(iv_bits));

      const char* unsupported = nullptr;
      std::string reason;
      if (key_bits != 256) {
        unsupported = key_bits == 128 ? kSkipAes128 : kSkipAes192;
        ASSERT_TRUE(key_bits == 128 || key_bits == 192) << "unexpected key size " << key_bits;
        reason = "bad_key_size";
      } else if (iv_bits != 96) {
        unsupported = kSkipNonce;
        reason = "bad_nonce_size";
      }
      if (unsupported != nullptr) {
        ExpectRefused(key, iv, aad, msg, expect, reason);
        if (result == "invalid") {
          t.Ran(result);
        } else {
          t.skipped[unsupported]++;
        }
        continue;
      }

      Bytes opened(expect.size() >= kAeadTagSize ? expect.size() - kAeadTagSize : 0);
      Status open = AesGcmOpen(key, iv, aad, expect, opened);
      t.Ran(result);
      if (result == "invalid") {
        EXPECT_FALSE(open.ok()) << "an invalid ciphertext was accepted";
        EXPECT_EQ(open.reason(), "does_not_verify");
        EXPECT_TRUE(AllZero(opened)) << "output not wiped after a failed tag check";
        continue;
      }
      Bytes sealed(msg.size() + kAeadTagSize);
      ASSERT_TRUE(AesGcmSeal(key, iv, aad, msg, sealed).ok());
      EXPECT_EQ(HexEncode(sealed), HexEncode(expect));
      ASSERT_TRUE(open.ok()) << open.ToString();
      EXPECT_EQ(HexEncode(opened), HexEncode(msg));
    }
  }
  t.Report();
  // Exact counts: a change in the vectors (or in what the API offers) must be looked at.
  // invalid: 29 per key size (27 tag/ciphertext modifications + 2 empty nonces), all run.
  EXPECT_EQ(t.valid, 39);
  EXPECT_EQ(t.invalid, 87);
  EXPECT_EQ(t.ran, 126);
  EXPECT_EQ(t.Skips(), 190);
  EXPECT_EQ(t.skipped, (std::map<std::string, int>{{kSkipAes128, 79}, {kSkipAes192, 74}, {kSkipNonce, 37}}));
  EXPECT_EQ(t.ran + t.Skips(), doc["numberOfTests"].get<int>());
}

// Every `invalid` case runs, truncated tags included: Verify must refuse them. A `valid` case
// with a truncated tag is skipped (after checking that Verify refuses the short tag too).
TEST(Wycheproof, HmacSha256EveryExpressibleCase) {
  json doc = Load("hmac_sha256_test.json");
  Tally t("hmac_sha256_test.json");
  for (const auto& group : doc["testGroups"]) {
    int tag_bits = group["tagSize"];
    ASSERT_TRUE(tag_bits == 256 || tag_bits == 128) << "unexpected tag size " << tag_bits;
    for (const auto& c : group["tests"]) {
      std::string result = c["result"];
      SCOPED_TRACE("tcId " + std::to_string(c["tcId"].get<int>()) + " " + c["comment"].get<std::string>());
      SecretBytes key = SecretBytes::CopyFrom(Hex(c["key"]));
      Bytes msg = Hex(c["msg"]), tag = Hex(c["tag"]);
      ASSERT_EQ(tag.size() * 8, static_cast<std::size_t>(tag_bits));
      Hmac hmac(key);
      bool verifies = hmac.Verify(msg, tag);
      if (tag_bits != 256) {
        EXPECT_FALSE(verifies) << "a truncated tag verified";
        if (result == "invalid") {
          t.Ran(result);
        } else {
          t.skipped[kSkipShortTag]++;
        }
        continue;
      }
      t.Ran(result);
      if (result == "invalid") {
        EXPECT_FALSE(verifies) << "a wrong tag verified";
        continue;
      }
      EXPECT_TRUE(verifies);
      EXPECT_EQ(HexEncode(HmacSha256(key, msg)), HexEncode(tag));
    }
  }
  t.Report();
  // 87 full-tag cases (33 valid, 54 invalid) + 54 invalid truncated-tag cases.
  EXPECT_EQ(t.valid, 33);
  EXPECT_EQ(t.invalid, 108);
  EXPECT_EQ(t.ran, 141);
  EXPECT_EQ(t.skipped, (std::map<std::string, int>{{kSkipShortTag, 33}}));
  EXPECT_EQ(t.ran + t.Skips(), doc["numberOfTests"].get<int>());
}

TEST(Wycheproof, HkdfSha256EveryCase) {
  json doc = Load("hkdf_sha256_test.json");
  Tally t("hkdf_sha256_test.json");
  for (const auto& group : doc["testGroups"]) {
    for (const auto& c : group["tests"]) {
      std::string result = c["result"];
      SCOPED_TRACE("tcId " + std::to_string(c["tcId"].get<int>()) + " " + c["comment"].get<std::string>());
      SecretBytes ikm = SecretBytes::CopyFrom(Hex(c["ikm"]));
      auto okm = HkdfSha256(ikm, Hex(c["salt"]), Hex(c["info"]), c["size"].get<std::size_t>());
      t.Ran(result);
      if (result == "invalid") {
        EXPECT_FALSE(okm.ok()) << "an impossible output length was accepted";
        continue;
      }
      ASSERT_TRUE(okm.ok()) << okm.status().ToString();
      EXPECT_EQ(HexEncode(okm->Expose()), HexEncode(Hex(c["okm"])));
    }
  }
  t.Report();
  EXPECT_EQ(t.ran, 86);
  EXPECT_EQ(t.invalid, 3);
  EXPECT_TRUE(t.skipped.empty());
  EXPECT_EQ(t.ran, doc["numberOfTests"].get<int>());
}

// P1363 signatures (r || s, 64 bytes), as the fleet journal stores them: every valid case
// verifies, every invalid one (malleated, out-of-range, wrong-length, wrong-message) is refused.
TEST(Wycheproof, EcdsaP256Sha256EveryCase) {
  json doc = Load("ecdsa_secp256r1_sha256_p1363_test.json");
  Tally t("ecdsa_secp256r1_sha256_p1363_test.json");
  for (const auto& group : doc["testGroups"]) {
    ASSERT_EQ(group["sha"], "SHA-256");
    const Bytes key = Hex(group["publicKey"]["uncompressed"]);
    for (const auto& c : group["tests"]) {
      std::string result = c["result"];
      SCOPED_TRACE("tcId " + std::to_string(c["tcId"].get<int>()) + " " + c["comment"].get<std::string>());
      Status st = EcdsaP256Verify(key, Hex(c["msg"]), Hex(c["sig"]));
      t.Ran(result);
      if (result == "invalid") {
        EXPECT_FALSE(st.ok()) << "an invalid signature verified";
        EXPECT_EQ(st.reason(), "bad_signature");
      } else {
        EXPECT_TRUE(st.ok()) << st.ToString();
      }
    }
  }
  t.Report();
  EXPECT_EQ(t.valid, 169);
  EXPECT_EQ(t.invalid, 83);
  EXPECT_TRUE(t.skipped.empty());
  EXPECT_EQ(t.ran, doc["numberOfTests"].get<int>());
}

}  // namespace
}  // namespace sk
