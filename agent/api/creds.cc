#include "agent/api/creds.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
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
  // systemd's random prefix: non-empty, one segment.
  if (at == std::string_view::npos || at == 0 || name.substr(0, at).find('/') != std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view rest = name.substr(at + kUnit.size());
  std::size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  CredentialAsk ask{std::string(rest.substr(0, slash)), std::string(rest.substr(slash + 1))};
  if (!policy::IsValidUnitName(ask.unit) || !policy::IsValidCredentialId(ask.id)) return std::nullopt;
  return ask;
}

namespace {

constexpr auto kSendDeadline = std::chrono::seconds(5);

// Writes all of `bytes` within kSendDeadline in total; false (errno set) when it cannot.
bool SendAll(int fd, ByteView bytes) {
  auto deadline = std::chrono::steady_clock::now() + kSendDeadline;
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      errno = ETIMEDOUT;
      return false;
    }
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) return false;
  }
  return true;
}

}  // namespace

void ServeCredentialConnection(Api& api, int fd, const std::string& request_id) {
  // The caller's unit comes from its cgroup, resolved as systemd names units, through a
  // pidfd where the kernel has one, so a pid reused meanwhile cannot lend its unit.
  Result<policy::Subject> identified = policy::IdentifyConnection(fd);
  if (!identified.ok()) {
    daemon::Log(daemon::LogLevel::kWarning,
                "creds.sock: request " + request_id + ": " + std::string(identified.status().message()));
    return;
  }
  const policy::Subject& who = *identified;
  if (who.uid != 0) {
    return api.RefuseCredential(
        who, request_id, "?", "not_service_manager",
        "uid " + std::to_string(who.uid) + " is not the service manager (only uid 0 is answered here)");
  }
  sockaddr_un peer{};
  socklen_t plen = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) != 0) {
    daemon::Log(daemon::LogLevel::kWarning, "creds.sock: request " + request_id +
                                                ": cannot read the peer's address: " + std::strerror(errno));
    return;
  }
  plen = std::min<socklen_t>(plen, sizeof peer);  // the kernel reports the full length
  constexpr auto kPathAt = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path));
  std::optional<CredentialAsk> ask;
  if (plen > kPathAt + 1 && peer.sun_path[0] == '\0') {
    ask = ParseCredentialPeer(std::string_view(peer.sun_path + 1, plen - kPathAt - 1));
  }
  if (!ask) {
    return api.RefuseCredential(who, request_id, "?", "bad_address",
                                "pid " + std::to_string(who.pid) +
                                    " did not connect from an address \"@.../unit/<unit>/<credential-id>\"");
  }

  Result<SecretBytes> value = api.ServeCredential(who, ask->unit, ask->id, request_id);
  if (!value.ok()) {
    daemon::Log(daemon::LogLevel::kWarning, "creds.sock: request " + request_id + " refused: credential '" +
                                                ask->id + "' of unit '" + ask->unit +
                                                "': " + value.status().ToString());
    return;
  }
  if (!SendAll(fd, value->Expose())) {
    int err = errno;
    api.RefuseCredential(who, request_id, ask->unit + "/" + ask->id, "send_failed",
                         "credential '" + ask->id + "' of unit '" + ask->unit +
                             "': the service manager did not take it (" + std::strerror(err) + ")");
    return;
  }
  (void)::shutdown(fd, SHUT_WR);
  daemon::Log(daemon::LogLevel::kInfo, "creds.sock: request " + request_id + ": credential '" + ask->id +
                                           "' given to unit '" + ask->unit + "'");
}

}  // namespace sk::api
