#include "agent/audit/audit_env.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sk::audit {
namespace {

Status Errno(const std::string& what, int err) {
  return Unavailable(what + ": " + std::strerror(err), "audit_unavailable");
}

class PosixFile final : public AuditFile {
 public:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixFile() override { ::close(fd_); }
  PosixFile(const PosixFile&) = delete;
  PosixFile& operator=(const PosixFile&) = delete;

  Result<std::size_t> Write(ByteView data) override {
    while (true) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) return Errno("writing " + path_, errno);
    }
  }
  Status Sync() override {
    if (::fdatasync(fd_) != 0) return Errno("syncing " + path_, errno);
    return OkStatus();
  }
  Status Truncate(std::uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return Errno("truncating " + path_, errno);
    return OkStatus();
  }

 private:
  int fd_;
  std::string path_;
};

class PosixEnv final : public AuditEnv {
 public:
  Result<std::unique_ptr<AuditFile>> OpenAppend(const std::string& path) override {
    return Open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
  }
  Result<std::unique_ptr<AuditFile>> Create(const std::string& path) override {
    return Open(path, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC);
  }

  Result<std::string> ReadFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return NotFound(path + " does not exist");
      return Errno("opening " + path, errno);
    }
    std::string out;
    char buf[65536];
    while (true) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(fd);
        return Errno("reading " + path, err);
      }
      if (n == 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
  }

  Result<std::vector<std::string>> ListDir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return Errno("listing " + dir, errno);
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
    }
    ::closedir(d);
    return names;
  }

  bool IsDirectory(const std::string& path) override {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  }

  Status CreateDir(const std::string& dir) override {
    if (::mkdir(dir.c_str(), 0700) == 0 || (errno == EEXIST && IsDirectory(dir))) return OkStatus();
    return Errno("creating " + dir, errno);
  }
  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return Errno("renaming " + from, errno);
    return OkStatus();
  }
  Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Errno("removing " + path, errno);
    return OkStatus();
  }
  Status SyncDir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Errno("opening " + dir, errno);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return Errno("syncing " + dir, err);
    return OkStatus();
  }

 private:
  static Result<std::unique_ptr<AuditFile>> Open(const std::string& path, int flags) {
    int fd = ::open(path.c_str(), flags, 0600);
    if (fd < 0) return Errno("opening " + path, errno);
    return std::unique_ptr<AuditFile>(std::make_unique<PosixFile>(fd, path));
  }
};

}  // namespace

AuditEnv* AuditEnv::Posix() {
  static PosixEnv* env = new PosixEnv();  // never destroyed: used until exit
  return env;
}

}  // namespace sk::audit
