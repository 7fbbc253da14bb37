#include "agent/api/listen_socket.h"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace sk::api {
namespace {

Status Errno(const std::string& what) {
  return Unavailable(what + ": " + std::strerror(errno), "socket_error");
}

}  // namespace

Result<UniqueFd> CreateListenSocket(const std::string& path, unsigned mode, const std::string& group) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path))
    return InvalidArgument("socket path too long: " + path, "bad_config");
  gid_t gid = static_cast<gid_t>(-1);
  if (!group.empty()) {
    std::vector<char> buf(16384);
    struct group grp {};
    struct group* found = nullptr;
    if (getgrnam_r(group.c_str(), &grp, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
      return InvalidArgument("no such group '" + group + "' for the socket", "bad_config");
    }
    gid = found->gr_gid;
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Errno("socket");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  // A stale socket file from an earlier run: only remove it if it is a socket nobody serves.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return FailedPrecondition(path + " exists and is not a socket", "socket_in_use");
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      return FailedPrecondition("another process is serving " + path, "socket_in_use");
    }
    ::unlink(path.c_str());
  }
  // Born 0600: never more open than the final mode, whatever the process umask is.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::umask(old);
  if (rc != 0) return Errno("bind " + path);
  if ((gid != static_cast<gid_t>(-1) && ::chown(path.c_str(), static_cast<uid_t>(-1), gid) != 0) ||
      ::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0 || ::listen(fd.get(), 1024) != 0) {
    Status s = Errno("preparing " + path);
    ::unlink(path.c_str());
    return s;
  }
  return fd;
}

}  // namespace sk::api
