#include "hsm/credential.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "crypto/locked_pool.h"

namespace sk::hsm {

Result<SecretBytes> ReadCredentialFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT)
      return Status(Code::kNotFound, "credential_missing", "credential file " + path + " does not exist");
    return Status(Code::kUnavailable, "credential_unreadable",
                  "cannot open credential file " + path + ": " + std::strerror(err));
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

Result<SecretBytes> ReadCredential(const std::string& path, const std::string& name) {
  if (!path.empty()) return ReadCredentialFile(path);
  const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
  if (dir == nullptr || *dir == '\0') {
    return Status(
        Code::kNotFound, "credential_missing",
        "no credential file configured and $CREDENTIALS_DIRECTORY is not set (looked for '" + name + "')");
  }
  return ReadCredentialFile(std::string(dir) + "/" + name);
}

}  // namespace sk::hsm
