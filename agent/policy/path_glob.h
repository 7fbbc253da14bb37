// Secret paths and the globs that policy grants use to cover them.
//
// A path is one or more segments of [A-Za-z0-9._-]+ joined by '/', at most 256 bytes
// (docs/design.md): no leading, trailing or doubled '/'.
//
// A glob is a path whose segments may also be wildcards, each a whole segment:
//   `*`   matches exactly one segment;
//   `**`  matches any number of segments, including zero.
// So `apps/*/db` matches `apps/web/db` but not `apps/db` or `apps/a/b/db`; `apps/**`
// matches `apps`, `apps/web` and `apps/web/db`; `**` matches every path. A `*` inside a
// segment (`web-*`) is an error, not a literal, so a typo never widens a grant. Matching
// takes O(segments(path) x segments(glob)) time at worst (at most 128 x 128), never
// exponential, whatever the glob. Globs are immutable and thread-safe once compiled.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/status.h"

namespace sk::policy {

inline constexpr std::size_t kMaxPathBytes = 256;
inline constexpr std::size_t kMaxPathSegments = kMaxPathBytes / 2 + 1;

// True when `path` follows the grammar above.
bool IsValidPath(std::string_view path);

// The segments of a valid path, as views into it (no allocation). Holds the caller's
// string by reference: it must outlive this object.
class PathSegments {
 public:
  // An invalid path gives an object with valid() == false and no segments.
  explicit PathSegments(std::string_view path);
  bool valid() const { return valid_; }
  std::size_t size() const { return count_; }
  std::string_view operator[](std::size_t i) const { return segs_[i]; }

 private:
  std::array<std::string_view, kMaxPathSegments> segs_{};
  std::size_t count_ = 0;
  bool valid_ = false;
};

class PathGlob {
 public:
  // Fails with invalid_argument (a message without position; the parser adds it).
  static Result<PathGlob> Compile(std::string_view pattern);

  bool Matches(const PathSegments& path) const;
  bool Matches(std::string_view path) const { return Matches(PathSegments(path)); }
  const std::string& pattern() const { return pattern_; }

 private:
  enum class Kind : std::uint8_t { kLiteral, kOne, kAny };
  struct Segment {
    Kind kind;
    std::string literal;
  };
  PathGlob() = default;
  std::string pattern_;
  std::vector<Segment> segs_;
};

}  // namespace sk::policy
