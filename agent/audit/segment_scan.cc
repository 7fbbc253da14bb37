// ScanSegment: walks one segment's lines along the MAC chain (audit_format.h) and names
// the first line that breaks it, classified so the report says what happened there.
#include <algorithm>

#include "agent/audit/audit_verifier.h"
#include "crypto/ct.h"

namespace sk::audit {
namespace {

std::string Range(std::uint64_t from, std::uint64_t to) {
  return from == to ? std::to_string(from) : std::to_string(from) + ".." + std::to_string(to);
}

class Scanner {
 public:
  Scanner(std::string_view file, std::uint64_t segment, Hmac& hmac, ChainState& state,
          const LineVisitor& visit)
      : file_(file), segment_(segment), hmac_(hmac), state_(state), visit_(visit) {}

  SegmentScan Run(std::string_view text) {
    std::size_t end = text.rfind('\n');
    std::string_view complete = end == std::string_view::npos ? std::string_view() : text.substr(0, end + 1);
    scan_.torn_bytes = text.size() - complete.size();
    std::vector<std::string_view> lines;
    for (std::size_t pos = 0; pos < complete.size();) {
      std::size_t nl = complete.find('\n', pos);
      lines.push_back(complete.substr(pos, nl - pos));
      pos = nl + 1;
    }
    if (lines.empty()) {
      Problem(AuditProblem::Kind::kMalformed, 1, state_.next_seq, "no complete segment header");
      return std::move(scan_);
    }
    for (std::size_t i = 0; i < lines.size() && !scan_.problem; ++i) {
      std::uint64_t line_no = i + 1;
      if (!Accept(lines, i, line_no)) break;
      scan_.valid_bytes += lines[i].size() + 1;
      ++scan_.lines;
      if (visit_) visit_(segment_, state_.next_seq - 1, state_.prev);
    }
    return std::move(scan_);
  }

 private:
  void Problem(AuditProblem::Kind kind, std::uint64_t line, std::uint64_t seq, std::string detail) {
    scan_.problem = AuditProblem{kind, std::string(file_), line, seq, std::move(detail)};
  }

  bool MacOk(const ParsedLine& p) {
    Digest mac = ChainMac(hmac_, state_.prev, p.sealed.body);
    return ConstantTimeEqual(mac, p.sealed.mac);
  }

  bool AcceptHeader(const ParsedLine& p) {
    const SegmentHeader& h = p.header;
    if (segment_ == 0) segment_ = h.segment;
    if (h.segment != segment_) {
      Problem(AuditProblem::Kind::kBadHeader, 1, state_.next_seq,
              "header says segment " + std::to_string(h.segment) + " but the file is segment " +
                  std::to_string(segment_) + " (renamed or replaced)");
      return false;
    }
    if (!state_.linked) {
      state_.prev = h.prev_mac;
      state_.next_seq = h.first_seq;
      state_.linked = true;
    }
    if (h.first_seq > state_.next_seq) {
      Problem(AuditProblem::Kind::kTruncated, 1, state_.next_seq,
              "the previous segment ends at seq " + std::to_string(state_.next_seq - 1) +
                  " but this one starts at " + std::to_string(h.first_seq) + ": records " +
                  Range(state_.next_seq, h.first_seq - 1) + " were cut from the previous segment");
      return false;
    }
    if (h.first_seq < state_.next_seq || h.prev_mac != state_.prev) {
      Problem(AuditProblem::Kind::kBadHeader, 1, state_.next_seq,
              "the header does not continue the previous segment (first_seq " + std::to_string(h.first_seq) +
                  ", expected " + std::to_string(state_.next_seq) + "; the previous segment was replaced)");
      return false;
    }
    if (!MacOk(p)) {
      Problem(AuditProblem::Kind::kBadMac, 1, state_.next_seq, "segment header edited (MAC mismatch)");
      return false;
    }
    state_.prev = p.sealed.mac;
    return true;
  }

  // Where record `seq` appears later in this segment, or 0.
  std::uint64_t FindLater(const std::vector<std::string_view>& lines, std::size_t from, std::uint64_t seq) {
    for (std::size_t j = from; j < lines.size(); ++j) {
      Result<ParsedLine> p = ParseLine(lines[j]);
      if (p.ok() && !p->is_header && p->seq == seq) return j + 1;
    }
    return 0;
  }

  bool AcceptRecord(const std::vector<std::string_view>& lines, std::size_t i, std::uint64_t line_no,
                    const ParsedLine& p) {
    const std::uint64_t want = state_.next_seq;
    if (MacOk(p) && p.seq == want) {
      state_.prev = p.sealed.mac;
      ++state_.next_seq;
      ++scan_.records;
      return true;
    }
    if (p.seq == want) {
      Problem(AuditProblem::Kind::kBadMac, line_no, want,
              "record edited (its MAC does not match its content)");
    } else if (p.seq > want) {
      if (std::uint64_t later = FindLater(lines, i + 1, want); later != 0) {
        Problem(AuditProblem::Kind::kReordered, line_no, want,
                "found record " + std::to_string(p.seq) + " where " + std::to_string(want) +
                    " belongs; record " + std::to_string(want) + " is at line " + std::to_string(later));
      } else {
        Problem(AuditProblem::Kind::kSequenceGap, line_no, want,
                "records " + Range(want, p.seq - 1) + " are missing (deleted) before record " +
                    std::to_string(p.seq));
      }
    } else {
      Problem(AuditProblem::Kind::kReordered, line_no, want,
              "found record " + std::to_string(p.seq) + " after record " + std::to_string(want - 1) +
                  " (moved or replayed)");
    }
    return false;
  }

  bool Accept(const std::vector<std::string_view>& lines, std::size_t i, std::uint64_t line_no) {
    Result<ParsedLine> parsed = ParseLine(lines[i]);
    if (!parsed.ok()) {
      Problem(i == 0 ? AuditProblem::Kind::kBadHeader : AuditProblem::Kind::kMalformed, line_no,
              state_.next_seq, std::string(parsed.status().message()));
      return false;
    }
    if (i == 0) {
      if (!parsed->is_header) {
        Problem(AuditProblem::Kind::kBadHeader, 1, state_.next_seq, "the first line is not a segment header");
        return false;
      }
      return AcceptHeader(*parsed);
    }
    if (parsed->is_header) {
      Problem(AuditProblem::Kind::kMalformed, line_no, state_.next_seq, "a segment header inside a segment");
      return false;
    }
    if (!state_.linked) return false;  // unreachable: line 1 linked the chain
    return AcceptRecord(lines, i, line_no, *parsed);
  }

  std::string_view file_;
  std::uint64_t segment_;
  Hmac& hmac_;
  ChainState& state_;
  const LineVisitor& visit_;
  SegmentScan scan_;
};

}  // namespace

SegmentScan ScanSegment(std::string_view text, std::string_view file_name, std::uint64_t segment, Hmac& hmac,
                        ChainState& state, const LineVisitor& on_line) {
  return Scanner(file_name, segment, hmac, state, on_line).Run(text);
}

Result<std::vector<std::uint64_t>> ListSegments(AuditEnv& env, const std::string& dir) {
  SK_ASSIGN_OR_RETURN(std::vector<std::string> names, env.ListDir(dir));
  std::vector<std::uint64_t> segments;
  for (const std::string& n : names) {
    if (std::optional<std::uint64_t> s = ParseSegmentFileName(n)) segments.push_back(*s);
  }
  std::sort(segments.begin(), segments.end());
  return segments;
}

}  // namespace sk::audit
