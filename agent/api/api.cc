// Api::Handle: authorise, audit, dispatch, and map errors.
#include "agent/api/api.h"

#include <array>
#include <chrono>
#include <sstream>

#include "agent/api/handlers.h"
#include "agent/api/kv2.h"
#include "agent/api/watch.h"
#include "agent/audit/audit_record.h"
#include "agent/daemon/systemd.h"
#include "agent/policy/policy.h"
#include "agent/secrets/path.h"
#include "crypto/aead.h"
#include "crypto/locked_pool.h"
#include "crypto/random.h"
#include "crypto/reasons.h"

namespace sk::api {

Api::Api(daemon::Agent& agent)
    : agent_(agent), watches_(std::make_unique<WatchHub>([&agent] { return agent.service(); })) {
  agent_.SetOnCommit([hub = watches_.get()](std::uint64_t) { hub->Notify(); });
  auto key = RandomSecret(kAeadKeySize);
  if (key.ok()) cursor_key_ = std::move(key).value();  // else listing cursors fail: internal
}

Api::~Api() {
  agent_.SetOnCommit({});
  watches_->Stop();
}

void Api::StopWatches() { watches_->Stop(); }

unsigned HttpStatusFor(const Status& st) {
  switch (st.code()) {
    case Code::kOk:
      return 200;
    case Code::kInvalidArgument:
      return 400;
    case Code::kNotFound:
      return 404;
    case Code::kAlreadyExists:
    case Code::kConflict:
    case Code::kFailedPrecondition:
      return 409;
    case Code::kCorruption:
      return 500;
    case Code::kForbidden:
      return 403;
    case Code::kUnauthenticated:
      return 401;
    case Code::kSealed:
      return 503;
    case Code::kTooLarge:
      return 413;
    case Code::kExpired:
      return 410;
    case Code::kUnavailable:
      return 503;
    case Code::kResourceExhausted:
      return 429;
    case Code::kUnimplemented:
      return 501;
    case Code::kInternal:
      return 500;
  }
  return 500;
}

ApiResponse Api::Error(unsigned status, std::string_view code, std::string_view message,
                       std::string_view request_id) {
  ApiResponse r;
  r.status = status;
  r.body = ErrorBody(code, message, request_id);
  return r;
}

namespace {

// The one place a handler's typed outcome becomes HTTP.
ApiResponse ToHttp(const Context& ctx, Reply reply) {
  if (IsKvRoute(ctx.match.route)) return KvToHttp(ctx, std::move(reply));  // Vault's shapes (kv2.h)
  if (reply.error.ok()) return std::move(reply.answer);
  ApiResponse r;
  r.status = HttpStatusFor(reply.error);
  r.body = ErrorBody(reply.error.reason(), reply.error.message(), ctx.req.request_id,
                     reply.error_extra.is_null() ? nullptr : &reply.error_extra);
  return r;
}

}  // namespace

namespace {

using policy::Capability;

// Idempotency keys are the caller's own: its uid and systemd unit scope them.
std::string IdempotencyScope(const policy::Subject& s) {
  // Two user units of one uid are two callers too; without one the scope is as before.
  return "uid=" + std::to_string(s.uid) + " unit=" + s.unit +
         (s.user_unit.empty() ? std::string() : " user_unit=" + s.user_unit);
}

std::string ActorText(const ApiRequest& req) {
  const policy::Subject& s = req.subject;
  std::ostringstream out;
  out << "uid=" << s.uid << " gid=" << s.gid << " pid=" << s.pid;
  if (!s.user.empty()) out << " user=" << s.user;
  if (!s.unit.empty()) out << " unit=" << s.unit;
  if (!s.user_unit.empty()) out << " user_unit=" << s.user_unit;
  if (!s.exe.empty()) out << " exe=" << s.exe;
  out << " req=" << req.request_id;
  return out.str().substr(0, 500);
}

// Whose labels a policy check of a secret path is evaluated with.
enum class LabelsOf : std::uint8_t {
  kNone,          // /v1/sys: no secret
  kHead,          // the path's latest version
  kQueryVersion,  // the version ?version=n names (the head without it)
};

// The capability and path the request as a whole needs; nullopt when the handler checks
// per item (list, versions, put, txn, snapshots: their labels or paths come from the body
// or the store) or nothing is needed (health; metrics unless the config protects it).
struct Need {
  Capability cap;
  std::string path;
  LabelsOf labels = LabelsOf::kHead;
};

Need Sys(Capability cap) { return Need{cap, std::string(policy::kAdminPath), LabelsOf::kNone}; }

std::optional<Need> NeedFor(const RouteMatch& m, bool metrics_require_auth) {
  switch (m.route) {
    case Route::kHealth:
    case Route::kSecretList:
    case Route::kSecretVersions:
    case Route::kSecretPut:
    case Route::kTxn:
    case Route::kSnapshotCreate:
    case Route::kSnapshotGet:
    case Route::kSnapshotRestore:
      return std::nullopt;
    case Route::kMetrics:
      if (!metrics_require_auth) return std::nullopt;
      return Sys(Capability::kSysRead);
    case Route::kSecretGet:
      return Need{Capability::kRead, m.path, LabelsOf::kQueryVersion};
    case Route::kSecretDelete:
    case Route::kSecretUndelete:
      return Need{Capability::kDelete, m.path};
    case Route::kSecretDestroy:
      return Need{Capability::kDestroy, m.path};
    case Route::kRotationBegin:
    case Route::kRotationFinish:
    case Route::kRotationAbort:
      return Need{Capability::kRotate, m.path};
    case Route::kRotationStatus:
      return Need{Capability::kList, m.path};
    case Route::kSecretRollback:
    case Route::kSecretFloor:
      return Need{Capability::kRollback, m.path};
    case Route::kStatus:
    case Route::kJournalVerify:
    case Route::kAuditVerify:
      return Sys(Capability::kSysRead);
    case Route::kRotate:
      return Sys(Capability::kRotate);
    case Route::kSeal:
    case Route::kUnseal:
      return Sys(Capability::kSeal);
    case Route::kRecover:
      return Sys(Capability::kRecover);
    case Route::kReseal:
      return Sys(Capability::kReseal);
    case Route::kRecoveryInit:
    case Route::kBackup:
      return Sys(Capability::kAdmin);
    case Route::kRecoveryStatus:
    case Route::kFleetStatus:
      return Sys(Capability::kSysRead);
    case Route::kWatch:  // Api::Watch shows only what the caller may list
    case Route::kDeployList:
    case Route::kDeployGet:
    case Route::kDeployBegin:
    case Route::kDeployCommit:
    case Route::kDeployAbort:  // the handlers check `snapshot` on the release's prefix and paths
    case Route::kLeaseCreate:  // the handlers check `lease` on the lease's name
    case Route::kLeaseList:
    case Route::kLeaseRevoke:
      return std::nullopt;
    case Route::kKvRead:  // the KV handlers check per path and version, as the native routes
    case Route::kKvWrite:
    case Route::kKvDelete:
    case Route::kKvUndelete:
    case Route::kKvDestroy:
    case Route::kKvMetadata:
    case Route::kKvList:
    case Route::kKvDestroyAll:
    case Route::kKvInfo:  // config, sys/health, sys/mounts: nothing secret
    case Route::kKvUnsupported:
      return std::nullopt;
  }
  return std::nullopt;
}

// The version ?version=n asks for, when it is a well-formed number (the handler refuses
// anything else with 400); nullopt otherwise.
std::optional<std::uint64_t> QueriedVersion(const RouteMatch& m) {
  auto it = m.query.find("version");
  if (it == m.query.end()) return std::nullopt;
  const std::string& v = it->second;
  if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::stoull(v);
}

bool NeedsService(Route r) {
  switch (r) {
    case Route::kHealth:
    case Route::kStatus:
    case Route::kMetrics:
    case Route::kSeal:
    case Route::kUnseal:
    case Route::kRecover:
    case Route::kFleetStatus:  // what the fleet sync knows, sealed or not
    case Route::kKvInfo:       // sys/health answers while sealed, as Vault's
    case Route::kKvUnsupported:
      return false;
    default:
      return true;
  }
}

bool IsSecretRoute(Route r) {
  switch (r) {
    case Route::kSecretGet:
    case Route::kSecretPut:
    case Route::kSecretDelete:
    case Route::kSecretVersions:
    case Route::kSecretUndelete:
    case Route::kSecretDestroy:
    case Route::kSecretRollback:
    case Route::kSecretFloor:
    case Route::kRotationBegin:
    case Route::kRotationFinish:
    case Route::kRotationAbort:
    case Route::kRotationStatus:
      return true;
    default:
      return false;
  }
}

// Routes whose handler writes the pre-change record itself (Context::record_change), once
// its own per-op or per-path policy checks have passed: every change to secrets.
bool DefersChangeRecord(Route r) {
  return IsSecretRoute(r) || r == Route::kTxn || r == Route::kSnapshotCreate ||
         r == Route::kSnapshotRestore || r == Route::kDeployBegin || r == Route::kDeployCommit ||
         r == Route::kDeployAbort || r == Route::kLeaseCreate || r == Route::kLeaseRevoke ||
         (IsKvRoute(r) && IsStateChanging(r));
}

// A record the audit log refused: the alert, unless the agent is only sealed (its records
// then wait in the sealed queue).
void RaiseAuditUnavailable(daemon::Agent& agent, const Status& st, const std::string& request_id) {
  if (st.code() == Code::kSealed) return;
  alerts::Alert a;
  a.kind = alerts::AlertKind::kAuditUnavailable;
  a.message = "the audit log cannot be written: " + st.ToString();
  a.request_id = request_id;
  a.reason = std::string(st.reason());
  agent.alerts().Raise(std::move(a));
}

}  // namespace

struct Api::Impl {
  // Decides (cap, path) for this caller under `labels` (nullptr: unknown): `pol` when a
  // policy is configured, else the built-in rule (root and the agent's own user may do
  // everything).
  static Status Authorize(const daemon::Agent& agent, const policy::Policy* pol, const ApiRequest& req,
                          Capability cap, const std::string& path, const secrets::Labels* labels) {
    if (pol == nullptr) {
      if (req.subject.uid == 0 || req.subject.uid == agent.own_uid()) return OkStatus();
      return Status(Code::kForbidden, "forbidden",
                    "only root and the agent's own user may call sealkeepd when no policy is configured");
    }
    std::optional<policy::Labels> converted;
    if (labels != nullptr) converted.emplace(labels->begin(), labels->end());
    policy::Request pr{req.subject, cap, path, converted ? &*converted : nullptr};
    policy::Decision d = pol->Evaluate(pr);
    if (d.allowed) return OkStatus();
    // The same answer whether or not the path exists: nothing is revealed to a caller
    // who may not list it.
    return Status(Code::kForbidden, "forbidden",
                  "not allowed to " + std::string(policy::CapabilityName(cap)) + " " + path + " (" +
                      std::string(d.Reason()) + ")");
  }

