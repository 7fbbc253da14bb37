// Unit tests where the logic is intricate: the journal and snapshot encodings, the
// start-up anchor decision, path rules, and the index's replay of entries.
#include <gtest/gtest.h>

#include "agent/journal/anchor_check.h"
#include "agent/journal/journal_format.h"
#include "agent/journal/sealer.h"
#include "agent/secrets/index.h"
#include "agent/secrets/path.h"
#include "agent/secrets/snapshot_format.h"
#include "crypto/random.h"

namespace sk {
namespace {

using journal::Entry;
using journal::Kind;

Entry SampleEntry() {
  Entry e;
  e.seq = 42;
  e.kind = Kind::kRollback;
  e.time_ms = 1'700'000'000'000;
  e.txn_id.fill(7);
  e.path = "db/password";
  e.version = 5;
  e.from_version = 2;
  e.key_generation = 3;
  e.expires_ms = 99;
  e.actor = "uid=0 pid=1";
  e.content_digest.fill(1);
  e.dek_commit.fill(2);
  e.prev_path_hash.fill(3);
  e.prev_hash.fill(4);
  e.detail.labels = "env=prod\nteam=db";
  e.detail.max_versions = 10;
  e.detail.note = "why";
  return e;
}

TEST(JournalFormat, EntryRoundTripsExactly) {
  Entry e = SampleEntry();
  auto bytes = journal::EncodeEntry(e);
  ASSERT_TRUE(bytes.ok());
  auto back = journal::DecodeEntry(*bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  auto again = journal::EncodeEntry(*back);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*bytes, *again);
  EXPECT_EQ(back->path, "db/password");
  EXPECT_EQ(back->detail.max_versions, 10u);
  EXPECT_EQ(back->kind, Kind::kRollback);
}

TEST(JournalFormat, EveryTruncationAndTrailingByteIsRefused) {
  auto bytes = journal::EncodeEntry(SampleEntry());
  ASSERT_TRUE(bytes.ok());
  for (std::size_t n = 0; n < bytes->size(); ++n) {
    EXPECT_FALSE(journal::DecodeEntry(ByteView(*bytes).first(n)).ok()) << "truncated at " << n;
  }
  Bytes longer = *bytes;
  longer.push_back(0);
  EXPECT_EQ(journal::DecodeEntry(longer).status().reason(), "malformed_entry");
}

TEST(JournalFormat, UnknownVersionKindAndTagsAreRefused) {
  auto bytes = journal::EncodeEntry(SampleEntry());
  ASSERT_TRUE(bytes.ok());
  Bytes v = *bytes;
  v[0] = 2;
  EXPECT_FALSE(journal::DecodeEntry(v).ok());
  Bytes k = *bytes;
  k[9] = 99;  // kind
  EXPECT_FALSE(journal::DecodeEntry(k).ok());
  Entry e = SampleEntry();
  e.path = std::string(257, 'a');
  EXPECT_EQ(journal::EncodeEntry(e).status().reason(), "path_too_long");
}

TEST(JournalFormat, SealCoversEveryByte) {
  SecretBytes jk = std::move(RandomSecret(32).value());
  journal::Sealer sealer(jk);
  auto bytes = journal::EncodeEntry(SampleEntry());
  ASSERT_TRUE(bytes.ok());
  Digest seal = sealer.SealEntry(*bytes);
  EXPECT_TRUE(sealer.EntrySealMatches(*bytes, seal));
  for (std::size_t i = 0; i < bytes->size(); ++i) {
    Bytes bad = *bytes;
    bad[i] ^= 0x80;
    EXPECT_FALSE(sealer.EntrySealMatches(bad, seal)) << "byte " << i;
  }
  SecretBytes other = std::move(RandomSecret(32).value());
  EXPECT_FALSE(journal::Sealer(other).EntrySealMatches(*bytes, seal));
}

TEST(JournalFormat, SealedHeadRefusesAnyChange) {
  SecretBytes jk = std::move(RandomSecret(32).value());
  journal::Sealer sealer(jk);
  journal::Head h;
  h.head_seq = 9;
  h.head_hash.fill(9);
  h.anchor_seq = 8;
  h.anchor_hash.fill(8);
  Bytes rec = sealer.SealHead(h);
  ASSERT_EQ(rec.size(), journal::kHeadRecordSize);
  auto back = sealer.OpenHead(rec);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->anchor_seq, 8u);
  for (std::size_t i = 0; i < rec.size(); ++i) {
    Bytes bad = rec;
    bad[i] ^= 1;
    EXPECT_FALSE(sealer.OpenHead(bad).ok()) << "byte " << i;
  }
}

// The anchor decision, case by case.
struct AnchorCase {
  const char* name;
  std::uint64_t anchor_seq, head_seq, head_anchor_seq;
  bool anchor_hash_matches_head, store_has_anchored_entry, head_based_on_anchor;
  journal::AnchorVerdict expect;
};

Digest D(std::uint8_t b) {
  Digest d{};
  d.fill(b);
  return d;
}

TEST(AnchorDecision, EachCaseGivesItsVerdict) {
  using V = journal::AnchorVerdict;
  const AnchorCase cases[] = {
      {"fresh store, fresh token", 0, 1, 0, false, true, true, V::kRollForward},
      {"in sync", 10, 10, 9, true, true, true, V::kInSync},
      {"crash between store sync and anchor update", 10, 11, 10, false, true, true, V::kRollForward},
      {"epoch not yet anchored: far ahead, based on the anchor", 10, 500, 10, false, true, true,
       V::kRollForward},
      {"older copy of the store", 20, 11, 10, false, false, false, V::kReplay},
      {"different history at the anchored seq", 10, 15, 10, false, false, true, V::kReplay},
      {"hardware anchor rolled back", 10, 15, 12, false, true, false, V::kReplay},
      {"same seq, different hash", 10, 10, 9, false, false, false, V::kReplay},
  };
  for (const AnchorCase& c : cases) {
    SCOPED_TRACE(c.name);
    hsm::Anchor a;
    a.seq = c.anchor_seq;
    a.head_hash = c.anchor_seq == 0 ? Digest{} : D(0xA0);
    journal::Head h;
    h.head_seq = c.head_seq;
    h.head_hash = c.anchor_hash_matches_head ? a.head_hash : D(0xB0);
    h.anchor_seq = c.head_based_on_anchor ? a.seq : c.head_anchor_seq;
    h.anchor_hash = c.head_based_on_anchor ? a.head_hash : D(0xC0);
    std::optional<Digest> at;
    if (c.store_has_anchored_entry)
      at = a.head_hash;
    else if (c.anchor_seq <= c.head_seq)
      at = D(0xD0);
    auto d = journal::DecideAnchor(a, h, at);
    EXPECT_EQ(d.verdict, c.expect) << d.explanation;
    EXPECT_FALSE(d.explanation.empty());
  }
}

TEST(Paths, OnlyWellFormedPathsAndNamesPass) {
  for (const std::string& ok :
       {std::string("a"), std::string("db/password"), std::string("app-1/x_y/z.v2"), std::string(256, 'a')}) {
    EXPECT_TRUE(secrets::ValidatePath(ok).ok()) << ok;
  }
  for (std::string bad : {std::string(""), std::string("/a"), std::string("a/"), std::string("a//b"),
                          std::string("a/../b"), std::string("./a"), std::string("a b"),
                          std::string(257, 'a'), std::string("a\0b", 3), std::string("a/\xc3\xa9")}) {
    EXPECT_EQ(secrets::ValidatePath(bad).reason(), "bad_path") << bad;
  }
  EXPECT_TRUE(secrets::ValidatePrefix("").ok());
  EXPECT_TRUE(secrets::ValidatePrefix("db/").ok());
  EXPECT_FALSE(secrets::ValidatePrefix("db//").ok());
  EXPECT_TRUE(secrets::ValidateSnapshotName("release-2026.11").ok());
  EXPECT_FALSE(secrets::ValidateSnapshotName("a/b").ok());
  EXPECT_FALSE(secrets::ValidateSnapshotName("..").ok());
}

TEST(SnapshotFormat, RoundTripsAndRefusesDisorder) {
  secrets::SnapshotBody b;
  b.name = "rel-1";
  b.prefix = "app/";
  b.created_ms = 5;
  b.versions = {{"app/a", 3}, {"app/b", 1}};
  auto enc = secrets::EncodeSnapshot(b);
  ASSERT_TRUE(enc.ok());
  auto dec = secrets::DecodeSnapshot(*enc);
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ(dec->versions, b.versions);
  for (std::size_t n = 0; n < enc->size(); ++n)
    EXPECT_FALSE(secrets::DecodeSnapshot(ByteView(*enc).first(n)).ok());
}

TEST(Index, ReplayTracksStatesFloorsAndPathChainBreaks) {
  secrets::Index idx;
  auto make = [](std::uint64_t seq, Kind k, std::uint64_t v, Digest prev_path) {
    Entry e;
    e.seq = seq;
    e.kind = k;
    e.path = "p";
    e.version = v;
    e.prev_path_hash = prev_path;
    return e;
  };
  idx.Replay(make(1, Kind::kPut, 1, Digest{}), D(1), true);
  idx.Replay(make(2, Kind::kPut, 2, D(1)), D(2), true);
  idx.Replay(make(3, Kind::kDelete, 2, D(2)), D(3), true);
  Entry floor = make(4, Kind::kFloor, 0, D(3));
  floor.from_version = 2;
  idx.Replay(floor, D(4), true);
  const secrets::PathState* s = idx.Find("p");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->fields.head, 2u);
  EXPECT_EQ(s->fields.floor, 2u);
  EXPECT_EQ(s->versions[1].state, secrets::VersionState::kDeleted);
  EXPECT_EQ(s->fields.chain_ok_from, 0u);
  // An entry whose prev_path_hash does not name the path's last entry cuts the chain.
  idx.Replay(make(5, Kind::kUndelete, 2, D(77)), D(5), true);
  EXPECT_EQ(idx.Find("p")->fields.chain_ok_from, 5u);
  // A bad seal marks the version it touches.
  idx.Replay(make(6, Kind::kDestroy, 1, D(5)), D(6), false);
  EXPECT_TRUE(idx.Find("p")->versions[0].seal_invalid);
  EXPECT_EQ(idx.bad_seals, 1u);
}

}  // namespace
}  // namespace sk
