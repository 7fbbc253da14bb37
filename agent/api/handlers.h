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
  // The same for a change made by one Transact (put, delete..., txn, KV writes), called in
  // its place: the record then travels in the change's own store transaction
  // (secrets::Actor::change_record, set on `actor` here), so one sync makes both durable. A
  // failure (the log is down) is the answer, and nothing is changed.
  std::function<Status()> record_in_commit;
};

// "a,b,c" for the audit record of a multi-path request: paths in order, joined by ','
// (no path holds one), at most about 480 bytes, then " (+N more)".
std::string AuditPaths(const std::vector<std::string>& paths);

// A handler's outcome, typed. Api::Handle makes the HTTP answer once, at the end: from
// `answer` when `error` is OK, else the documented error body from `error` (its reason is
// the error code) and `error_extra`. Audit records and alerts read these fields, never a
// body.
struct Reply {
  Status error;        // not OK: the request failed with this
  Json error_extra;    // null, or more fields for the error body (a refused restore's failures)
  ApiResponse answer;  // when `error` is OK: what to send
  // What failed, or ran, was a rollback (a route's, a txn's rollback op, a snapshot restore),
  // so a refusal in `error` is a refused rollback (the RollbackRefused alert), not another
  // op's failure that happens to share its reason (a put's cas_mismatch).
  bool rollback = false;
  // A verification report (journal or audit) that found a problem: the first one's reason.
  std::string tampered;

  Reply Rollback() && {
    rollback = true;
    return std::move(*this);
  }
};

Reply Json200(const Json& body);
Json TxnJson(const secrets::TxnResult& r);

// Snapshots (and releases) are guarded by `cap` on their prefix; the whole store ("")
// needs `admin` on `sys`.
Status AuthorizePrefix(Context& ctx, policy::Capability cap, const std::string& prefix);
// Which versions of `path` the caller's `read` allows, each judged by its own labels
// (`labels[i]` are version i+1's): `may[i]`, and when none is allowed, the denial.
struct ReadableVersions {
  std::vector<bool> may;
  Status denial;  // OK when at least one version is readable
};
ReadableVersions MayReadVersions(Context& ctx, const std::string& path,
                                 const std::vector<secrets::Labels>& labels);
// Whether the caller may learn that `path` exists (`list` on it).
bool Listable(Context& ctx, const std::string& path);
// Restores `info` (its prefix already authorised): every path restored needs `snapshot`
// (and `destroy` to prune), the change is recorded, then restored with `options`. The
// answer names only paths the caller may list, with `kept` whenever `options` may keep
// paths, and the members of `extra` added; a refusal is a rollback refusal.
Reply RestoreChecked(Context& ctx, const secrets::SnapshotInfo& info, const secrets::RestoreOptions& options,
                     const Json& extra = nullptr);
Reply Failure(const Status& st, Json extra = nullptr);
// The policy checks of one change to a secret (a put, delete, undelete, destroy...) beyond
// its route's gate, and its OpGuard, exactly as the native routes make them: for routes
// that change secrets their own way (KV v2, kv2.h).
Status AuthorizeChange(Context& ctx, secrets::Op& op);

Reply HandleHealth(Context& ctx);
Reply HandleStatus(Context& ctx);
Reply HandleSecretGet(Context& ctx);
Reply HandleSecretPut(Context& ctx);
Reply HandleSecretList(Context& ctx);
Reply HandleSecretVersions(Context& ctx);
Reply HandleSecretChange(Context& ctx);  // delete, undelete, destroy, rollback, floor
Reply HandleTxn(Context& ctx);
Reply HandleSnapshotCreate(Context& ctx);
Reply HandleSnapshotGet(Context& ctx);
Reply HandleSnapshotRestore(Context& ctx);
Reply HandleSys(Context& ctx);     // rotate, seal, unseal, recover, reseal, verify
Reply HandleDeploy(Context& ctx);  // /v1/deploys: begin, commit, abort, list, get (deploys.cc)
// /v1/secrets/{path}/rotation/{begin,finish,abort,status} (rotation_handlers.cc)
Reply HandleRotation(Context& ctx);
// /v1/leases: create, list, revoke (lease_handlers.cc)
Reply HandleLease(Context& ctx);
// A one-op change to the route's path: AuthorizeChange, the change record, the commit; the
// answer names the path and the version the op wrote or touched.
Reply CommitOne(Context& ctx, std::vector<secrets::Op> ops);

}  // namespace sk::api