  // The labels a check of `path` is evaluated with: the head's (or version `version`'s,
  // falling back to the head's when there is no such version); nullopt when the path has
  // none or the check is about /v1/sys.
  static std::optional<secrets::Labels> LabelsFor(const std::shared_ptr<secrets::SecretService>& svc,
                                                  LabelsOf which, const std::string& path,
                                                  std::optional<std::uint64_t> version) {
    if (!svc || which == LabelsOf::kNone || !secrets::ValidatePath(path).ok()) return std::nullopt;
    if (which == LabelsOf::kQueryVersion && version) {
      auto all = svc->VersionLabels(path);
      if (all.ok() && *version >= 1 && *version <= all->size()) return std::move((*all)[*version - 1]);
    }
    auto head = svc->PathLabels(path);
    if (!head.ok()) return std::nullopt;
    return std::move(head).value();
  }

  // Records the request. `path` is what the record names (the route's path, or a txn's
  // op paths); `may_queue`: while sealed the record may wait for the next unseal (it
  // gates no change to the store).
  static void Audit(daemon::Agent& agent, const ApiRequest& req, const RouteMatch& m, const std::string& path,
                    audit::AuditOutcome outcome, std::string_view reason, bool sync, bool may_queue,
                    Status* failure) {
    if (!agent.audit_enabled()) return;
    audit::AuditRecord rec = RecordOf(req, m, path, outcome, reason);
    Status st = agent.Audit(
        rec, sync ? audit::AuditWriter::Durability::kSync : audit::AuditWriter::Durability::kBuffered,
        may_queue);
    if (!st.ok()) {
      RaiseAuditUnavailable(agent, st, req.request_id);
      if (failure != nullptr) *failure = st;
    }
  }

