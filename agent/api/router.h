// The route table of the v1 API (docs/api.md), as a pure function from method and target
// to a route, so the fuzzer (tests/fuzz/fuzz_api_request.cc) and the tests can call it on
// any bytes.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace sk::api {

enum class Route {
  kHealth,
  kStatus,
  kMetrics,
  kSecretGet,
  kSecretPut,
  kSecretDelete,
  kSecretList,
  kSecretVersions,
  kSecretUndelete,
  kSecretDestroy,
  kSecretRollback,
  kSecretFloor,
  kTxn,
  kSnapshotCreate,
  kSnapshotGet,
  kSnapshotRestore,
  kRotate,
  kSeal,
  kUnseal,
  kRecover,
  kReseal,
  kRecoveryInit,    // POST /v1/sys/recovery {threshold, shares, replace} (docs/recovery.md)
  kRecoveryStatus,  // GET /v1/sys/recovery
  kFleetStatus,     // GET /v1/sys/fleet (docs/fleet.md)
  kBackup,          // GET /v1/sys/backup: a backup file as the body
  kJournalVerify,
  kAuditVerify,
  // Vault's KV v2 under /v1/{mount}/ (kv2.h has the table; the mount is the config's)
  kKvRead,
  kKvWrite,
  kKvDelete,
  kKvUndelete,
  kKvDestroy,
  kKvMetadata,
  kKvList,
  kKvDestroyAll,
  kKvInfo,
  kKvUnsupported,
  kWatch,           // GET /v1/watch: a long poll on the journal (watch.h)
  kDeployList,      // GET /v1/deploys
  kDeployGet,       // GET /v1/deploys/{release}
  kDeployBegin,     // POST /v1/deploys/{release}/begin
  kDeployCommit,    // POST /v1/deploys/{release}/commit
  kDeployAbort,     // POST /v1/deploys/{release}/abort
  kRotationBegin,   // POST /v1/secrets/{path}/rotation/begin (docs/rotation.md)
  kRotationFinish,  // POST /v1/secrets/{path}/rotation/finish
  kRotationAbort,   // POST /v1/secrets/{path}/rotation/abort
  kRotationStatus,  // GET /v1/secrets/{path}/rotation/status
  kLeaseCreate,     // POST /v1/leases {name, ttl} (docs/rotation.md, "Leases")
  kLeaseList,       // GET /v1/leases
  kLeaseRevoke,     // POST /v1/leases/{id}/revoke
};

std::string_view RouteName(Route r);

struct RouteMatch {
  Route route;
  std::string path;  // secret path, snapshot name, or release name
  std::map<std::string, std::string> query;
  std::string mount = {};  // KV v2 routes: the mount the target names (kv2.h)
};

enum class RouteError { kNone, kNotFound, kMethodNotAllowed, kBadTarget };

struct RouteResult {
  std::optional<RouteMatch> match;
  RouteError error = RouteError::kNone;
};

// `target` is the request target ("/v1/secrets/db/pw?version=3"). Query values are
// percent-decoded; a malformed escape or a repeated key is kBadTarget.
RouteResult MatchRoute(std::string_view method, std::string_view target);

// Routes whose work may wait on the disk, the HSM or a commit: they run on the worker
// pool, never on an I/O thread.
bool IsBlockingRoute(Route r);
// Routes that change state: audited synchronously (flushed before the response).
bool IsStateChanging(Route r);

}  // namespace sk::api
