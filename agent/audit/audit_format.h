// The sealkeep audit log, format version 1. This comment is the whole specification;
// docs/audit.md has a worked example. Field names and their order are permanent.
//
// FOLDER. An audit folder holds
//   audit-00000001.log, audit-00000002.log, ...  segment files, numbered from 1, no gaps
//                                                (8 digits, zero-padded; more past 99999999)
//   checkpoint                                   the sealed head (below)
//   *.tmp                                        an interrupted create; removed at open
//
// LINES. A segment is text: lines ending in '\n', each one JSON object, at most 64 KiB.
// Line 1 is the segment header; every further line is one record. Every line is
//     BODY ',"mac":"' HEX64 '"}' '\n'
// BODY is the line up to (not including) the ',"mac":"' that starts the last 74 bytes
// before '\n'; HEX64 is the MAC in lower-case hex.
//
// CHAIN. Every line's MAC links it to the line before it, across segment boundaries:
//     mac = HMAC-SHA256(AK, "sealkeep audit v1 chain" 0x00 || prev || BODY)
// prev is the 32-byte mac of the previous line of the log (the last line of the previous
// segment for a header), 32 zero bytes for the header of segment 1. The MAC covers BODY
// exactly as stored: the verifier never re-serialises JSON, so no two JSON encoders can
// disagree about what was sealed and no canonical form is needed. (A length-prefixed
// binary encoding would also be unambiguous, but the verifier would have to re-encode
// parsed JSON to check it, which is where such schemes break.) The writer's encoding is
// fixed (below), so tests can rebuild a line from a record, but verification never does.
//
// HEADER body, keys in this order:
//   {"sealkeep_audit":1,"segment":N,"first_seq":S,"prev_mac":"<hex of prev>","time":"T"
// N = the number in the file name; S = the seq of this segment's first record.
// RECORD body, keys in this order:
//   {"seq":S,"time":"T","request_id":"..","uid":U,"gid":G,"pid":P,"unit":"..","exe":"..",
//    "route":"..","path":"..","outcome":"allowed|denied|failed|event","reason":".."
// seq is 1 for the log's first record and grows by exactly 1 per record, across segments.
// Numbers are decimal, no sign, no leading zeros (u64 seq, u32 uid/gid, pid 0..2^31-1,
// pid 0 = none). T is UTC "YYYY-MM-DDTHH:MM:SS.uuuuuuZ". Strings are JSON strings: the
// writer escapes '"' '\\' and bytes below 0x20 (\b \f \n \r \t, else \u00XX), keeps valid
// UTF-8 as is and writes each byte of invalid UTF-8 as \ufffd. Caps before escaping, in
// bytes: request_id 64, unit 256, exe 4096, route 128, path 512, reason 512; a longer
// value is cut and ends in "...".
//
// ROTATION. A segment is closed when the next line would make it larger than the
// configured size (default 8 MiB) and it holds at least one record: the writer syncs it,
// writes the next segment's header to a .tmp file, syncs that, renames it into place and
// syncs the folder. So only the last segment can end in a torn (unfinished) line.
//
// CHECKPOINT. The file `checkpoint` is one line
//   {"sealkeep_audit_checkpoint":1,"segment":N,"last_seq":S,"head_mac":"<hex>","time":"T"
//   ,"mac":"<hex>"}'\n'      (no line break before ,"mac")
// with mac = HMAC-SHA256(AK, "sealkeep audit v1 checkpoint" 0x00 || BODY); head_mac is
// the mac of the last line of the log when it was written (record S, or the header of
// segment N when N holds no record yet). It is written (tmp, fsync, rename, fsync folder)
// only after those lines are synced: at open, at rotation, on Checkpoint() and at close.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/audit/audit_record.h"
#include "crypto/mac.h"
#include "crypto/status.h"

namespace sk::audit {

inline constexpr std::size_t kMaxLineBytes = 64 * 1024;
inline constexpr std::size_t kMacSuffixBytes = 74;  // ,"mac":" + 64 hex + "}
inline constexpr std::uint64_t kDefaultMaxSegmentBytes = 8ULL << 20;
inline constexpr std::string_view kCheckpointFileName = "checkpoint";

struct SegmentHeader {
  std::uint64_t segment = 0;
  std::uint64_t first_seq = 0;
  Digest prev_mac{};
};

struct Checkpoint {
  std::uint64_t segment = 0;
  std::uint64_t last_seq = 0;
  Digest head_mac{};
};

// MACs of the chain and of the checkpoint (hmac is keyed with AK).
Digest ChainMac(Hmac& hmac, const Digest& prev, std::string_view body);
Digest CheckpointMac(Hmac& hmac, std::string_view body);

// Bodies, exactly as specified above. `time` is when the line is written.
std::string EncodeHeaderBody(const SegmentHeader& h, std::chrono::system_clock::time_point time);
std::string EncodeRecordBody(std::uint64_t seq, const AuditRecord& r);
std::string EncodeCheckpointBody(const Checkpoint& c, std::chrono::system_clock::time_point time);
// BODY + ,"mac":"<hex>"} + '\n'
std::string SealLine(std::string_view body, const Digest& mac);

// A line (without its '\n') split into BODY and MAC; nullopt when it is not shaped so.
struct SealedLine {
  std::string_view body;
  Digest mac{};
};
std::optional<SealedLine> SplitSealedLine(std::string_view line);

// Reads what the chain needs from a sealed line. Pure; fails with corruption.
struct ParsedLine {
  bool is_header = false;
  SegmentHeader header;   // when is_header
  std::uint64_t seq = 0;  // when a record
  SealedLine sealed;
};
Result<ParsedLine> ParseLine(std::string_view line);
// The checkpoint file's text (one line with its '\n'); checks its shape, not its MAC.
struct ParsedCheckpoint {
  Checkpoint checkpoint;
  SealedLine sealed;
};
Result<ParsedCheckpoint> ParseCheckpoint(std::string_view text);

std::string SegmentFileName(std::uint64_t segment);  // "audit-00000001.log"
std::optional<std::uint64_t> ParseSegmentFileName(std::string_view name);

// Pieces of the encoding, exposed for tests and the CLI.
void AppendJsonString(std::string& out, std::string_view s);
std::string FormatTime(std::chrono::system_clock::time_point t);

}  // namespace sk::audit
