// The fleet journal's entries (docs/fleet.md): stored in PostgreSQL, each signed by the
// fleet signing key and hash-chained, holding only ciphertext, public keys and signatures.
//
// ENTRY, format version 1. Big-endian integers; var16 / var32 = u16 / u32 length, then bytes.
//   field       size    notes
//   magic       4       "SKFE"
//   version     u8      0x01
//   seq         u64     1, 2, 3, ... no gaps
//   prev_hash   32      the hash of entry seq - 1; zero for seq 1
//   time_ms     u64     Unix time in milliseconds when it was signed
//   signer_id   8       the first 8 bytes of SHA-256("sealkeep fleet signer id v1" 0x00 || its
//                       public key): which fleet key signed it
//   kind        u8      1 host, 2 txn (values are permanent)
//   body        var32   by kind, below; at most kMaxBodyBytes
//   signature   64      ECDSA P-256 / SHA-256 (crypto/ecdsa.h, r || s) over
//                       "sealkeep fleet entry v1" 0x00 || every byte above
// No trailing bytes. HASH = SHA-256("sealkeep fleet entry hash v1" 0x00 || every byte of the
// entry but the signature): prev_hash holds it, so nobody without the signing key can extend,
// reorder or splice the chain, and two entries with one seq are a fork anyone can see. The
// signature is left out because ECDSA's is malleable: (r, n - s) verifies as well as (r, s),
// and such a twin must be the same entry, not another history.
//
// HOST body: admits a host into groups, changes its groups, or removes it.
//   host_id     var16   1-64 bytes of [a-z0-9._-]
//   state       u8      1 admitted, 2 removed
//   key_kind    u8      where its private key lives: 1 tpm, 2 pkcs11, 3 software (sealed by
//                       the host's master key; said so in `fleet status`)
//   public_key  65      its P-256 ECDH public key, uncompressed
//   groups      u16 n (<= 64), then n var16 names of 1-64 bytes of [a-z0-9._-], ascending,
//               no repeats
//
// TXN body: one fleet transaction, which every entitled host applies all or nothing.
//   count       u16     1..kMaxOps
//   count ops, paths ascending, no repeats:
//     path        var16   a sealkeep path (agent/secrets/path.h)
//     kind        u8      1 put, 2 delete
//     version     u64     the path's fleet version: one more than its last, from 1
//     groups      as in HOST, at least one: the hosts of these groups may read it
//     dek_commit  32      put: HMAC-SHA256(DEK, "sealkeep dek commit v1"); delete: zero
//     value       var32   put: crypto/aead.h's blob of the value under the DEK, AAD =
//                         "sealkeep fleet value v1" 0x00 || path || 0x00 || version (u64);
//                         at most kMaxValueBytes. delete: empty
//
// WRAP, stored beside its entry (one per put op and entitled host), not in it: the DEK
// wrapped to the host's public key by crypto/recovery_wrap.h's ECIES with AAD =
// "sealkeep fleet wrap v1" 0x00 || host_id || 0x00 || path || 0x00 || version (u64).
// Wraps are not signed: a substituted wrap opens (if at all) to another key, whose
// commitment differs from the signed dek_commit, and the host refuses it.
//
// SNAPSHOT (sealkeep fleet snapshot; kept in sk_fleet_snapshots, not in the chain): which
// version of each live path under a prefix the chain held at one head, signed by the fleet
// key so that a restore puts back exactly those versions.
//   magic "SKFS" | u8 0x01 | name var16 (a snapshot name) | prefix var16 ("" or a path) |
//   head_seq u64 | time_ms u64 | count u32 (<= kMaxSnapshotPaths) | count x (path var16,
//   version u64, seq u64: the entry that wrote that version), paths ascending, no repeats
// signature: ECDSA P-256 over "sealkeep fleet snapshot v1" 0x00 || the body. Errors:
// malformed_fleet_snapshot (kCorruption); bad_signature.
//
// Errors: malformed_fleet_entry (kCorruption) for bytes that do not parse as above,
// bad_signature (kCorruption) for a signature that does not verify.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/bytes.h"
#include "crypto/mac.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk::fleet {

