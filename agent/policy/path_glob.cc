#include "agent/policy/path_glob.h"

#include <utility>

namespace sk::policy {
namespace {

bool IsSegmentChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

// Calls on_segment(view) for each '/'-separated piece; false on an empty piece.
template <typename F>
bool ForEachSegment(std::string_view text, F&& on_segment) {
  std::size_t start = 0;
  while (true) {
    std::size_t slash = text.find('/', start);
    std::string_view seg =
        text.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (seg.empty() || !on_segment(seg)) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

}  // namespace

bool IsValidPath(std::string_view path) {
  if (path.empty() || path.size() > kMaxPathBytes) return false;
  return ForEachSegment(path, [](std::string_view seg) {
    for (char c : seg) {
      if (!IsSegmentChar(c)) return false;
    }
    return true;
  });
}

PathSegments::PathSegments(std::string_view path) {
  if (!IsValidPath(path)) return;
  ForEachSegment(path, [this](std::string_view seg) {
    segs_[count_++] = seg;  // a valid path has at most kMaxPathSegments segments
    return true;
  });
  valid_ = true;
}

Result<PathGlob> PathGlob::Compile(std::string_view pattern) {
  if (pattern.empty()) return InvalidArgument("empty path glob", "policy_invalid");
  if (pattern.size() > kMaxPathBytes) {
    return InvalidArgument("path glob longer than 256 bytes", "policy_invalid");
  }
  PathGlob glob;
  glob.pattern_ = std::string(pattern);
  std::string error;
  bool ok = ForEachSegment(pattern, [&](std::string_view seg) {
    if (seg == "**") {
      // `**/**` means the same as `**`; keeping one bounds the matcher's work.
      if (glob.segs_.empty() || glob.segs_.back().kind != Kind::kAny) glob.segs_.push_back({Kind::kAny, {}});
      return true;
    }
    if (seg == "*") {
      glob.segs_.push_back({Kind::kOne, {}});
      return true;
    }
    for (char c : seg) {
      if (c == '*') {
        error = "'*' and '**' must be whole segments in '" + std::string(pattern) + "'";
        return false;
      }
      if (!IsSegmentChar(c)) {
        error =
            "invalid character in path glob '" + std::string(pattern) + "' (segments are [A-Za-z0-9._-]+)";
        return false;
      }
    }
    glob.segs_.push_back({Kind::kLiteral, std::string(seg)});
    return true;
  });
  if (!ok) {
    if (error.empty()) error = "empty segment in path glob '" + std::string(pattern) + "'";
    return InvalidArgument(std::move(error), "policy_invalid");
  }
  return glob;
}

bool PathGlob::Matches(const PathSegments& path) const {
  if (!path.valid()) return false;
  // Wildcard matching with one backtrack point: `**` is a star over segments, `*` is
  // any single segment. Each retry advances star_s, so the loop is O(n * m).
  const std::size_t n = path.size();
  const std::size_t m = segs_.size();
  std::size_t p = 0;
  std::size_t s = 0;
  std::size_t star_p = m;  // none yet
  std::size_t star_s = 0;
  while (s < n) {
    if (p < m && segs_[p].kind == Kind::kAny) {
      star_p = p++;
      star_s = s;
      continue;
    }
    if (p < m && (segs_[p].kind == Kind::kOne || segs_[p].literal == path[s])) {
      ++p;
      ++s;
      continue;
    }
    if (star_p != m) {
      p = star_p + 1;
      s = ++star_s;
      continue;
    }
    return false;
  }
  while (p < m && segs_[p].kind == Kind::kAny) ++p;
  return p == m;
}

}  // namespace sk::policy
