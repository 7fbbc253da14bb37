#include "agent/secrets/path.h"

#include <string>

namespace sk::secrets {
namespace {

bool SegmentChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

Status Bad(const std::string& why) { return InvalidArgument(why, "bad_path"); }

}  // namespace

Status ValidatePath(std::string_view path) {
  if (path.empty()) return Bad("the path is empty");
  if (path.size() > kMaxPath) return Bad("the path is longer than 256 bytes");
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view seg = path.substr(start, end - start);
    if (seg.empty()) return Bad("the path has an empty segment (leading, trailing or double '/')");
    if (seg == "." || seg == "..") return Bad("the path has a '.' or '..' segment");
    for (char c : seg) {
      if (!SegmentChar(c)) return Bad("the path has a character outside [A-Za-z0-9._-/]");
    }
    start = end + 1;
  }
  return OkStatus();
}

Status ValidatePrefix(std::string_view prefix) {
  if (prefix.empty()) return OkStatus();
  if (prefix.back() == '/') prefix.remove_suffix(1);
  return ValidatePath(prefix);
}

Status ValidateSnapshotName(std::string_view name) {
  if (name.empty() || name.size() > kMaxSnapshotName || name == "." || name == "..") {
    return InvalidArgument("a snapshot name is 1-128 characters of [A-Za-z0-9._-]", "bad_name");
  }
  for (char c : name) {
    if (!SegmentChar(c))
      return InvalidArgument("a snapshot name is 1-128 characters of [A-Za-z0-9._-]", "bad_name");
  }
  return OkStatus();
}

bool PathMatchesPrefix(std::string_view path, std::string_view prefix) {
  if (prefix.empty()) return true;
  if (prefix.back() == '/') return path.size() > prefix.size() && path.substr(0, prefix.size()) == prefix;
  if (path.size() < prefix.size() || path.substr(0, prefix.size()) != prefix) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

}  // namespace sk::secrets
