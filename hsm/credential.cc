#include "hsm/credential.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "crypto/locked_pool.h"

namespace sk::hsm {

namespace {

Status Unsafe(const std::string& path, const std::string& why) {
  return Status(Code::kFailedPrecondition, "credential_unsafe",
                "refusing the credential file " + path + ": " + why);
}

// `check_owner`: the file must be private to its owner, and that owner root or us. Files
// in systemd's credential directory are exempt: systemd made them, on a private
// read-only mount, and grants the service's uid access by ownership or an ACL (an ACL
// shows in the group bits of the mode).
Result<SecretBytes> ReadFrom(const std::string& path, bool check_owner) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT)
      return Status(Code::kNotFound, "credential_missing", "credential file " + path + " does not exist");
    if (err == ELOOP) return Unsafe(path, "it is a symbolic link");
    return Status(Code::kUnavailable, "credential_unreadable",
                  "cannot open credential file " + path + ": " + std::strerror(err));
  }
  struct stat st {};
  Status unsafe;
  if (::fstat(fd, &st) != 0) {
    unsafe = Status(Code::kUnavailable, "credential_unreadable",
                    "cannot stat credential file " + path + ": " + std::strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    unsafe = Unsafe(path, "it is not a regular file");
  } else if (check_owner && st.st_uid != 0 && st.st_uid != ::geteuid()) {
    unsafe = Unsafe(path, "it belongs to uid " + std::to_string(st.st_uid) +
                              ", neither root nor this process's uid " + std::to_string(::geteuid()));
  } else if (check_owner && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    unsafe = Unsafe(
        path, std::string("its mode ") + mode + " lets others read or change it (chmod 600 " + path + ")");
  }
  if (!unsafe.ok()) {
    ::close(fd);
    return unsafe;
  }
  SecretBytes buf(kMaxCredentialBytes + 1);
  std::size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = ::read(fd, buf.Expose().data() + got, buf.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Status(Code::kUnavailable, "credential_unreadable",
                    "cannot read credential file " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (got > kMaxCredentialBytes) {
    return Status(Code::kInvalidArgument, "credential_too_large",
                  "credential file " + path + " is larger than 4 KiB");
  }
  auto bytes = buf.Expose();
  if (got > 0 && bytes[got - 1] == '\n') --got;
  if (got > 0 && bytes[got - 1] == '\r') --got;
  if (got == 0)
    return Status(Code::kInvalidArgument, "credential_empty", "credential file " + path + " is empty");
  buf.Truncate(got);
  return buf;
}

}  // namespace

Result<SecretBytes> ReadCredentialFile(const std::string& path) { return ReadFrom(path, true); }

Result<SecretBytes> ReadCredential(const std::string& path, const std::string& name) {
  if (!path.empty()) return ReadCredentialFile(path);
  const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
  if (dir == nullptr || *dir == '\0') {
    return Status(
        Code::kNotFound, "credential_missing",
        "no credential file configured and $CREDENTIALS_DIRECTORY is not set (looked for '" + name + "')");
  }
  return ReadFrom(std::string(dir) + "/" + name, false);
}

}  // namespace sk::hsm
