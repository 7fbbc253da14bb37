// The sealed version journal: entry and head encodings (docs/design.md).
//
// ENTRY, format version 1. Big-endian integers; var16 = u16 length then bytes.
//   field            size    notes
//   version          u8      0x01
//   seq              u64     global sequence number: 1 (the genesis entry), 2, 3, ... no gaps
//   kind             u8      see Kind; values are permanent
//   time_ms          u64     Unix time in milliseconds when committed
//   txn_id           16      random per transaction; every entry of one transaction shares it
//   path             var16   secret path (<= 256 bytes); empty for store-wide kinds
//   version          u64     the path's version written or affected; 0 if none
//   from_version     u64     rollback/restore: source version; floor: the new floor;
//                            rotate: previous generation; recover: the anchored seq given up;
//                            stage, promote, abort: the head when the entry was written
//   key_generation   u32     master-key generation wrapping the version's data key;
//                            rotate: the new generation
//   expires_ms       u64     expiry of the version written (0: never)
//   actor            var16   who asked (peer identity text, <= 512 bytes)
//   content_digest   32      SHA-256 of the stored ciphertext (put/rollback/restore/stage) or
//                            of the snapshot body (snapshot); zero otherwise (promote and
//                            abort name the stage entry's version, whose digest stays there)
//   dek_commit       32      HMAC-SHA256(DEK, "sealkeep dek commit v1"): binds the version
//                            to its data key across re-wraps; zero when no version is written
//   prev_path_hash   32      hash of the previous entry of the same path (zero: first)
//   prev_hash        32      hash of the previous entry (zero for seq 1)
//   detail           var16   TLV list (<= 4096 bytes): tag u8, var16 value, tags ascending,
//                            each at most once. Tags (permanent): 1 labels ("k=v" lines
//                            sorted, '\n'-joined), 2 max_versions (u32), 3 snapshot name,
//                            4 note (free text: why, e.g. "pruned"), 5 store id (16 bytes)
// No trailing bytes. Total size is at most 5,060 bytes (kMaxEntryBytes: 34 fixed before the
// path, 258 path, 28 of numbers, 514 actor, 128 of digests and hashes, 4,098 detail).
//
// SEAL and HASH: seal = HMAC-SHA256(JK, "sealkeep journal entry v1" || 0x00 || entry).
// The seal is the entry's hash: prev_hash and prev_path_hash hold seals, so both chains
// are MAC chains that nobody without JK can extend, reorder or splice.
//
// HEAD, format version 1 (stored in meta "head", written in every commit):
//   version u8 0x01 | head_seq u64 | head_hash 32 | anchor_seq u64 | anchor_hash 32
//   | seal 32 = HMAC-SHA256(JK, "sealkeep journal head v1" || 0x00 || the 81 bytes before)
// anchor_* is the hardware anchor as it stood when this head was committed: at start the
// store may be ahead of the anchor only when its head names the anchor as its base.
//
// Worked example: docs/journal.md.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "crypto/bytes.h"
#include "crypto/mac.h"
#include "crypto/status.h"