inline constexpr std::uint8_t kEntryFormatVersion = 0x01;
inline constexpr std::size_t kSignerIdSize = 8;
inline constexpr std::size_t kPublicKeySize = 65;
inline constexpr std::size_t kMaxBodyBytes = 4u << 20;
inline constexpr std::size_t kMaxValueBytes = 1u << 20;
// 999: a host applies an entry and its anchor as one local transaction, which holds at most 1000 ops.
inline constexpr std::size_t kMaxOps = 999;
inline constexpr std::size_t kMaxGroups = 64;
inline constexpr std::size_t kMaxNameBytes = 64;
// The longest encoded entry: the fields before the body, its length, the body, the signature.
inline constexpr std::size_t kMaxEntryBytes = 4 + 1 + 8 + 32 + 8 + kSignerIdSize + 1 + 4 + kMaxBodyBytes + 64;

enum class EntryKind : std::uint8_t { kHost = 1, kTxn = 2 };
enum class HostState : std::uint8_t { kAdmitted = 1, kRemoved = 2 };
enum class KeyKind : std::uint8_t { kTpm = 1, kPkcs11 = 2, kSoftware = 3 };
enum class OpKind : std::uint8_t { kPut = 1, kDelete = 2 };

using SignerId = std::array<std::uint8_t, kSignerIdSize>;

struct Entry {
  std::uint64_t seq = 0;
  Digest prev_hash{};
  std::uint64_t time_ms = 0;
  SignerId signer_id{};
  EntryKind kind = EntryKind::kTxn;
  Bytes body;
  Bytes signature;  // 64 bytes once signed
};

struct HostRecord {
  std::string host_id;
  HostState state = HostState::kAdmitted;
  KeyKind key_kind = KeyKind::kSoftware;
  Bytes public_key;                 // 65 bytes
  std::vector<std::string> groups;  // ascending, unique
};

struct TxnOp {
  std::string path;
  OpKind kind = OpKind::kPut;
  std::uint64_t version = 0;
  std::vector<std::string> groups;
  Digest dek_commit{};
  Bytes value;  // the AEAD blob (put), empty (delete)
};

SignerId SignerIdOf(ByteView signer_public_key);
std::string_view KeyKindName(KeyKind kind);

// Host ids and group names: 1-64 bytes of [a-z0-9._-]. reason bad_name (kInvalidArgument).
Status ValidateName(std::string_view what, std::string_view name);

[[nodiscard]] Result<Bytes> EncodeHost(const HostRecord& host);
[[nodiscard]] Result<HostRecord> DecodeHost(ByteView body);
[[nodiscard]] Result<Bytes> EncodeTxn(const std::vector<TxnOp>& ops);
[[nodiscard]] Result<std::vector<TxnOp>> DecodeTxn(ByteView body);

// Signs `entry` (filling signature) and returns its encoding.
[[nodiscard]] Result<Bytes> SignEntry(Entry& entry, const SecretBytes& signing_key);
// Parses an encoded entry; checks structure only (VerifyEntry checks the signature).
[[nodiscard]] Result<Entry> DecodeEntry(ByteView encoded);
[[nodiscard]] Status VerifyEntry(const Entry& entry, ByteView signer_public_key);
Digest EntryHash(ByteView encoded);

inline constexpr std::size_t kMaxSnapshotPaths = 100'000;
struct SnapshotPath {
  std::string path;
  std::uint64_t version = 0;
  std::uint64_t seq = 0;
};
struct FleetSnapshot {
  std::string name;
  std::string prefix;
  std::uint64_t head_seq = 0;
  std::uint64_t time_ms = 0;
  std::vector<SnapshotPath> paths;  // ascending
};
[[nodiscard]] Result<Bytes> EncodeSnapshot(const FleetSnapshot& snapshot);
[[nodiscard]] Result<FleetSnapshot> DecodeSnapshot(ByteView body);
[[nodiscard]] Result<Bytes> SignSnapshot(ByteView body, const SecretBytes& signing_key);
[[nodiscard]] Status VerifySnapshot(ByteView body, ByteView signature, ByteView signer_public_key);

// The AADs of a value and of a wrap (above).
Bytes ValueAad(std::string_view path, std::uint64_t version);
Bytes WrapAad(std::string_view host_id, std::string_view path, std::uint64_t version);

}  // namespace sk::fleet