  static audit::AuditRecord RecordOf(const ApiRequest& req, const RouteMatch& m, const std::string& path,
                                     audit::AuditOutcome outcome, std::string_view reason) {
    audit::AuditRecord rec;
    rec.request_id = req.request_id;
    rec.peer = {req.subject.uid, req.subject.gid, req.subject.pid, req.subject.unit, req.subject.exe};
    rec.route = req.method + " " + std::string(RouteName(m.route));
    if (req.vault_token) rec.route += " (X-Vault-Token ignored)";  // identity is the kernel's (kv2.h)
    rec.path = path.substr(0, 512);
    rec.outcome = outcome;
    rec.reason = std::string(reason.substr(0, 200));
    return rec;
  }

  // The "allowed" record written (synced) before a change; a failure is the answer.
  static Status RecordChange(daemon::Agent& agent, const ApiRequest& req, const RouteMatch& m,
                             const std::string& path) {
    Status failure;
    Audit(agent, req, m, path, audit::AuditOutcome::kAllowed, "allowed", true, !NeedsService(m.route),
          &failure);
    if (failure.ok()) return OkStatus();
    if (failure.code() == Code::kSealed) return failure;
    return Status(
        Code::kUnavailable, "audit_unavailable",
        "the audit log cannot be written, so nothing is changed: " + std::string(failure.message()));
  }