namespace sk::journal {

inline constexpr std::uint8_t kEntryFormatVersion = 0x01;
inline constexpr std::uint8_t kHeadFormatVersion = 0x01;
inline constexpr std::size_t kMaxPathBytes = 256;
inline constexpr std::size_t kMaxActorBytes = 512;
inline constexpr std::size_t kMaxDetailBytes = 4096;
inline constexpr std::size_t kTxnIdSize = 16;
inline constexpr std::size_t kHeadBodySize = 1 + 8 + 32 + 8 + 32;
inline constexpr std::size_t kHeadRecordSize = kHeadBodySize + 32;

enum class Kind : std::uint8_t {
  kInit = 1,          // genesis: store id in detail
  kPut = 2,           // new version
  kDelete = 3,        // soft delete of a version
  kUndelete = 4,      // undo a soft delete
  kDestroy = 5,       // data key and ciphertext erased; note "pruned" when by max_versions
  kRollback = 6,      // new version holding from_version's value
  kRestore = 7,       // like rollback, from a snapshot (name in detail)
  kFloor = 8,         // rollback floor raised to from_version
  kSnapshot = 9,      // sealed snapshot created (name in detail)
  kRotate = 10,       // master key rotated; everything re-wrapped under key_generation
  kRecover = 11,      // an admin accepted a store older than the hardware anchor
  kReseal = 12,       // the TPM seal was renewed for a new boot state (PCRs in note)
  kStage = 13,        // rotation begun: a pending version, not the head (note: who rotates, how)
  kPromote = 14,      // rotation finished: the pending `version` is the head; from_version the old
                      // head; labels repeat the pending version's
  kAbort = 15,        // rotation aborted: the pending `version` is erased (note: the reason)
  kLease = 16,        // a leased database user's new state (no path; note: the record, never
                      // a password; expires_ms: the lease's end). secrets/lease_record.h
  kRecoveryKey = 17,  // a recovery key was set (no path; note "recovery v1 key_id=.. threshold=..
                      // shares=.. public=<hex>": the public half, never a share). docs/recovery.md
  kRestored = 18,     // the store was restored from a backup (no path; note names the backup's
                      // store id and head, and whether onto new hardware). docs/recovery.md
};
inline constexpr std::uint8_t kMaxKind = 18;  // the newest kind; raise it with the enum

inline constexpr std::size_t kMaxEntryBytes = 1 + 8 + 1 + 8 + kTxnIdSize + (2 + kMaxPathBytes) + 8 + 8 + 4 +
                                              8 + (2 + kMaxActorBytes) + 4 * 32 + (2 + kMaxDetailBytes);
static_assert(kMaxEntryBytes == 5060);

std::string_view KindName(Kind kind);
bool IsKnownKind(std::uint8_t kind);
// Kinds that write a new version of a path as its head.
inline bool WritesVersion(Kind k) { return k == Kind::kPut || k == Kind::kRollback || k == Kind::kRestore; }
// Kinds that write a version's bytes (its content digest and data-key commitment): the
// above, and a rotation's pending version, which becomes the head only by a kPromote.
inline bool CreatesVersion(Kind k) { return WritesVersion(k) || k == Kind::kStage; }

using TxnId = std::array<std::uint8_t, kTxnIdSize>;

struct Detail {
  std::string labels;                         // tag 1
  std::optional<std::uint32_t> max_versions;  // tag 2
  std::string snapshot;                       // tag 3
  std::string note;                           // tag 4
  Bytes store_id;                             // tag 5
};

struct Entry {
  std::uint64_t seq = 0;
  Kind kind = Kind::kPut;
  std::uint64_t time_ms = 0;
  TxnId txn_id{};
  std::string path;
  std::uint64_t version = 0;
  std::uint64_t from_version = 0;
  std::uint32_t key_generation = 0;
  std::uint64_t expires_ms = 0;
  std::string actor;
  Digest content_digest{};
  Digest dek_commit{};
  Digest prev_path_hash{};
  Digest prev_hash{};
  Detail detail;
};

// Encodes; fails (invalid_argument) when a field exceeds its cap.
Result<Bytes> EncodeEntry(const Entry& entry);
// Decodes strictly: version, caps, known kind, TLV order, no trailing bytes.
// reason "malformed_entry" (kCorruption) on any violation.
Result<Entry> DecodeEntry(ByteView bytes);

struct Head {
  std::uint64_t head_seq = 0;
  Digest head_hash{};
  std::uint64_t anchor_seq = 0;
  Digest anchor_hash{};
};

Bytes EncodeHeadBody(const Head& head);  // the 81 sealed bytes
// Splits a stored head record into head and seal; malformed_head on a bad size/version.
Result<std::pair<Head, Digest>> DecodeHeadRecord(ByteView record);

inline constexpr std::string_view kEntrySealDomain = "sealkeep journal entry v1";
inline constexpr std::string_view kHeadSealDomain = "sealkeep journal head v1";
inline constexpr std::string_view kDekCommitDomain = "sealkeep dek commit v1";

}  // namespace sk::journal
