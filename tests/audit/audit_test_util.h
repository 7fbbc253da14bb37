// Helpers for the audit tests: a fixed key, record factories, and corruption helpers
// over segment files (edit, delete, swap, truncate lines).
#pragma once

#include <string>
#include <vector>

#include "agent/audit/audit_format.h"
#include "agent/audit/audit_record.h"
#include "crypto/secret_bytes.h"
#include "tests/fixtures/temp_dir.h"

namespace sk::audit::test {

inline SecretBytes TestKey(std::uint8_t fill = 0x42) {
  std::vector<std::uint8_t> k(32, fill);
  return SecretBytes::CopyFrom(k);
}

inline AuditRecord Record(int i, AuditOutcome outcome = AuditOutcome::kAllowed) {
  AuditRecord r;
  r.time = std::chrono::system_clock::time_point(std::chrono::seconds(1748866800 + i));
  r.request_id = "req-" + std::to_string(i);
  r.peer.uid = 1000 + static_cast<std::uint32_t>(i % 3);
  r.peer.gid = 1000;
  r.peer.pid = 4000 + i;
  r.peer.unit = i % 2 ? "web.service" : "";
  r.peer.exe = "/usr/bin/curl";
  r.route = i % 4 == 0 ? "PUT /v1/secrets/{path}" : "GET /v1/secrets/{path}";
  r.path = "apps/web/key" + std::to_string(i);
  r.outcome = outcome;
  r.reason = outcome == AuditOutcome::kDenied ? "no_binding" : "allowed";
  return r;
}

inline std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) {
      lines.push_back(text.substr(pos));
      break;
    }
    lines.push_back(text.substr(pos, nl - pos + 1));  // keeps its '\n'
    pos = nl + 1;
  }
  return lines;
}

inline std::string JoinLines(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l;
  return out;
}

inline std::string SegmentPath(const std::string& dir, std::uint64_t n) {
  return dir + "/" + SegmentFileName(n);
}

// Rewrites a segment's lines through `edit`.
template <typename F>
void EditSegment(const std::string& dir, std::uint64_t n, F&& edit) {
  const std::string path = SegmentPath(dir, n);
  std::vector<std::string> lines = SplitLines(testing::ReadFile(path));
  edit(lines);
  testing::WriteFile(path, JoinLines(lines));
}

}  // namespace sk::audit::test
