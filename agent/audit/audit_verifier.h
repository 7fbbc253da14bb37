// Verifying an audit log (audit_format.h) under its key AK.
//
// What verification detects, at the first record affected:
//   - an edited line (any byte of a record or header, its MAC included): bad_mac;
//   - a deleted record inside the log: sequence_gap (the first missing seq);
//   - records moved or replayed out of order: reordered;
//   - a deleted or renamed segment (first, middle, or last when the checkpoint names it):
//     deleted_segment; a segment cut short, or the log's end cut back behind the
//     checkpoint or behind the head the daemon passes in: truncated;
//   - a forged or edited checkpoint: bad_checkpoint; a deleted one: missing_checkpoint.
// What it cannot detect alone: removing records written after the last checkpoint (pass
// the daemon's live head, AuditWriter::Head(), or --expect-last-seq to cover them), and
// replacing the whole folder with an older, consistent copy of itself (that needs the
// audit head anchored in hardware like the journal's; see docs/audit.md).
// A torn (unfinished) last line of the last segment is a crash mid-write, not tampering:
// it is reported in torn_tail_bytes and the writer cuts it at its next open.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/audit/audit_env.h"
#include "agent/audit/audit_format.h"
#include "crypto/mac.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk::audit {

struct AuditProblem {
  enum class Kind : std::uint8_t {
    kBadMac,
    kSequenceGap,
    kReordered,
    kTruncated,
    kDeletedSegment,
    kMalformed,
    kBadHeader,
    kBadCheckpoint,
    kMissingCheckpoint,
  };
  Kind kind = Kind::kMalformed;
  std::string file;        // segment (or checkpoint) file name, without folder
  std::uint64_t line = 0;  // 1-based line in `file`; 0 when not about one line
  std::uint64_t seq = 0;   // the sequence number expected there; 0 when none
  std::string detail;      // for humans

  std::string_view KindName() const;  // "bad_mac", "sequence_gap", ...
  std::string ToString() const;       // "audit-00000002.log:17 (seq 1016): bad_mac: ..."
};

// The head of a log: the last record's seq and the MAC of the last line.
struct AuditHead {
  std::uint64_t seq = 0;
  Digest mac{};
  std::uint64_t segment = 0;
};

struct AuditVerifyOptions {
  // The log must reach this seq (and, when mac is set, have this MAC at its last line
  // with that seq). The daemon passes its live head; the CLI --expect-last-seq.
  std::optional<std::uint64_t> expected_last_seq;
  std::optional<Digest> expected_head_mac;
  // Folder mode: a missing checkpoint is a problem (the writer makes one at open).
  bool require_checkpoint = true;
};

struct AuditVerifyReport {
  std::uint64_t segments = 0;
  std::uint64_t records = 0;
  std::uint64_t first_seq = 0;  // 0 when no record
  std::uint64_t last_seq = 0;
  Digest head_mac{};
  bool checkpoint_checked = false;
  std::uint64_t torn_tail_bytes = 0;
  std::vector<std::string> notes;
  std::optional<AuditProblem> problem;  // the first one; nothing after it is checked

  bool ok() const { return !problem.has_value(); }
};

// Verifies a whole audit folder, or one segment file (then its link to the previous
// segment, the checkpoint and the tail of the log are not checked; the report says so).
// An I/O error or a bad key is an error Status; tampering is a report with a problem.
Result<AuditVerifyReport> VerifyAuditLog(const std::string& dir_or_file, const SecretBytes& ak,
                                         const AuditVerifyOptions& options = {}, AuditEnv* env = nullptr);

// --- The pieces, for the writer's open and for fuzzing: pure functions over bytes. ---

// The chain as it stands after the lines accepted so far.
struct ChainState {
  Digest prev{};               // MAC of the last line accepted
  std::uint64_t next_seq = 1;  // seq the next record must carry
  bool linked = true;          // false: take prev and next_seq from the next header (one file alone)
};

struct SegmentScan {
  std::uint64_t lines = 0;        // complete lines accepted (header included)
  std::uint64_t records = 0;      // records among them
  std::uint64_t valid_bytes = 0;  // bytes up to the end of the last complete line
  std::uint64_t torn_bytes = 0;   // bytes after the last '\n'
  std::optional<AuditProblem> problem;
};

// Checks one segment's text. `segment` is the number its name gives (0: accept the
// header's). Calls on_line(segment, last seq so far, mac) after each accepted line.
using LineVisitor = std::function<void(std::uint64_t segment, std::uint64_t last_seq, const Digest& mac)>;
SegmentScan ScanSegment(std::string_view text, std::string_view file_name, std::uint64_t segment, Hmac& hmac,
                        ChainState& state, const LineVisitor& on_line = nullptr);

// Segment numbers present in `dir`, ascending.
Result<std::vector<std::uint64_t>> ListSegments(AuditEnv& env, const std::string& dir);

}  // namespace sk::audit
