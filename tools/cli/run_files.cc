#include "tools/cli/run_files.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace sk::cli {
namespace {

Status OsError(const std::string& what) {
  return Status(Code::kUnavailable, "private_dir_failed", what + ": " + std::strerror(errno));
}

bool MemoryBacked(const std::string& dir) {
  struct statfs fs {};
  if (::statfs(dir.c_str(), &fs) != 0) return false;
  return static_cast<unsigned long>(fs.f_type) == TMPFS_MAGIC ||
         static_cast<unsigned long>(fs.f_type) == RAMFS_MAGIC;
}

}  // namespace

bool IsPlainFileName(const std::string& name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

Result<PrivateDir> PrivateDir::Create() {
  std::vector<std::string> candidates;
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr && xdg[0] == '/')
    candidates.push_back(xdg);
  candidates.push_back("/run/user/" + std::to_string(::getuid()));
  candidates.push_back("/dev/shm");
  std::string tried;
  for (const std::string& base : candidates) {
    if (!MemoryBacked(base)) {
      tried += (tried.empty() ? "" : ", ") + base;
      continue;
    }
    std::string templ = base + "/sealkeep-run.XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      tried += (tried.empty() ? "" : ", ") + base + " (" + std::strerror(errno) + ")";
      continue;
    }
    if (::chmod(templ.c_str(), 0700) != 0) {
      Status st = OsError("cannot make " + templ + " private");
      ::rmdir(templ.c_str());
      return st;
    }
    return PrivateDir(templ);
  }
  return Status(Code::kFailedPrecondition, "no_tmpfs",
                "--file and --template write only to a memory-backed folder, and none is usable (" + tried +
                    "): set XDG_RUNTIME_DIR to a tmpfs folder you own");
}

PrivateDir::PrivateDir(PrivateDir&& other) noexcept
    : path_(std::move(other.path_)), names_(std::move(other.names_)) {
  other.path_.clear();
}

PrivateDir::~PrivateDir() { Remove(); }

Status PrivateDir::Write(const std::string& name, std::span<const std::uint8_t> bytes) {
  if (!IsPlainFileName(name)) return InvalidArgument("not a plain file name: " + name, "bad_file_name");
  std::string tmp = path_ + "/." + name + ".XXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return OsError("cannot write in " + path_);
  Status st = OkStatus();
  if (::fchmod(fd, 0600) != 0) st = OsError("cannot chmod " + tmp);
  std::size_t off = 0;
  while (st.ok() && off < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      st = OsError("cannot write " + tmp);
    }
  }
  if (::close(fd) != 0 && st.ok()) st = OsError("cannot write " + tmp);
  if (st.ok() && ::rename(tmp.c_str(), (path_ + "/" + name).c_str()) != 0)
    st = OsError("cannot rename " + tmp);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  if (std::find(names_.begin(), names_.end(), name) == names_.end()) names_.push_back(name);
  return OkStatus();
}

void PrivateDir::Remove() {
  if (path_.empty()) return;
  // Also what the child left there; remove_all does not follow symlinks.
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  names_.clear();
  path_.clear();
}

}  // namespace sk::cli
