// Api: one request in, one response out, with no knowledge of sockets or Beast. It
// authorises the caller (policy, or the built-in rule: root and the agent's own user),
// audits the request (state changes: written and synced before the change, once every
// policy check of the request passed; the agent changes nothing when that fails; while
// sealed, records wait in the Agent's queue for the next unseal), runs it against the
// Agent, and maps every Status to the documented error body (docs/api.md). A value read
// or a credential is given only once its record is in the log (503 audit_unavailable
// while the log cannot be written). GET /v1/health and allowed GET /metrics are not audited.
//
// Thread-safe. Handle() may block for blocking routes (IsBlockingRoute): the server runs
// those on its worker pool.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "agent/api/router.h"
#include "agent/policy/subject.h"
#include "crypto/secret_bytes.h"
#include "crypto/wiping_allocator.h"

namespace sk::daemon {
class Agent;
}

namespace sk::api {

struct Context;
struct Reply;

struct ApiRequest {
  std::string method;
  std::string target;
  WipingString body;            // may hold a value: wiped by the server after Handle()
  std::string idempotency_key;  // the Idempotency-Key header
  // An X-Vault-Token header came (Vault clients send one): ignored, never read or kept, and
  // noted in the request's audit records. Identity is the kernel's (kv2.h).
  bool vault_token = false;
  policy::Subject subject;
  std::string request_id;
};

struct ApiResponse {
  unsigned status = 200;
  std::string body;
  const char* content_type = "application/json";
  bool secret = false;  // the body holds a secret value: the server wipes it after sending
  std::vector<std::pair<std::string, std::string>> headers;
};

class WatchHub;

class Api {
 public:
  explicit Api(daemon::Agent& agent);
  ~Api();

  ApiResponse Handle(ApiRequest& req, const RouteMatch& match);
  // Errors found before routing (malformed HTTP, too large...).
  static ApiResponse Error(unsigned status, std::string_view code, std::string_view message,
                           std::string_view request_id);

  // systemd's credential protocol (creds.sock): the service manager, `peer`, asks for
  // credential `id` of `unit`. Answers the value of the secret the policy's [[credentials]]
  // entry for (unit, id) names. Forbidden (`unit_mismatch`) unless the caller runs in that
  // unit's cgroup (systemd asks from the unit's process before it execs), forbidden
  // (`no_credential`) without an entry (always under the built-in policy), sealed while
  // sealed. Audited like a read (route "CREDENTIAL <unit>/<id>"); denials raise the alert.
  Result<SecretBytes> ServeCredential(const policy::Subject& peer, const std::string& unit,
                                      const std::string& id, const std::string& request_id);
  // A creds.sock connection refused before (or, `send_failed`, after) ServeCredential:
  // logged with `message`, audited (route "CREDENTIAL <asked>", "?" when unknown),
  // alerted unless send_failed.
  void RefuseCredential(const policy::Subject& peer, const std::string& request_id, const std::string& asked,
                        std::string_view reason, const std::string& message);

  // GET /v1/watch (watch.h): audited like a read, answered through `done` at once or,
  // once parked, from the watch hub's thread; never blocks the caller.
  // `gone` is set by the connection when its client hangs up, then ForgetWatches() is
  // called: the hub drops that watch instead of holding it until its timeout.
  void Watch(ApiRequest& req, const RouteMatch& match, std::shared_ptr<std::atomic<bool>> gone,
             std::function<void(ApiResponse)> done);
  void ForgetWatches();
  // Answers every parked watch (503): the server is stopping.
  void StopWatches();

  std::string MetricsText() const;
  void CountConnectionRefused() { ++refused_connections_; }
  void CountConnection(int delta) { open_connections_ += delta; }

 private:
  struct Impl;
  // The route's handler (handlers.h), as a typed Reply.
  Reply Dispatch(Context& ctx) const;
  daemon::Agent& agent_;
  // Seals listing cursors that point past rows the caller may not see (docs/api.md): fresh
  // for each run of the agent, so such a cursor names nothing and dies with the process.
  SecretBytes cursor_key_;
  std::atomic<std::uint64_t> requests_{0}, errors_4xx_{0}, errors_5xx_{0}, denied_{0};
  std::atomic<std::uint64_t> refused_connections_{0};
  std::atomic<std::int64_t> open_connections_{0};
  std::unique_ptr<WatchHub> watches_;
};

// The HTTP status for a Status code (docs/api.md).
unsigned HttpStatusFor(const Status& st);

}  // namespace sk::api
