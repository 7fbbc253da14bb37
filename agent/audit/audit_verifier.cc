#include "agent/audit/audit_verifier.h"

#include <utility>

#include "crypto/ct.h"

namespace sk::audit {
namespace {

using Kind = AuditProblem::Kind;

std::string BaseName(const std::string& path) {
  std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// What the walk must pass through: a (segment, last seq, mac) point of the chain.
struct Mark {
  std::uint64_t segment = 0;  // 0: any
  std::uint64_t last_seq = 0;
  std::optional<Digest> mac;
  bool seen = false;
  void Visit(std::uint64_t seg, std::uint64_t seq, const Digest& m) {
    if ((segment == 0 || seg == segment) && seq == last_seq && (!mac || ConstantTimeEqual(*mac, m)))
      seen = true;
  }
};

void Count(AuditVerifyReport& r, const SegmentScan& scan, std::uint64_t next_seq_after) {
  ++r.segments;
  r.records += scan.records;
  if (scan.records > 0) {
    if (r.first_seq == 0) r.first_seq = next_seq_after - scan.records;
    r.last_seq = next_seq_after - 1;
  }
}

Result<AuditVerifyReport> VerifyFile(const std::string& path, Hmac& hmac, const AuditVerifyOptions& options,
                                     AuditEnv& env) {
  AuditVerifyReport report;
  SK_ASSIGN_OR_RETURN(std::string text, env.ReadFile(path));
  const std::string name = BaseName(path);
  ChainState state;
  state.linked = false;
  Mark head{0, options.expected_last_seq.value_or(0), options.expected_head_mac};
  SegmentScan scan =
      ScanSegment(text, name, ParseSegmentFileName(name).value_or(0), hmac, state,
                  [&](std::uint64_t s, std::uint64_t q, const Digest& m) { head.Visit(s, q, m); });
  Count(report, scan, state.next_seq);
  report.head_mac = state.prev;
  report.torn_tail_bytes = scan.torn_bytes;
  report.problem = std::move(scan.problem);
  report.notes.push_back(
      "verified " + name +
      " alone: its link to the previous segment, the checkpoint and the log's end are not checked");
  if (!report.problem && options.expected_last_seq && !head.seen) {
    report.problem =
        AuditProblem{Kind::kTruncated, name, scan.lines + 1, report.last_seq + 1,
                     "expected the log to reach seq " + std::to_string(*options.expected_last_seq)};
  }
  return report;
}

// Reads and checks the checkpoint; sets report.problem when it is bad or missing.
std::optional<Checkpoint> LoadCheckpoint(const std::string& dir, Hmac& hmac,
                                         const AuditVerifyOptions& options, AuditEnv& env,
                                         AuditVerifyReport& report) {
  const std::string name(kCheckpointFileName);
  Result<std::string> text = env.ReadFile(dir + "/" + name);
  if (!text.ok()) {
    if (text.status().code() == Code::kNotFound && options.require_checkpoint) {
      report.problem = AuditProblem{Kind::kMissingCheckpoint, name, 0, 0,
                                    "the checkpoint is missing, so a cut at the log's end would go unseen"};
    } else if (text.status().code() != Code::kNotFound) {
      report.problem = AuditProblem{Kind::kBadCheckpoint, name, 0, 0, std::string(text.status().message())};
    }
    return std::nullopt;
  }
  Result<ParsedCheckpoint> cp = ParseCheckpoint(*text);
  if (!cp.ok()) {
    report.problem = AuditProblem{Kind::kBadCheckpoint, name, 1, 0, std::string(cp.status().message())};
    return std::nullopt;
  }
  if (!ConstantTimeEqual(CheckpointMac(hmac, cp->sealed.body), cp->sealed.mac)) {
    report.problem =
        AuditProblem{Kind::kBadCheckpoint, name, 1, 0, "checkpoint edited or forged (MAC mismatch)"};
    return std::nullopt;
  }
  return cp->checkpoint;
}

Result<AuditVerifyReport> VerifyDir(const std::string& dir, Hmac& hmac, const AuditVerifyOptions& options,
                                    AuditEnv& env) {
  AuditVerifyReport report;
  SK_ASSIGN_OR_RETURN(std::vector<std::uint64_t> segments, ListSegments(env, dir));
  if (segments.empty()) return NotFound("no audit segments (audit-*.log) in " + dir, "audit_empty");
  std::optional<Checkpoint> cp = LoadCheckpoint(dir, hmac, options, env, report);
  if (report.problem) return report;
  report.checkpoint_checked = cp.has_value();

  Mark cp_mark{cp ? cp->segment : 0, cp ? cp->last_seq : 0,
               cp ? std::optional<Digest>(cp->head_mac) : std::nullopt};
  Mark head{0, options.expected_last_seq.value_or(0), options.expected_head_mac};
  auto visit = [&](std::uint64_t s, std::uint64_t q, const Digest& m) {
    cp_mark.Visit(s, q, m);
    head.Visit(s, q, m);
  };
  ChainState state;
  std::uint64_t last_lines = 0;
  std::string last_name;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const std::uint64_t want = i + 1;
    if (segments[i] != want) {
      report.problem = AuditProblem{Kind::kDeletedSegment, SegmentFileName(want), 0, state.next_seq,
                                    SegmentFileName(want) + " is missing (deleted)"};
      return report;
    }
    last_name = SegmentFileName(want);
    SK_ASSIGN_OR_RETURN(std::string text, env.ReadFile(dir + "/" + last_name));
    SegmentScan scan = ScanSegment(text, last_name, want, hmac, state, visit);
    Count(report, scan, state.next_seq);
    last_lines = scan.lines;
    if (scan.problem) {
      report.problem = std::move(scan.problem);
      return report;
    }
    if (scan.torn_bytes > 0 && i + 1 < segments.size()) {
      report.problem = AuditProblem{Kind::kTruncated, last_name, scan.lines + 1, state.next_seq,
                                    "a closed segment ends in the middle of a line"};
      return report;
    }
    report.torn_tail_bytes = scan.torn_bytes;
  }
  report.head_mac = state.prev;
  if (report.torn_tail_bytes > 0) {
    report.notes.push_back(last_name + " ends in " + std::to_string(report.torn_tail_bytes) +
                           " bytes of an unfinished line (a crash mid-write; the writer cuts it at open)");
  }
  if (cp && cp->segment > segments.size()) {
    report.problem =
        AuditProblem{Kind::kDeletedSegment, SegmentFileName(segments.size() + 1), 0, state.next_seq,
                     "the checkpoint names segment " + std::to_string(cp->segment) +
                         " but the log ends at segment " + std::to_string(segments.size())};
    return report;
  }
  if (cp && !cp_mark.seen) {
    report.problem =
        AuditProblem{Kind::kTruncated, last_name, last_lines + 1, state.next_seq,
                     "the checkpoint seals the log up to seq " + std::to_string(cp->last_seq) + " in " +
                         SegmentFileName(cp->segment) + ", but the log " +
                         (cp->last_seq >= state.next_seq ? "ends at seq " + std::to_string(state.next_seq - 1)
                                                         : "differs from it there (rewritten after a cut)")};
    return report;
  }
  if (options.expected_last_seq && !head.seen) {
    report.problem =
        AuditProblem{Kind::kTruncated, last_name, last_lines + 1, state.next_seq,
                     "expected the log to reach seq " + std::to_string(*options.expected_last_seq) +
                         " but it ends at seq " + std::to_string(state.next_seq - 1)};
    return report;
  }
  if (!cp) report.notes.push_back("no checkpoint: a cut at the log's end cannot be ruled out");
  return report;
}

}  // namespace

std::string_view AuditProblem::KindName() const {
  switch (kind) {
    case Kind::kBadMac:
      return "bad_mac";
    case Kind::kSequenceGap:
      return "sequence_gap";
    case Kind::kReordered:
      return "reordered";
    case Kind::kTruncated:
      return "truncated";
    case Kind::kDeletedSegment:
      return "deleted_segment";
    case Kind::kMalformed:
      return "malformed";
    case Kind::kBadHeader:
      return "bad_header";
    case Kind::kBadCheckpoint:
      return "bad_checkpoint";
    case Kind::kMissingCheckpoint:
      return "missing_checkpoint";
  }
  return "unknown";
}

std::string AuditProblem::ToString() const {
  std::string out = file;
  if (line != 0) out += ":" + std::to_string(line);
  if (seq != 0) out += " (seq " + std::to_string(seq) + ")";
  return out + ": " + std::string(KindName()) + ": " + detail;
}

Result<AuditVerifyReport> VerifyAuditLog(const std::string& dir_or_file, const SecretBytes& ak,
                                         const AuditVerifyOptions& options, AuditEnv* env) {
  if (ak.size() != kDigestSize) return InvalidArgument("the audit key must be 32 bytes", "bad_audit_key");
  if (env == nullptr) env = AuditEnv::Posix();
  Hmac hmac(ak);
  if (env->IsDirectory(dir_or_file)) return VerifyDir(dir_or_file, hmac, options, *env);
  return VerifyFile(dir_or_file, hmac, options, *env);
}

}  // namespace sk::audit
