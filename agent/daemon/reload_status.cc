#include "agent/daemon/reload_status.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

namespace sk::daemon {
namespace {

constexpr std::size_t kMaxBytes = 4096;

Status Invalid(const std::string& why) {
  return InvalidArgument("the reload status file is not valid: " + why, "reload_status_invalid");
}

template <typename T>
bool ParseNumber(std::string_view text, T& out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size() && !text.empty();
}

}  // namespace

std::string EncodeReloadStatus(const ReloadStatus& s) {
  std::string message = s.message.substr(0, 3000);
  for (char& c : message) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return "sealkeepd-reload 1\npid " + std::to_string(s.pid) + "\ngeneration " + std::to_string(s.generation) +
         "\nresult " + (s.ok ? "ok" : "rejected") + "\nmessage " + message + "\n";
}

Result<ReloadStatus> ParseReloadStatus(std::string_view text) {
  if (text.size() > kMaxBytes) return Invalid("larger than 4 KiB");
  static constexpr std::string_view kKeys[] = {"sealkeepd-reload", "pid", "generation", "result", "message"};
  ReloadStatus s;
  for (std::string_view key : kKeys) {
    std::size_t nl = text.find('\n');
    if (nl == std::string_view::npos) return Invalid("it ends before '" + std::string(key) + "'");
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    if (line.substr(0, key.size()) != key || line.size() <= key.size() || line[key.size()] != ' ') {
      return Invalid("expected a line '" + std::string(key) + " ...'");
    }
    std::string_view value = line.substr(key.size() + 1);
    if (key == "sealkeepd-reload") {
      if (value != "1") return Invalid("unknown format version");
    } else if (key == "pid") {
      if (!ParseNumber(value, s.pid) || s.pid <= 0) return Invalid("bad pid");
    } else if (key == "generation") {
      if (!ParseNumber(value, s.generation)) return Invalid("bad generation");
    } else if (key == "result") {
      if (value != "ok" && value != "rejected") return Invalid("result is ok or rejected");
      s.ok = value == "ok";
    } else {
      s.message = std::string(value);
    }
  }
  if (!text.empty()) return Invalid("trailing bytes");
  return s;
}

Status WriteReloadStatus(const std::string& path, const ReloadStatus& s) {
  const std::string tmp = path + ".tmp";
  const std::string text = EncodeReloadStatus(s);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
  if (fd < 0) {
    return Status(Code::kUnavailable, "reload_status_unwritable",
                  "cannot write " + tmp + ": " + std::strerror(errno));
  }
  bool ok =
      ::fchmod(fd, 0640) == 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  int err = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok) err = errno;
    (void)::unlink(tmp.c_str());
    return Status(Code::kUnavailable, "reload_status_unwritable",
                  "cannot write " + path + ": " + std::strerror(err));
  }
  return OkStatus();
}

Result<ReloadStatus> ReadReloadStatus(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status(Code::kNotFound, "reload_status_missing",
                  "no reload status at " + path + " (is sealkeepd running with this config?)");
  }
  std::string text(kMaxBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return ParseReloadStatus(text);
}

}  // namespace sk::daemon