  static void Alert(daemon::Agent& agent, const ApiRequest& req, const RouteMatch& m, alerts::AlertKind kind,
                    const std::string& message, std::string_view reason) {
    alerts::Alert a;
    a.kind = kind;
    a.message = message;
    a.request_id = req.request_id;
    a.uid = req.subject.uid;
    a.pid = req.subject.pid;
    a.unit = req.subject.unit;
    a.path = m.path;
    a.reason = std::string(reason);
    agent.alerts().Raise(std::move(a));
  }
};

ApiResponse Api::Handle(ApiRequest& req, const RouteMatch& m) {
  // A KV v2 target of another mount, or with the facade off: no route, as if not there.
  if (IsKvRoute(m.route) && !KvMountServed(m, agent_.config().kv_mount))
    return Error(404, "no_route", "no such route", req.request_id);
  ++requests_;
  std::shared_ptr<secrets::SecretService> svc = agent_.service();
  // One policy for the whole request, even if a reload lands meanwhile.
  std::shared_ptr<const policy::Policy> pol = agent_.policy();
  const bool changes = IsStateChanging(m.route);
  // Only changes are journaled with who asked; reads skip building the text.
  secrets::Actor actor;
  if (changes) {
    actor.text = ActorText(req);
    actor.idempotency_scope = IdempotencyScope(req.subject);
  }
  Context ctx{agent_, req, m, svc, std::move(actor), cursor_key_, {}, {}, {}, {}, {}};
  ctx.authorize_labels = [this, &req, pol](Capability cap, const std::string& path,
                                           const secrets::Labels* labels) {
    return Impl::Authorize(agent_, pol.get(), req, cap, path, labels);
  };
  ctx.authorize = [this, &req, svc, pol](Capability cap, const std::string& path) {
    std::optional<secrets::Labels> labels = Impl::LabelsFor(
        svc, policy::IsSysCapability(cap) && path == policy::kAdminPath ? LabelsOf::kNone : LabelsOf::kHead,
        path, std::nullopt);
    return Impl::Authorize(agent_, pol.get(), req, cap, path, labels ? &*labels : nullptr);
  };
  auto finish = [&](ApiResponse r) {
    if (r.status >= 500)
      ++errors_5xx_;
    else if (r.status >= 400)
      ++errors_4xx_;
    return r;
  };

  // What the records of this request name: the route's path unless a handler says more.
  auto audit_path = [&]() -> const std::string& { return ctx.audit_path.empty() ? m.path : ctx.audit_path; };
  auto failed = [&](const Status& st) {
    Impl::Audit(agent_, req, m, audit_path(), audit::AuditOutcome::kFailed, st.reason(), changes, true,
                nullptr);
    return finish(ToHttp(ctx, Failure(st)));
  };

  if (IsSecretRoute(m.route)) {
    if (Status st = secrets::ValidatePath(m.path); !st.ok()) return failed(st);
  }
  if (std::optional<Need> need = NeedFor(m, agent_.config().metrics_require_auth)) {
    std::optional<secrets::Labels> labels = Impl::LabelsFor(svc, need->labels, need->path, QueriedVersion(m));
    Status allowed =
        Impl::Authorize(agent_, pol.get(), req, need->cap, need->path, labels ? &*labels : nullptr);
    if (!allowed.ok()) {
      ++denied_;
      Impl::Audit(agent_, req, m, m.path, audit::AuditOutcome::kDenied, allowed.message(), changes, true,
                  nullptr);
      Impl::Alert(agent_, req, m, alerts::AlertKind::kDenied,
                  "request denied: " + std::string(allowed.message()), "forbidden");
      return finish(ToHttp(ctx, Failure(allowed)));
    }
  }
  if (m.route == Route::kHealth) return finish(ToHttp(ctx, HandleHealth(ctx)));
  if (NeedsService(m.route) && !svc) return failed(agent_.sealed_status());

  // A change's record kept in its own commit (record_in_commit): whether it reached the log.
  struct InCommit {
    bool armed = false;
    bool written = false;
    secrets::ChangeRecord kept;
  };
  auto in_commit = std::make_shared<InCommit>();
  if (changes) {
    if (DefersChangeRecord(m.route)) {
      // These check the policy per op or per path first; the record follows those checks.
      ctx.record_change = [this, &req, &m, &audit_path] {
        return Impl::RecordChange(agent_, req, m, audit_path());
      };
      ctx.record_in_commit = [this, &req, &m, &audit_path, &ctx, in_commit]() -> Status {
        if (!agent_.audit_enabled()) return OkStatus();
        std::shared_ptr<audit::AuditWriter> log = agent_.audit();
        // The log is down (or the agent sealed meanwhile): the synced record says why, and
        // retries the log, as before any change.
        if (!log || log->failed()) return Impl::RecordChange(agent_, req, m, audit_path());
        in_commit->armed = true;
        ctx.actor.change_record = [this, in_commit,
                                   rec = Impl::RecordOf(req, m, audit_path(), audit::AuditOutcome::kAllowed,
                                                        "allowed")]() -> Result<secrets::ChangeRecord> {
          // Once per request: a retried Transact (ApplyAll) keeps the same record.
          if (!in_commit->written) {
            Result<secrets::ChangeRecord> kept = agent_.KeepChangeRecord(rec);
            if (!kept.ok()) {
              if (kept.status().code() == Code::kSealed) return kept.status();
              return Status(Code::kUnavailable, "audit_unavailable",
                            "the audit log cannot be written, so nothing is changed: " +
                                std::string(kept.status().message()));
            }
            in_commit->kept = std::move(kept).value();
            in_commit->written = true;
          }
          return in_commit->kept;
        };
        return OkStatus();
      };
    } else if (Status st = Impl::RecordChange(agent_, req, m, m.path); !st.ok()) {
      return finish(ToHttp(ctx, Failure(st)));
    }
  }

  Reply r = Dispatch(ctx);
  // A change that never reached its commit (refused first): its "allowed" record goes
  // before the outcome's, as for every change.
  if (in_commit->armed && !in_commit->written) (void)Impl::RecordChange(agent_, req, m, audit_path());

  // The outcome on record, and alerts for what a monitor must see, from the typed reply.
  if (!r.error.ok()) {
    const std::string reason(r.error.reason());
    // The store changed behind the service's back (per-commit check): the agent seals
    // itself now, so health and sys/recover say so at once.
    if (reason == sk::reason::kReplayDetected) agent_.SealIfFenced();
    const unsigned http = HttpStatusFor(r.error);
    const bool denied = http == 403;
    Impl::Audit(agent_, req, m, audit_path(),
                denied ? audit::AuditOutcome::kDenied : audit::AuditOutcome::kFailed, reason, changes, true,
                nullptr);
    if (denied) {
      ++denied_;
      Impl::Alert(agent_, req, m, alerts::AlertKind::kDenied, "request denied", reason);
    } else if (r.rollback && sk::reason::IsRollbackRefusal(reason)) {
      Impl::Alert(agent_, req, m, alerts::AlertKind::kRollbackRefused, "rollback refused: " + reason, reason);
    }
    if (http == 500 && sk::reason::IsTampering(reason)) {
      Impl::Alert(agent_, req, m, alerts::AlertKind::kTamperDetected,
                  "stored data does not verify: " + reason, reason);
    }
  } else if (!r.tampered.empty()) {
    const std::string tamper = r.tampered.substr(0, 64);
    Impl::Audit(agent_, req, m, audit_path(), audit::AuditOutcome::kAllowed, "tamper_detected: " + tamper,
                false, true, nullptr);
    Impl::Alert(agent_, req, m, alerts::AlertKind::kTamperDetected,
                std::string(m.route == Route::kAuditVerify ? "the audit log" : "the journal") +
                    " does not verify: " + tamper,
                tamper);
  } else if (!changes && m.route != Route::kMetrics) {
    Status failure;
    Impl::Audit(agent_, req, m, audit_path(), audit::AuditOutcome::kAllowed, "ok", false, true, &failure);
    // A value is given only once its read is on record (docs/design.md: fail closed).
    if (!failure.ok() && (m.route == Route::kSecretGet || m.route == Route::kKvRead)) {
      SecureWipe(r.answer.body.data(), r.answer.body.size());
      return finish(ToHttp(ctx, Failure(Status(Code::kUnavailable, "audit_unavailable",
                                               "the audit log cannot be written, so no value is served: " +
                                                   std::string(failure.message())))));
    }
  }
  return finish(ToHttp(ctx, std::move(r)));
}

Reply Api::Dispatch(Context& ctx) const {
  if (IsKvRoute(ctx.match.route)) return HandleKv(ctx);
  switch (ctx.match.route) {
    case Route::kHealth:
      return HandleHealth(ctx);
    case Route::kStatus:
      return HandleStatus(ctx);
    case Route::kMetrics: {
      Reply r;
      r.answer.body = MetricsText();
      r.answer.content_type = "text/plain; version=0.0.4";
      return r;
    }
    case Route::kSecretGet:
      return HandleSecretGet(ctx);
    case Route::kSecretPut:
      return HandleSecretPut(ctx);
    case Route::kSecretList:
      return HandleSecretList(ctx);
    case Route::kSecretVersions:
      return HandleSecretVersions(ctx);
    case Route::kSecretDelete:
    case Route::kSecretUndelete:
    case Route::kSecretDestroy:
    case Route::kSecretRollback:
    case Route::kSecretFloor:
      return HandleSecretChange(ctx);
    case Route::kTxn:
      return HandleTxn(ctx);
    case Route::kSnapshotCreate:
      return HandleSnapshotCreate(ctx);
    case Route::kSnapshotGet:
      return HandleSnapshotGet(ctx);
    case Route::kSnapshotRestore:
      return HandleSnapshotRestore(ctx);
    case Route::kDeployList:
    case Route::kDeployGet:
    case Route::kDeployBegin:
    case Route::kDeployCommit:
    case Route::kDeployAbort:
      return HandleDeploy(ctx);
    case Route::kRotationBegin:
    case Route::kRotationFinish:
    case Route::kRotationAbort:
    case Route::kRotationStatus:
      return HandleRotation(ctx);
    case Route::kLeaseCreate:
    case Route::kLeaseList:
    case Route::kLeaseRevoke:
      return HandleLease(ctx);
    case Route::kWatch:
      return Failure(Internal("GET /v1/watch is served by Api::Watch"));
    default:
      return HandleSys(ctx);
  }
}

namespace {

// One creds.sock answer on the audit record: the route names what was asked for, the peer
// is who asked (its real unit, from its cgroup). Denials also raise the denied alert.
// Returns why the record could not be written (the value must not be given then).
Status RecordCredential(daemon::Agent& agent, const policy::Subject& peer, const std::string& asked,
                        const std::string& path, audit::AuditOutcome outcome, std::string_view reason,
                        const std::string& request_id, const std::string& message) {
  Status recorded;
  if (agent.audit_enabled()) {
    audit::AuditRecord rec;
    rec.request_id = request_id;
    rec.peer = {peer.uid, peer.gid, peer.pid, peer.unit, peer.exe};
    rec.route = "CREDENTIAL " + asked.substr(0, 300);
    rec.path = path.substr(0, 512);
    rec.outcome = outcome;
    rec.reason = std::string(reason.substr(0, 200));
    recorded = agent.Audit(rec, audit::AuditWriter::Durability::kBuffered, /*may_queue=*/true);
    if (!recorded.ok()) RaiseAuditUnavailable(agent, recorded, request_id);
  }
  if (outcome == audit::AuditOutcome::kDenied) {
    alerts::Alert a;
    a.kind = alerts::AlertKind::kDenied;
    a.message = "credential request denied: " + message;
    a.request_id = request_id;
    a.uid = peer.uid;
    a.pid = peer.pid;
    a.unit = peer.unit;
    a.path = path;
    a.reason = std::string(reason);
    agent.alerts().Raise(std::move(a));
  }
  return recorded;
}

}  // namespace

Result<SecretBytes> Api::ServeCredential(const policy::Subject& peer, const std::string& unit,
                                         const std::string& id, const std::string& request_id) {
  ++requests_;
  const std::string asked = unit + "/" + id;
  // systemd asks from a process already in the unit's cgroup: a caller naming another
  // unit than its own is not the service manager starting that unit.
  if (peer.unit != unit) {
    ++denied_;
    ++errors_4xx_;
    Status st(Code::kForbidden, "unit_mismatch",
              "the caller is in unit '" + (peer.unit.empty() ? std::string("(none)") : peer.unit) +
                  "', not '" + unit + "'");
    (void)RecordCredential(agent_, peer, asked, "", audit::AuditOutcome::kDenied, "unit_mismatch", request_id,
                           std::string(st.message()));
    return st;
  }
  std::shared_ptr<const policy::Policy> pol = agent_.policy();
  const policy::CredentialGrant* grant = pol ? pol->FindCredential(unit, id) : nullptr;
  if (grant == nullptr) {
    ++denied_;
    ++errors_4xx_;
    Status st(Code::kForbidden, "no_credential",
              "no [[credentials]] entry in the policy gives credential '" + id + "' to unit '" + unit + "'");
    (void)RecordCredential(agent_, peer, asked, "", audit::AuditOutcome::kDenied, "no_credential", request_id,
                           std::string(st.message()));
    return st;
  }
  std::shared_ptr<secrets::SecretService> svc = agent_.service();
  if (!svc) {
    ++errors_5xx_;
    Status st = agent_.sealed_status();
    (void)RecordCredential(agent_, peer, asked, grant->path, audit::AuditOutcome::kFailed, st.reason(),
                           request_id, "");
    return st;
  }
  auto got = svc->Get(grant->path, std::nullopt);
  if (!got.ok()) {
    (HttpStatusFor(got.status()) >= 500 ? errors_5xx_ : errors_4xx_)++;
    (void)RecordCredential(agent_, peer, asked, grant->path, audit::AuditOutcome::kFailed,
                           got.status().reason(), request_id, "");
    return got.status();
  }
  // The value goes out only once its record is in the log (docs/design.md: fail closed).
  if (Status recorded = RecordCredential(agent_, peer, asked, grant->path, audit::AuditOutcome::kAllowed,
                                         "ok", request_id, "");
      !recorded.ok()) {
    ++errors_5xx_;
    return Status(
        Code::kUnavailable, "audit_unavailable",
        "the audit log cannot be written, so no credential is given: " + std::string(recorded.message()));
  }
  return std::move(got->value);
}

void Api::RefuseCredential(const policy::Subject& peer, const std::string& request_id,
                           const std::string& asked, std::string_view reason, const std::string& message) {
  const bool denied = reason != "send_failed";
  if (denied) {
    ++requests_;
    ++denied_;
    ++errors_4xx_;
  }
  daemon::Log(daemon::LogLevel::kWarning, "creds.sock: request " + request_id + " refused: " + message);
  (void)RecordCredential(agent_, peer, asked, "",
                         denied ? audit::AuditOutcome::kDenied : audit::AuditOutcome::kFailed, reason,
                         request_id, message);
}

namespace {

// ?after=N, ?timeout_s=T: decimal, T in [0, 300] (0: answer at once).
Result<std::uint64_t> QueryNumber(const RouteMatch& m, const char* key, std::uint64_t fallback,
                                  std::uint64_t lo, std::uint64_t hi) {
  auto it = m.query.find(key);
  if (it == m.query.end()) return fallback;
  const std::string& v = it->second;
  if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos ||
      std::stoull(v) < lo || std::stoull(v) > hi) {
    return InvalidArgument("'" + std::string(key) + "' must be a whole number from " + std::to_string(lo) +
                               " to " + std::to_string(hi),
                           "bad_request");
  }
  return std::stoull(v);
}

}  // namespace

