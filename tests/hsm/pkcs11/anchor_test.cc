// The anchor: a private token data object holding the anchored journal head.
// Reads and advances persist across re-opening; altered values are refused; and the
// test of what it cannot do (a replayed token folder) keeps docs/pkcs11.md honest.
#include <gtest/gtest.h>

#include <filesystem>

#include "hsm/pkcs11/anchor_object.h"
#include "hsm/pkcs11/module.h"
#include "hsm/pkcs11/objects.h"
#include "hsm/pkcs11/open_token.h"
#include "tests/fixtures/temp_dir.h"
#include "tests/hsm/pkcs11/test_util.h"

namespace sk::hsm {
namespace {

using sk::testing::kSoftHsmModule;
using sk::testing::SoftHsmToken;
using sk::testing::TempDir;

Digest HashOf(const std::string& s) { return Sha256(AsBytes(s)); }

void ExpectAnchor(const Anchor& a, std::uint64_t seq, const Digest& hash, std::uint64_t counter) {
  EXPECT_EQ(a.seq, seq);
  EXPECT_EQ(a.head_hash, hash);
  EXPECT_EQ(a.counter, counter);
}

// Direct access to the token's anchor objects, as an attacker holding the PIN (or a
// crash) could leave them.
class RawToken {
 public:
  explicit RawToken(const SoftHsmToken& token) {
    auto t = pkcs11::OpenAndLogin(token.Config());
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    if (t.ok()) t_ = std::move(t).value();
  }
  std::vector<Bytes> Values() {
    std::vector<Bytes> out;
    for (auto h : Objects()) out.push_back(pkcs11::GetBytes(t_.session, h, CKA_VALUE).value());
    return out;
  }
  std::vector<ck_object_handle_t> Objects() { return pkcs11::FindAnchorObjects(t_.session).value(); }
  void DestroyAll() {
    for (auto h : Objects()) EXPECT_TRUE(pkcs11::DestroyObject(t_.session, h).ok());
  }
  void Add(Bytes value) {
    ck_object_class_t cls = CKO_DATA;
    std::string label(pkcs11::kAnchorLabel);
    std::string app(pkcs11::kAnchorApplication);
    ck_attribute tmpl[] = {
        pkcs11::Attr(CKA_CLASS, &cls, sizeof cls),
        pkcs11::BoolAttr(CKA_TOKEN, true),
        pkcs11::BoolAttr(CKA_PRIVATE, true),
        pkcs11::Attr(CKA_LABEL, label.data(), label.size()),
        pkcs11::Attr(CKA_APPLICATION, app.data(), app.size()),
        pkcs11::Attr(CKA_VALUE, value.data(), value.size()),
    };
    ck_object_handle_t h = 0;
    ASSERT_EQ(t_.session.fn().C_CreateObject(t_.session.handle(), tmpl, std::size(tmpl), &h), CKR_OK);
  }
  void Replace(Bytes value) {
    DestroyAll();
    Add(std::move(value));
  }

