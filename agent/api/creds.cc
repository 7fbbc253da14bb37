#include "agent/api/creds.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "agent/api/api.h"
#include "agent/daemon/systemd.h"
#include "agent/policy/peer_identity.h"
#include "agent/policy/policy.h"
#include "crypto/bytes.h"

namespace sk::api {

std::optional<CredentialAsk> ParseCredentialPeer(std::string_view name) {
  constexpr std::string_view kUnit = "/unit/";
  std::size_t at = name.find(kUnit);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = name.substr(at + kUnit.size());
  std::size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  CredentialAsk ask{std::string(rest.substr(0, slash)), std::string(rest.substr(slash + 1))};
  if (!policy::IsValidUnitName(ask.unit) || !policy::IsValidCredentialId(ask.id)) return std::nullopt;
  return ask;
}

namespace {

void Refuse(const std::string& request_id, const std::string& why) {
  daemon::Log(daemon::LogLevel::kWarning, "creds.sock: request " + request_id + " refused: " + why);
}

}  // namespace

void ServeCredentialConnection(Api& api, int fd, const std::string& request_id) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) return;
  timeval send_timeout{5, 0};  // a peer that stops reading does not hold a worker for long
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);

  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return;
  if (cred.uid != 0) {
    return Refuse(request_id, "uid " + std::to_string(cred.uid) +
                                  " is not the service manager (only uid 0 is answered here)");
  }
  sockaddr_un peer{};
  socklen_t plen = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) != 0) return;
  constexpr auto kPathAt = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path));
  std::optional<CredentialAsk> ask;
  if (plen > kPathAt + 1 && peer.sun_path[0] == '\0') {
    ask = ParseCredentialPeer(std::string_view(peer.sun_path + 1, plen - kPathAt - 1));
  }
  if (!ask) {
    return Refuse(request_id, "pid " + std::to_string(cred.pid) +
                                  " did not connect from an address \"@.../unit/<unit>/<credential-id>\"");
  }

  policy::Subject who = policy::SubjectFromPeer(policy::PeerCredentials{cred.pid, cred.uid, cred.gid, -1});
  Result<SecretBytes> value = api.ServeCredential(who, ask->unit, ask->id, request_id);
  if (!value.ok()) {
    return Refuse(request_id,
                  "credential '" + ask->id + "' of unit '" + ask->unit + "': " + value.status().ToString());
  }
  ByteView bytes = value->Expose();
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return Refuse(request_id, "credential '" + ask->id + "' of unit '" + ask->unit +
                                    "': the service manager stopped reading (" + std::strerror(errno) + ")");
    }
    sent += static_cast<std::size_t>(n);
  }
  (void)::shutdown(fd, SHUT_WR);
  daemon::Log(daemon::LogLevel::kInfo, "creds.sock: request " + request_id + ": credential '" + ask->id +
                                           "' given to unit '" + ask->unit + "'");
}

}  // namespace sk::api