void Api::ForgetWatches() { watches_->Forget(); }

void Api::Watch(ApiRequest& req, const RouteMatch& m, std::shared_ptr<std::atomic<bool>> gone,
                std::function<void(ApiResponse)> done) {
  ++requests_;
  const std::string id = req.request_id;
  auto answer = [this, id, done](Reply r) {
    ApiResponse http;
    if (r.error.ok()) {
      http = std::move(r.answer);
    } else {
      http.status = HttpStatusFor(r.error);
      http.body = ErrorBody(r.error.reason(), r.error.message(), id);
    }
    if (http.status >= 500) {
      ++errors_5xx_;
    } else if (http.status >= 400) {
      ++errors_4xx_;
    }
    done(std::move(http));
  };
  std::string prefix;
  if (auto p = m.query.find("prefix"); p != m.query.end()) prefix = p->second;
  Status bad = secrets::ValidatePrefix(prefix);
  auto timeout = QueryNumber(m, "timeout_s", 30, 0, 300);
  auto svc = agent_.service();
  auto after = QueryNumber(m, "after", svc ? svc->HeadSeq() : 0, 0, ~std::uint64_t{0} >> 1);
  if (bad.ok() && !timeout.ok()) bad = timeout.status();
  if (bad.ok() && !after.ok()) bad = after.status();
  if (bad.ok() && !svc) bad = agent_.sealed_status();
  if (bad.ok() && *after > svc->HeadSeq()) {
    bad =
        InvalidArgument("'after' (" + std::to_string(*after) + ") is past the journal head (" +
                            std::to_string(svc->HeadSeq()) + "): this is not the journal that seq came from",
                        "after_past_head");
  }
  Impl::Audit(agent_, req, m, prefix, bad.ok() ? audit::AuditOutcome::kAllowed : audit::AuditOutcome::kFailed,
              bad.ok() ? "ok" : bad.reason(), false, true, nullptr);
  if (!bad.ok()) return answer(Failure(bad));
  // What the caller may see: each path it may `list` (the same test as a listing), under
  // the policy in force now and the path's labels when the change is reported.
  std::shared_ptr<const policy::Policy> pol = agent_.policy();
  auto visible = [this, pol, subject = req.subject](const std::string& path) {
    if (!pol) return subject.uid == 0 || subject.uid == agent_.own_uid();
    std::optional<policy::Labels> labels;
    if (auto s = agent_.service()) {
      if (auto l = s->PathLabels(path); l.ok()) labels.emplace(l->begin(), l->end());
    }
    return pol->MayLearnExists(subject, path, labels ? &*labels : nullptr, std::chrono::system_clock::now());
  };
  WatchHub::Waiter w;
  w.prefix = std::move(prefix);
  w.after = *after;
  w.deadline = WatchHub::Clock::now() + std::chrono::seconds(*timeout);
  w.visible = std::move(visible);
  w.done = std::move(answer);
  w.gone = std::move(gone);
  watches_->Watch(std::move(w));
}