 private:
  pkcs11::OpenToken t_;
};

TEST(Anchor, FreshlyProvisionedAnchorIsEmpty) {
  TempDir dir("p11-anchor");
  SoftHsmToken token(dir.path());
  auto backend = OpenOrDie(token);
  ASSERT_NE(backend, nullptr);
  auto a = backend->ReadAnchor();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ExpectAnchor(*a, 0, Digest{}, 0);
  EXPECT_FALSE(backend->Info().hardware_counter);
  EXPECT_NE(backend->Info().anchor_location.find("sealkeep-anchor"), std::string::npos);
}

TEST(Anchor, AdvancedAnchorPersistsAcrossReopen) {
  TempDir dir("p11-anchor");
  SoftHsmToken token(dir.path());
  {
    auto backend = OpenOrDie(token);
    ASSERT_NE(backend, nullptr);
    auto first = backend->AdvanceAnchor(5, HashOf("entry 5"));
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    ExpectAnchor(*first, 5, HashOf("entry 5"), 1);
    auto second = backend->AdvanceAnchor(9, HashOf("entry 9"));
    ASSERT_TRUE(second.ok()) << second.status().ToString();
    ExpectAnchor(*second, 9, HashOf("entry 9"), 2);
    auto read = backend->ReadAnchor();
    ASSERT_TRUE(read.ok());
    ExpectAnchor(*read, 9, HashOf("entry 9"), 2);
  }
  // Closing the last backend finalized the module: the reopen reads from the token files.
  EXPECT_EQ(pkcs11::ModuleReferences(kSoftHsmModule), 0u);
  auto reopened = OpenOrDie(token);
  ASSERT_NE(reopened, nullptr);
  auto read = reopened->ReadAnchor();
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  ExpectAnchor(*read, 9, HashOf("entry 9"), 2);
  RawToken raw(token);
  EXPECT_EQ(raw.Objects().size(), 1u) << "an advance leaves exactly one anchor object";
}

TEST(Anchor, EveryAlteredByteOfTheAnchorIsRefused) {
  TempDir dir("p11-anchor");
  SoftHsmToken token(dir.path());
  auto backend = OpenOrDie(token);
  ASSERT_NE(backend, nullptr);
  ASSERT_TRUE(backend->AdvanceAnchor(3, HashOf("entry 3")).ok());
  RawToken raw(token);
  auto values = raw.Values();
  ASSERT_EQ(values.size(), 1u);
  const Bytes good = values.front();
  ASSERT_EQ(good.size(), 89u);
  for (std::size_t i = 0; i < good.size(); ++i) {
    Bytes bad = good;
    bad[i] = static_cast<std::uint8_t>(bad[i] ^ 0x01);
    raw.Replace(bad);
    auto r = backend->ReadAnchor();
    ASSERT_FALSE(r.ok()) << "byte " << i << " altered unnoticed";
    EXPECT_EQ(r.status().reason(), "anchor_invalid") << "byte " << i << ": " << r.status().ToString();
    EXPECT_FALSE(backend->AdvanceAnchor(4, HashOf("entry 4")).ok()) << "an advance needs a good anchor";
  }
  raw.Replace(good);
  auto r = backend->ReadAnchor();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectAnchor(*r, 3, HashOf("entry 3"), 1);
}

TEST(Anchor, AnchorCopiedFromAnotherTokenIsRefused) {
  TempDir dir("p11-anchor");
  SoftHsmToken alpha(dir.path(), "alpha");
  SoftHsmToken beta(dir.path(), "beta");
  RawToken raw_alpha(alpha);
  RawToken raw_beta(beta);
  raw_alpha.Replace(raw_beta.Values().front());
  auto backend = OpenOrDie(alpha);
  ASSERT_NE(backend, nullptr);
  auto r = backend->ReadAnchor();
  EXPECT_EQ(r.status().reason(), "anchor_invalid") << r.status().ToString();
  EXPECT_NE(r.status().message().find("keyset"), std::string_view::npos) << r.status().ToString();
}

// A crash between creating the new anchor object and destroying the old one leaves two.
TEST(Anchor, InterruptedAdvanceLeavesTheNewestAnchorInForce) {
  TempDir dir("p11-anchor");
  SoftHsmToken token(dir.path());
  auto backend = OpenOrDie(token);
  ASSERT_NE(backend, nullptr);
  ASSERT_TRUE(backend->AdvanceAnchor(1, HashOf("entry 1")).ok());
  RawToken raw(token);
  const Bytes older = raw.Values().front();
  ASSERT_TRUE(backend->AdvanceAnchor(2, HashOf("entry 2")).ok());
  raw.Add(older);  // as if the old object had not been destroyed yet
  ASSERT_EQ(raw.Objects().size(), 2u);
  auto r = backend->ReadAnchor();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectAnchor(*r, 2, HashOf("entry 2"), 2);
  auto next = backend->AdvanceAnchor(3, HashOf("entry 3"));
  ASSERT_TRUE(next.ok());
  ExpectAnchor(*next, 3, HashOf("entry 3"), 3);
  EXPECT_EQ(raw.Objects().size(), 1u) << "the next advance removes the leftover";
}

TEST(Anchor, MissingAnchorObjectIsAnchorMissing) {
  TempDir dir("p11-anchor");
  SoftHsmToken token(dir.path());
  {
    RawToken raw(token);
    raw.DestroyAll();
  }
  Status st = token.Open().status();
  EXPECT_EQ(st.reason(), "anchor_missing") << st.ToString();
}

// What the anchor does NOT protect against (docs/pkcs11.md): SoftHSM2 keeps its tokens
// as files, so whoever can replace the token folder with an old copy rolls the anchor
// back together with the store. This test pins that limit down.
TEST(Anchor, ReplacingTheTokenFolderWithAnOldCopyRollsTheAnchorBack) {
  TempDir dir("p11-anchor");
  SoftHsmToken token(dir.path());
  const std::string copy = dir.Join("tokens-copy");
  {
    auto backend = OpenOrDie(token);
    ASSERT_NE(backend, nullptr);
    ASSERT_TRUE(backend->AdvanceAnchor(1, HashOf("entry 1")).ok());
    backend.reset();
    std::filesystem::copy(token.tokens_dir(), copy, std::filesystem::copy_options::recursive);
    backend = OpenOrDie(token);
    ASSERT_TRUE(backend->AdvanceAnchor(2, HashOf("entry 2")).ok());
  }
  std::filesystem::remove_all(token.tokens_dir());
  std::filesystem::rename(copy, token.tokens_dir());
  auto backend = OpenOrDie(token);
  ASSERT_NE(backend, nullptr);
  auto r = backend->ReadAnchor();
  ASSERT_TRUE(r.ok());
  ExpectAnchor(*r, 1, HashOf("entry 1"), 1);
}

}  // namespace
}  // namespace sk::hsm
