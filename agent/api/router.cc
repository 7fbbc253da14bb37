#include "agent/api/router.h"

#include "agent/api/kv2.h"

namespace sk::api {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      int hi = i + 1 < s.size() ? HexDigit(s[i + 1]) : -1;
      int lo = i + 2 < s.size() ? HexDigit(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

bool ParseQuery(std::string_view q, std::map<std::string, std::string>& out) {
  while (!q.empty()) {
    std::size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (pair.empty()) continue;
    std::size_t eq = pair.find('=');
    auto key = PercentDecode(pair.substr(0, eq));
    auto value = PercentDecode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (!key || !value || key->empty()) return false;
    if (!out.emplace(std::move(*key), std::move(*value)).second) return false;
  }
  return true;
}

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool EndsWith(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

RouteResult Found(Route r, std::string path, std::map<std::string, std::string> q) {
  return {RouteMatch{r, std::move(path), std::move(q)}, RouteError::kNone};
}
RouteResult Error(RouteError e) { return {std::nullopt, e}; }

}  // namespace

std::string_view RouteName(Route r) {
  switch (r) {
    case Route::kHealth:
      return "health";
    case Route::kStatus:
      return "sys.status";
    case Route::kMetrics:
      return "metrics";
    case Route::kSecretGet:
      return "secret.get";
    case Route::kSecretPut:
      return "secret.put";
    case Route::kSecretDelete:
      return "secret.delete";
    case Route::kSecretList:
      return "secret.list";
    case Route::kSecretVersions:
      return "secret.versions";
    case Route::kSecretUndelete:
      return "secret.undelete";
    case Route::kSecretDestroy:
      return "secret.destroy";
    case Route::kSecretRollback:
      return "secret.rollback";
    case Route::kSecretFloor:
      return "secret.floor";
    case Route::kTxn:
      return "txn";
    case Route::kSnapshotCreate:
      return "snapshot.create";
    case Route::kSnapshotGet:
      return "snapshot.get";
    case Route::kSnapshotRestore:
      return "snapshot.restore";
    case Route::kRotate:
      return "sys.rotate";
    case Route::kSeal:
      return "sys.seal";
    case Route::kUnseal:
      return "sys.unseal";
    case Route::kRecover:
      return "sys.recover";
    case Route::kReseal:
      return "sys.reseal";
    case Route::kRecoveryInit:
      return "sys.recovery.init";
    case Route::kRecoveryStatus:
      return "sys.recovery.status";
    case Route::kFleetStatus:
      return "sys.fleet";
    case Route::kBackup:
      return "sys.backup";
    case Route::kJournalVerify:
      return "sys.journal.verify";
    case Route::kAuditVerify:
      return "sys.audit.verify";
    case Route::kKvRead:
      return "kv2.read";
    case Route::kKvWrite:
      return "kv2.write";
    case Route::kKvDelete:
      return "kv2.delete";
    case Route::kKvUndelete:
      return "kv2.undelete";
    case Route::kKvDestroy:
      return "kv2.destroy";
    case Route::kKvMetadata:
      return "kv2.metadata";
    case Route::kKvList:
      return "kv2.list";
    case Route::kKvDestroyAll:
      return "kv2.destroy_all";
    case Route::kKvInfo:
      return "kv2.info";
    case Route::kKvUnsupported:
      return "kv2.unsupported";
    case Route::kWatch:
      return "watch";
    case Route::kDeployList:
      return "deploy.list";
    case Route::kDeployGet:
      return "deploy.get";
    case Route::kDeployBegin:
      return "deploy.begin";
    case Route::kDeployCommit:
      return "deploy.commit";
    case Route::kDeployAbort:
      return "deploy.abort";
    case Route::kRotationBegin:
      return "secret.rotation.begin";
    case Route::kRotationFinish:
      return "secret.rotation.finish";
    case Route::kRotationAbort:
      return "secret.rotation.abort";
    case Route::kRotationStatus:
      return "secret.rotation.status";
    case Route::kLeaseCreate:
      return "lease.create";
    case Route::kLeaseList:
      return "lease.list";
    case Route::kLeaseRevoke:
      return "lease.revoke";
  }
  return "unknown";
}

RouteResult MatchRoute(std::string_view method, std::string_view target) {
  if (target.empty() || target[0] != '/' || target.size() > 8192) return Error(RouteError::kBadTarget);
  std::map<std::string, std::string> q;
  std::string_view path = target;
  if (std::size_t qm = target.find('?'); qm != std::string_view::npos) {
    path = target.substr(0, qm);
    if (!ParseQuery(target.substr(qm + 1), q)) return Error(RouteError::kBadTarget);
  }
  if (path.find('%') != std::string_view::npos || path.find('#') != std::string_view::npos) {
    return Error(RouteError::kBadTarget);  // paths are plain [A-Za-z0-9._-/]: no escapes to decode
  }
  const bool get = method == "GET", post = method == "POST", put = method == "PUT", del = method == "DELETE";
  auto only = [&](bool ok, Route r, std::string p = "") {
    return ok ? Found(r, std::move(p), std::move(q)) : Error(RouteError::kMethodNotAllowed);
  };

  if (path == "/v1/health") return only(get, Route::kHealth);
  if (path == "/metrics") return only(get, Route::kMetrics);
  if (path == "/v1/sys/status") return only(get, Route::kStatus);
  if (path == "/v1/sys/rotate") return only(post, Route::kRotate);
  if (path == "/v1/sys/seal") return only(post, Route::kSeal);
  if (path == "/v1/sys/unseal") return only(post, Route::kUnseal);
  if (path == "/v1/sys/recover") return only(post, Route::kRecover);
  if (path == "/v1/sys/reseal") return only(post, Route::kReseal);
  if (path == "/v1/sys/recovery") {
    if (get) return Found(Route::kRecoveryStatus, "", std::move(q));
    return only(post, Route::kRecoveryInit);
  }
  if (path == "/v1/sys/backup") return only(get, Route::kBackup);
  if (path == "/v1/sys/fleet") return only(get, Route::kFleetStatus);
  if (path == "/v1/sys/journal/verify") return only(get, Route::kJournalVerify);
  if (path == "/v1/sys/audit/verify") return only(get, Route::kAuditVerify);
  if (path == "/v1/txn") return only(post, Route::kTxn);
  if (path == "/v1/secrets" || path == "/v1/secrets/") return only(get, Route::kSecretList);
  if (path == "/v1/snapshots") return only(post, Route::kSnapshotCreate);
  if (path == "/v1/watch") return only(get, Route::kWatch);
  if (path == "/v1/deploys" || path == "/v1/deploys/") return only(get, Route::kDeployList);
  if (path == "/v1/leases" || path == "/v1/leases/") {
    if (get) return Found(Route::kLeaseList, "", std::move(q));
    return only(post, Route::kLeaseCreate);
  }
  constexpr std::string_view kLeases = "/v1/leases/";
  if (StartsWith(path, kLeases)) {
    std::string_view rest = path.substr(kLeases.size());
    if (!EndsWith(rest, "/revoke") || rest.size() == 7 ||
        rest.substr(0, rest.size() - 7).find('/') != std::string_view::npos)
      return Error(RouteError::kNotFound);
    return only(post, Route::kLeaseRevoke, std::string(rest.substr(0, rest.size() - 7)));
  }

  constexpr std::string_view kDeploys = "/v1/deploys/";
  if (StartsWith(path, kDeploys)) {
    std::string_view rest = path.substr(kDeploys.size());
    for (auto [suffix, route] : {std::pair{std::string_view("/begin"), Route::kDeployBegin},
                                 std::pair{std::string_view("/commit"), Route::kDeployCommit},
                                 std::pair{std::string_view("/abort"), Route::kDeployAbort}}) {
      if (EndsWith(rest, suffix))
        return only(post, route, std::string(rest.substr(0, rest.size() - suffix.size())));
    }
    if (rest.find('/') != std::string_view::npos) return Error(RouteError::kNotFound);
    return only(get, Route::kDeployGet, std::string(rest));
  }

  constexpr std::string_view kSnap = "/v1/snapshots/";
  if (StartsWith(path, kSnap)) {
    std::string_view rest = path.substr(kSnap.size());
    if (EndsWith(rest, "/restore"))
      return only(post, Route::kSnapshotRestore, std::string(rest.substr(0, rest.size() - 8)));
    if (rest.find('/') != std::string_view::npos) return Error(RouteError::kNotFound);
    return only(get, Route::kSnapshotGet, std::string(rest));
  }

  constexpr std::string_view kSecrets = "/v1/secrets/";
  if (StartsWith(path, kSecrets)) {
    std::string_view rest = path.substr(kSecrets.size());
    struct Action {
      std::string_view suffix;
      Route route;
      bool is_get;
    };
    static constexpr Action kActions[] = {{"/versions", Route::kSecretVersions, true},
                                          {"/rotation/status", Route::kRotationStatus, true},
                                          {"/rotation/begin", Route::kRotationBegin, false},
                                          {"/rotation/finish", Route::kRotationFinish, false},
                                          {"/rotation/abort", Route::kRotationAbort, false},
                                          {"/undelete", Route::kSecretUndelete, false},
                                          {"/destroy", Route::kSecretDestroy, false},
                                          {"/rollback", Route::kSecretRollback, false},
                                          {"/floor", Route::kSecretFloor, false}};
    // An action suffix applies to POST (GET for versions); a PUT/GET/DELETE of a path whose
    // last segment happens to be "floor" still addresses that path.
    for (const Action& a : kActions) {
      if (EndsWith(rest, a.suffix) && rest.size() > a.suffix.size() && (a.is_get ? get : post)) {
        return Found(a.route, std::string(rest.substr(0, rest.size() - a.suffix.size())), std::move(q));
      }
    }
    if (get) return Found(Route::kSecretGet, std::string(rest), std::move(q));
    if (put) return Found(Route::kSecretPut, std::string(rest), std::move(q));
    if (del) return Found(Route::kSecretDelete, std::string(rest), std::move(q));
    return Error(RouteError::kMethodNotAllowed);
  }
  // Vault's KV v2 (kv2.h): what no native route claims.
  if (std::optional<RouteResult> kv = MatchKvRoute(method, path, std::move(q))) return std::move(*kv);
  return Error(RouteError::kNotFound);
}

bool IsBlockingRoute(Route r) {
  switch (r) {
    case Route::kHealth:
    case Route::kStatus:
    case Route::kMetrics:
    case Route::kSecretGet:
    case Route::kSecretList:
    case Route::kSnapshotGet:
    case Route::kWatch:  // parks in the watch hub, never blocks a thread
    // KV v2: config, sys/health and sys/mounts touch no store; the unsupported answer at once
    case Route::kKvInfo:
    case Route::kKvUnsupported:
      return false;
    default:
      return true;
  }
}

bool IsStateChanging(Route r) {
  switch (r) {
    case Route::kSecretPut:
    case Route::kSecretDelete:
    case Route::kSecretUndelete:
    case Route::kSecretDestroy:
    case Route::kSecretRollback:
    case Route::kSecretFloor:
    case Route::kTxn:
    case Route::kSnapshotCreate:
    case Route::kSnapshotRestore:
    case Route::kRotate:
    case Route::kSeal:
    case Route::kUnseal:
    case Route::kRecover:
    case Route::kReseal:
    case Route::kRecoveryInit:
    case Route::kBackup:  // a copy of every key's wrap leaves the host: recorded as a change is
    case Route::kDeployBegin:
    case Route::kDeployCommit:
    case Route::kDeployAbort:
    case Route::kRotationBegin:
    case Route::kRotationFinish:
    case Route::kRotationAbort:
    case Route::kLeaseCreate:
    case Route::kLeaseRevoke:
    case Route::kKvWrite:
    case Route::kKvDelete:
    case Route::kKvUndelete:
    case Route::kKvDestroy:
    case Route::kKvDestroyAll:
      return true;
    default:
      return false;
  }
}

}  // namespace sk::api
