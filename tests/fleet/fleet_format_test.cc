// The fleet entry format (agent/fleet/fleet_format.h) and the chain over it, without a
// database: every truncation and every flipped byte is refused, and so is an entry that
// does not extend the chain or does not follow its paths' versions.
#include <gtest/gtest.h>

#include "agent/fleet/fleet_chain.h"
#include "crypto/recovery_wrap.h"
#include "tests/fleet/must.h"

namespace sk::fleet {
namespace {

struct Keys {
  RecoveryKeyPair signer = Must(GenerateRecoveryKey());
  RecoveryKeyPair host = Must(GenerateRecoveryKey());
};

Bytes Signed(Entry e, const Keys& k) {
  e.signer_id = SignerIdOf(k.signer.public_key);
  Result<Bytes> out = SignEntry(e, k.signer.private_key);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out.ok() ? *out : Bytes{};
}

Bytes HostEntry(const Keys& k, std::uint64_t seq, const Digest& prev) {
  HostRecord h{"web-1", HostState::kAdmitted, KeyKind::kTpm, k.host.public_key, {"db", "web"}};
  Entry e;
  e.seq = seq;
  e.prev_hash = prev;
  e.time_ms = 1'700'000'000'000;
  e.kind = EntryKind::kHost;
  e.body = *EncodeHost(h);
  return Signed(std::move(e), k);
}

Bytes TxnEntry(const Keys& k, std::uint64_t seq, const Digest& prev, std::uint64_t version) {
  TxnOp op;
  op.path = "apps/web/db";
  op.version = version;
  op.groups = {"web"};
  op.value = Bytes(40, 0xAB);
  Entry e;
  e.seq = seq;
  e.prev_hash = prev;
  e.kind = EntryKind::kTxn;
  e.body = *EncodeTxn({op});
  return Signed(std::move(e), k);
}

TEST(FleetFormat, AnEntryRoundTripsAndVerifiesUnderItsKeyOnly) {
  Keys k;
  Bytes bytes = HostEntry(k, 1, Digest{});
  Result<Entry> e = DecodeEntry(bytes);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->seq, 1U);
  EXPECT_EQ(e->kind, EntryKind::kHost);
  EXPECT_TRUE(VerifyEntry(*e, k.signer.public_key).ok());
  Result<HostRecord> h = DecodeHost(e->body);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->host_id, "web-1");
  EXPECT_EQ(h->groups, (std::vector<std::string>{"db", "web"}));
  EXPECT_EQ(h->public_key, k.host.public_key);
  Keys other;
  EXPECT_EQ(VerifyEntry(*e, other.signer.public_key).reason(), "bad_signature");
}

TEST(FleetFormat, EveryTruncationIsRefused) {
  Keys k;
  const Bytes bytes = TxnEntry(k, 1, Digest{}, 1);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    Result<Entry> e = DecodeEntry(ByteView(bytes).first(n));
    ASSERT_FALSE(e.ok()) << n;
    EXPECT_EQ(e.status().reason(), "malformed_fleet_entry") << n;
  }
  Bytes longer = bytes;
  longer.push_back(0);
  EXPECT_EQ(DecodeEntry(longer).status().reason(), "malformed_fleet_entry");
}

TEST(FleetFormat, EveryFlippedByteIsRefusedByTheChain) {
  Keys k;
  const Bytes bytes = TxnEntry(k, 1, Digest{}, 1);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    Bytes bad = bytes;
    bad[i] ^= 0x01;
    FleetChain chain(k.signer.public_key);
    Result<Entry> e = chain.Accept(bad);
    ASSERT_FALSE(e.ok()) << "byte " << i;
    EXPECT_TRUE(e.status().reason() == "malformed_fleet_entry" || e.status().reason() == "bad_signature" ||
                e.status().reason() == "fleet_chain_broken")
        << i << ": " << e.status().ToString();
    EXPECT_EQ(chain.head().seq, 0U);
  }
}