std::string Api::MetricsText() const {
  std::ostringstream out;
  auto metric = [&](const char* name, const char* type, const char* help, auto value) {
    out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n"
        << name << " " << value << "\n";
  };
  metric("sealkeep_requests_total", "counter", "API requests handled", requests_.load());
  metric("sealkeep_responses_4xx_total", "counter", "Requests answered with a 4xx status",
         errors_4xx_.load());
  metric("sealkeep_responses_5xx_total", "counter", "Requests answered with a 5xx status",
         errors_5xx_.load());
  metric("sealkeep_denied_total", "counter", "Requests denied by policy", denied_.load());
  metric("sealkeep_connections_open", "gauge", "Open client connections", open_connections_.load());
  metric("sealkeep_connections_refused_total", "counter", "Connections refused at a limit",
         refused_connections_.load());
  metric("sealkeep_watches_parked", "gauge", "GET /v1/watch requests waiting for a change",
         watches_->parked());
  std::shared_ptr<secrets::SecretService> svc = agent_.service();
  metric("sealkeep_sealed", "gauge", "1 while the agent is sealed", svc ? 0 : 1);
  metric("sealkeep_uptime_seconds", "gauge", "Seconds since start", agent_.uptime_s());
  metric("sealkeep_audit_sealed_queued", "gauge",
         "Audit records of requests made while sealed, waiting for the audit log",
         agent_.sealed_audit_queued());
  metric("sealkeep_audit_sealed_dropped", "gauge",
         "Audit records made while sealed that did not fit in the queue (since the last unseal)",
         agent_.sealed_audit_dropped());
  if (daemon::FleetSync* fleet = agent_.fleet(); fleet != nullptr) {
    const daemon::FleetSync::State f = fleet->Report();
    metric("sealkeep_fleet_applied_seq", "gauge", "The last fleet journal entry this host applied",
           f.applied_seq);
    metric("sealkeep_fleet_db_head_seq", "gauge", "The fleet database's head as last seen", f.db_head_seq);
    metric("sealkeep_fleet_lag_entries", "gauge",
           "Fleet entries the database holds that this host has not applied",
           f.db_head_seq > f.applied_seq ? f.db_head_seq - f.applied_seq : 0);
    const double since =
        f.last_success_ms == 0
            ? -1.0
            : static_cast<double>(static_cast<std::int64_t>(daemon::FleetSync::NowMs() - f.last_success_ms)) /
                  1000.0;
    metric("sealkeep_fleet_seconds_since_pull", "gauge",
           "Seconds since a pull of the fleet journal last succeeded (-1: none since start)", since);
    metric("sealkeep_fleet_db_reachable", "gauge", "1 when the last attempt reached the fleet database",
           f.db_reachable ? 1 : 0);
    metric("sealkeep_fleet_refusing", "gauge", "1 while this host refuses what the fleet database offers",
           f.refusal_reason.empty() ? 0 : 1);
    metric("sealkeep_fleet_refusals_total", "counter", "Pulls that ended in a refusal", f.refusals);
    metric("sealkeep_fleet_applied_entries_total", "counter", "Fleet entries applied since start",
           f.applied_entries);
  }
  if (svc) {
    secrets::ServiceStatus s = svc->Report();
    metric("sealkeep_journal_head_seq", "gauge", "Global sequence number of the journal head", s.head_seq);
    metric("sealkeep_anchor_seq", "gauge", "Sequence number held by the hardware anchor", s.anchor.seq);
    metric("sealkeep_anchor_advances_total", "counter", "Hardware anchor updates", s.anchor_advances);
    metric("sealkeep_commits_total", "counter", "Transactions committed", s.commits);
    metric("sealkeep_commit_batches_total", "counter", "Store transactions (group commits)", s.batches);
    metric("sealkeep_journal_problems", "gauge", "Journal entries that failed verification at start",
           s.journal_problems);
    metric("sealkeep_dek_cache_hits_total", "counter", "Data keys served from the cache", s.dek_cache_hits);
    metric("sealkeep_dek_cache_misses_total", "counter", "Data keys unwrapped by the backend",
           s.dek_cache_misses);
    metric("sealkeep_dek_cache_entries", "gauge", "Data keys in the cache", s.dek_cache_size);
    metric("sealkeep_master_key_generation", "gauge", "Current master-key generation",
           s.backend.current_generation);
    // Lifetimes: one pass over the index, no I/O (docs/rotation.md).
    const auto now_ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                       std::chrono::system_clock::now().time_since_epoch())
                                                       .count());
    secrets::LifetimeReport life = svc->Lifetimes(now_ms, 0);
    out << "# HELP sealkeep_secrets_expiring Secrets whose current version expires within the window\n"
           "# TYPE sealkeep_secrets_expiring gauge\n"
        << "sealkeep_secrets_expiring{within=\"1d\"} " << life.within_1d << "\n"
        << "sealkeep_secrets_expiring{within=\"7d\"} " << life.within_7d << "\n"
        << "sealkeep_secrets_expiring{within=\"30d\"} " << life.within_30d << "\n";
    metric("sealkeep_secrets_expired", "gauge", "Secrets whose current version has expired", life.expired);
    metric("sealkeep_rotations_due", "gauge",
           "Secrets whose rotation schedule (label sealkeep.rotation) is due", life.rotations_due);
    metric("sealkeep_rotations_pending", "gauge",
           "Secrets with a rotation begun and not yet finished or aborted", life.rotations_pending);
    // Leases by state (docs/rotation.md): revoking ones are drops the sweep keeps retrying.
    std::array<std::uint64_t, 5> by_state{};
    for (const secrets::LeaseRecord& l : svc->Leases()) ++by_state[static_cast<std::size_t>(l.state)];
    out << "# HELP sealkeep_leases Leased database users by state\n# TYPE sealkeep_leases gauge\n";
    for (secrets::LeaseState st : {secrets::LeaseState::kCreating, secrets::LeaseState::kActive,
                                   secrets::LeaseState::kRevoking, secrets::LeaseState::kFailed}) {
      out << "sealkeep_leases{state=\"" << secrets::LeaseStateName(st) << "\"} "
          << by_state[static_cast<std::size_t>(st)] << "\n";
    }
  }
  out << agent_.alerts().MetricsText();
  return out.str();
}

}  // namespace sk::api
