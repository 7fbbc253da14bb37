// Conformance of the crypto layer against Project Wycheproof vectors (../shared/testdata).
// Every case the API can express runs: a `valid` case must give the expected output, an
// `invalid` one must be refused. Cases are skipped only for parameters the API deliberately
// does not offer; each skip is counted under its named reason and printed.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "crypto/aead.h"
#include "crypto/ct.h"
#include "crypto/mac.h"

namespace sk {
namespace {

using nlohmann::json;

json Load(const std::string& name) {
  std::string path = std::string(SK_SHARED_DIR) + "/testdata/wycheproof/" + name;
  std::ifstream in(path);
  if (!in) ADD_FAILURE() << "missing test vectors: " << path;
  return in ? json::parse(in) : json::object();
}

Bytes Hex(const json& j) {
  auto b = HexDecode(j.get<std::string>());
  EXPECT_TRUE(b.has_value());
  return b.value_or(Bytes{});
}

// Tallies what ran and what was skipped (by reason), and prints it at the end.
struct Tally {
  explicit Tally(std::string f) : file(std::move(f)) {}
  Tally(const Tally&) = delete;
  Tally& operator=(const Tally&) = delete;
  std::string file;
  int ran = 0;
  int valid = 0;
  int invalid = 0;
  std::map<std::string, int> skipped;
  ~Tally() {
    int skips = 0;
    for (const auto& [why, n] : skipped) skips += n;
    std::printf("[wycheproof] %s: %d cases ran (%d valid, %d invalid), %d skipped\n", file.c_str(), ran,
                valid, invalid, skips);
    for (const auto& [why, n] : skipped) std::printf("[wycheproof]   skipped %d: %s\n", n, why.c_str());
  }
  void Ran(const std::string& result) {
    ++ran;
    (result == "invalid" ? invalid : valid)++;
  }
};

TEST(Wycheproof, AesGcmEveryExpressibleCase) {
  json doc = Load("aes_gcm_test.json");
  Tally t("aes_gcm_test.json");
  for (const auto& group : doc["testGroups"]) {
    int key_bits = group["keySize"], iv_bits = group["ivSize"], tag_bits = group["tagSize"];
    for (const auto& c : group["tests"]) {
      if (key_bits != 256) {
        t.skipped["AES-" + std::to_string(key_bits) + " keys (the API offers AES-256 only)"]++;
        continue;
      }
      if (iv_bits != 96) {
        t.skipped[std::to_string(iv_bits) + "-bit nonces (the API offers 96-bit nonces only)"]++;
        continue;
      }
      if (tag_bits != 128) {
        t.skipped[std::to_string(tag_bits) + "-bit tags (the API offers 128-bit tags only)"]++;
        continue;
      }
      std::string result = c["result"];
      SCOPED_TRACE("tcId " + std::to_string(c["tcId"].get<int>()) + " " + c["comment"].get<std::string>());
      SecretBytes key = SecretBytes::CopyFrom(Hex(c["key"]));
      Bytes iv = Hex(c["iv"]), aad = Hex(c["aad"]), msg = Hex(c["msg"]);
      Bytes expect = Hex(c["ct"]);
      Bytes tag = Hex(c["tag"]);
      expect.insert(expect.end(), tag.begin(), tag.end());
      Bytes opened(expect.size() >= kAeadTagSize ? expect.size() - kAeadTagSize : 0);
      Status open = AesGcmOpen(key, iv, aad, expect, opened);
      t.Ran(result);
      if (result == "invalid") {
        EXPECT_FALSE(open.ok()) << "an invalid ciphertext was accepted";
        EXPECT_EQ(open.reason(), "does_not_verify");
        EXPECT_TRUE(std::all_of(opened.begin(), opened.end(), [](std::uint8_t b) { return b == 0; }))
            << "output not wiped after a failed tag check";
        continue;
      }
      Bytes sealed(msg.size() + kAeadTagSize);
      ASSERT_TRUE(AesGcmSeal(key, iv, aad, msg, sealed).ok());
      EXPECT_EQ(HexEncode(sealed), HexEncode(expect));
      ASSERT_TRUE(open.ok()) << open.ToString();
      EXPECT_EQ(HexEncode(opened), HexEncode(msg));
    }
  }
  EXPECT_GT(t.ran, 60);
}

TEST(Wycheproof, HmacSha256EveryExpressibleCase) {
  json doc = Load("hmac_sha256_test.json");
  Tally t("hmac_sha256_test.json");
  for (const auto& group : doc["testGroups"]) {
    int tag_bits = group["tagSize"];
    for (const auto& c : group["tests"]) {
      if (tag_bits != 256) {
        t.skipped[std::to_string(tag_bits) +
                  "-bit truncated tags (the API never truncates or accepts a short tag)"]++;
        continue;
      }
      std::string result = c["result"];
      SCOPED_TRACE("tcId " + std::to_string(c["tcId"].get<int>()) + " " + c["comment"].get<std::string>());
      SecretBytes key = SecretBytes::CopyFrom(Hex(c["key"]));
      Bytes msg = Hex(c["msg"]), tag = Hex(c["tag"]);
      Hmac hmac(key);
      bool verifies = hmac.Verify(msg, tag);
      t.Ran(result);
      if (result == "invalid") {
        EXPECT_FALSE(verifies) << "a wrong tag verified";
        continue;
      }
      EXPECT_TRUE(verifies);
      EXPECT_EQ(HexEncode(HmacSha256(key, msg)), HexEncode(tag));
    }
  }
  EXPECT_GT(t.ran, 50);
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
  EXPECT_EQ(t.ran, doc["numberOfTests"].get<int>());
}

}  // namespace
}  // namespace sk