TEST(FleetFormat, TheChainTakesOnlyTheNextEntryWithTheNextVersions) {
  Keys k;
  FleetChain chain(k.signer.public_key);
  const Bytes first = HostEntry(k, 1, Digest{});
  ASSERT_TRUE(chain.Accept(first).ok());
  const Digest h1 = EntryHash(first);
  EXPECT_EQ(chain.head().hash, h1);
  EXPECT_EQ(chain.Accept(first).status().reason(), "fleet_chain_broken");                        // a repeat
  EXPECT_EQ(chain.Accept(TxnEntry(k, 3, h1, 1)).status().reason(), "fleet_chain_broken");        // a gap
  EXPECT_EQ(chain.Accept(TxnEntry(k, 2, Digest{}, 1)).status().reason(), "fleet_chain_broken");  // a fork
  EXPECT_EQ(chain.Accept(TxnEntry(k, 2, h1, 2)).status().reason(), "fleet_chain_broken");  // skips version 1
  ASSERT_EQ(chain.head().seq, 1U);
  const Bytes second = TxnEntry(k, 2, h1, 1);
  ASSERT_TRUE(chain.Accept(second).ok());
  EXPECT_EQ(chain.LastVersion("apps/web/db"), 1U);
  EXPECT_EQ(chain.Accept(TxnEntry(k, 3, EntryHash(second), 1)).status().reason(), "fleet_chain_broken");
  ASSERT_EQ(chain.Entitled({"web"}).size(), 1U);
  EXPECT_TRUE(chain.Entitled({"ops"}).empty());
}

TEST(FleetFormat, NamesAndOpsOutsideTheFormatAreRefusedBeforeSigning) {
  Keys k;
  EXPECT_EQ(ValidateName("host", "Web").reason(), "bad_name");
  EXPECT_EQ(ValidateName("host", "").reason(), "bad_name");
  EXPECT_EQ(ValidateName("host", std::string(65, 'a')).reason(), "bad_name");
  EXPECT_TRUE(ValidateName("host", "web-1.eu_2").ok());
  HostRecord h{"web-1", HostState::kAdmitted, KeyKind::kTpm, k.host.public_key, {"web", "db"}};
  EXPECT_EQ(EncodeHost(h).status().reason(), "bad_name");  // groups not ascending
  TxnOp a;
  a.path = "apps/b";
  a.version = 1;
  a.groups = {"web"};
  TxnOp b = a;
  b.path = "apps/a";
  EXPECT_EQ(EncodeTxn({a, b}).status().reason(), "bad_txn");
  EXPECT_EQ(EncodeTxn({}).status().reason(), "bad_txn");
  a.path = "../etc";
  EXPECT_FALSE(EncodeTxn({a}).ok());
}

// docs/fleet.md's worked example, byte for byte: signer scalar 1, time 0, RFC 6979 nonces.
TEST(FleetFormat, TheWorkedExampleOfTheDocsIsWhatTheCodeWrites) {
  SecretBytes one(32);
  one.Expose()[31] = 1;
  const Bytes signer = Must(RecoveryPublicKey(one));
  TxnOp op;
  op.path = "apps/web/db";
  op.version = 1;
  op.groups = {"web"};
  op.value = Bytes(30, 0xAB);
  Entry e;
  e.seq = 1;
  e.kind = EntryKind::kTxn;
  e.body = Must(EncodeTxn({op}));
  e.signer_id = SignerIdOf(signer);
  const Bytes bytes = Must(SignEntry(e, one));
  ASSERT_EQ(bytes.size(), 227U);
  EXPECT_EQ(HexEncode(e.signer_id), "7452ff1bae607d9b");
  EXPECT_EQ(HexEncode(e.signature),
            "a9cee0aded3ea6461d7027b03256c49c9461e82f287fe6884b54e64986220748"
            "eca64bd1f03a515630a86f5f75dac373dd7a5455f9f3c7fac3911519f180ca58");
  EXPECT_EQ(HexEncode(EntryHash(bytes)), "7d11b785ee9ba370b0c8b4bdf0e4f8eddaa80f8f654f18ec81e56062faa71a32");
  FleetChain chain(signer);
  EXPECT_TRUE(chain.Accept(bytes).ok());
}

