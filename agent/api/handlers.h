// Internals of Api: the per-request context and the route handlers (handlers.cc).
#pragma once

#include <functional>
#include <memory>

#include "agent/api/api.h"
#include "agent/api/json_util.h"
#include "agent/daemon/agent.h"
#include "agent/policy/capability.h"
#include "agent/secrets/service.h"

namespace sk::api {

struct Context {
  daemon::Agent& agent;
  ApiRequest& req;
  const RouteMatch& match;
  std::shared_ptr<secrets::SecretService> svc;  // null when sealed
  secrets::Actor actor;
  const SecretBytes& cursor_key;  // Api::cursor_key_
  // Checks one more capability on one more path (a txn's ops, a snapshot's paths), under
  // the labels of the path's head (none for the /v1/sys capabilities); a denial comes back
  // as kForbidden and is audited by the caller. Thread-safe: an OpGuard calls it from the
  // committer while the handler waits.
  std::function<Status(policy::Capability, const std::string& path)> authorize;
  // The same under given labels (nullptr: unknown, so label conditions fail): those of the
  // version a request reads, lists or writes.
  std::function<Status(policy::Capability, const std::string& path, const secrets::Labels* labels)>
      authorize_labels;
  // What this request's audit records name when the route's path does not say it: a
  // txn's op paths, a snapshot's name with its prefix or paths (AuditPaths, no values).
  std::string audit_path;
  // Set for every change to secrets (put, delete..., txn, snapshot create/restore): the
  // handler calls it once its own policy checks pass and before it changes anything; it
  // writes (and syncs) the "allowed" record naming audit_path (the route's path when
  // empty). A failure is the answer (503), and nothing is changed.
  std::function<Status()> record_change;
};

// "a,b,c" for the audit record of a multi-path request: paths in order, joined by ','
// (no path holds one), at most about 480 bytes, then " (+N more)".
std::string AuditPaths(const std::vector<std::string>& paths);

ApiResponse Json200(const Json& body);
ApiResponse ErrorResponse(const Context& ctx, const Status& st, const Json* extra = nullptr);

ApiResponse HandleHealth(Context& ctx);
ApiResponse HandleStatus(Context& ctx);
ApiResponse HandleSecretGet(Context& ctx);
ApiResponse HandleSecretPut(Context& ctx);
ApiResponse HandleSecretList(Context& ctx);
ApiResponse HandleSecretVersions(Context& ctx);
ApiResponse HandleSecretChange(Context& ctx);  // delete, undelete, destroy, rollback, floor
ApiResponse HandleTxn(Context& ctx);
ApiResponse HandleSnapshotCreate(Context& ctx);
ApiResponse HandleSnapshotGet(Context& ctx);
ApiResponse HandleSnapshotRestore(Context& ctx);
ApiResponse HandleSys(Context& ctx);  // rotate, seal, unseal, recover, reseal, verify

}  // namespace sk::api
