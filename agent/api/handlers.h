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
  // Checks one more capability on one more path (a txn's ops, a snapshot's paths);
  // a denial comes back as kForbidden and is audited by the caller.
  std::function<Status(policy::Capability, const std::string& path)> authorize;
};

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