// ECDSA signatures are malleable: (r, n - s) verifies as well as (r, s). Someone with the
// database but not the key can swap one for the other; that must be the same entry (same
// hash), not another history that hosts which applied the first would refuse.
TEST(FleetFormat, ATwinSignatureIsTheSameEntryNotAFork) {
  Keys k;
  const Bytes bytes = HostEntry(k, 1, Digest{});
  // n - s, with n the order of P-256.
  const Bytes n = *HexDecode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
  Bytes twin = bytes;
  const std::size_t s_at = twin.size() - 32;
  int borrow = 0;
  for (int i = 31; i >= 0; --i) {
    const auto at = static_cast<std::size_t>(i);
    int d = n[at] - bytes[s_at + at] - borrow;
    borrow = d < 0 ? 1 : 0;
    twin[s_at + at] = static_cast<std::uint8_t>(d + (borrow ? 256 : 0));
  }
  ASSERT_NE(twin, bytes);
  FleetChain a(k.signer.public_key);
  FleetChain b(k.signer.public_key);
  ASSERT_TRUE(a.Accept(bytes).ok());
  Result<Entry> e = b.Accept(twin);
  ASSERT_TRUE(e.ok()) << "mbedTLS accepts high-S signatures; if this changes, so may this test: "
                      << e.status().ToString();
  EXPECT_EQ(a.head().hash, b.head().hash);
  EXPECT_EQ(EntryHash(bytes), EntryHash(twin));
}

TEST(FleetFormat, AHostRecordWithAnUnknownStateOrKeyKindIsNotEncoded) {
  Keys k;
  HostRecord h{"web-1", HostState::kAdmitted, static_cast<KeyKind>(7), k.host.public_key, {"web"}};
  EXPECT_EQ(EncodeHost(h).status().reason(), "bad_host_record");
  h.key_kind = KeyKind::kTpm;
  h.state = static_cast<HostState>(0);
  EXPECT_EQ(EncodeHost(h).status().reason(), "bad_host_record");
}

TEST(FleetFormat, ASnapshotRoundTripsVerifiesAndRefusesEveryTruncation) {
  RecoveryKeyPair key = Must(GenerateRecoveryKey());
  FleetSnapshot snap{
      "rel-1", "apps", 9, 1700000000000, {{"apps/db/password", 3, 7}, {"apps/web/token", 2, 9}}};
  Bytes body = Must(EncodeSnapshot(snap));
  Bytes sig = Must(SignSnapshot(body, key.private_key));
  EXPECT_TRUE(VerifySnapshot(body, sig, key.public_key).ok());
  FleetSnapshot back = Must(DecodeSnapshot(body));
  EXPECT_EQ(back.name, "rel-1");
  EXPECT_EQ(back.paths.size(), 2U);
  EXPECT_EQ(back.paths[1].seq, 9U);
  for (std::size_t n = 0; n < body.size(); ++n) {
    EXPECT_FALSE(DecodeSnapshot(ByteView(body).first(n)).ok()) << n;
  }
  Bytes flipped = body;
  flipped.back() ^= 1;
  EXPECT_EQ(VerifySnapshot(flipped, sig, key.public_key).reason(), "bad_signature");
  // A path written after the snapshot's head, or out of order, is not a snapshot.
  snap.paths[1].seq = 10;
  EXPECT_EQ(DecodeSnapshot(Must(EncodeSnapshot(snap))).status().reason(), "malformed_fleet_snapshot");
  snap.paths[1].seq = 9;
  std::swap(snap.paths[0], snap.paths[1]);
  EXPECT_EQ(DecodeSnapshot(Must(EncodeSnapshot(snap))).status().reason(), "malformed_fleet_snapshot");
}

}  // namespace
}  // namespace sk::fleet
