// Leased database users over HTTP (docs/rotation.md "Leases"; the work: LeaseBroker):
//   POST /v1/leases               {name, ttl}  -> the lease and its login, given once
//   GET  /v1/leases[?all=1]                    -> the leases the caller may see
//   POST /v1/leases/{id}/revoke                -> its state after the attempt
// Each needs `lease` on the lease's name (the [[lease]] kind in rotation.toml, a path); a
// listing shows only the leases whose name the caller may lease. Revoked leases are listed
// only with ?all=1. The password is in the create answer only, never in a record or a log.
#include <string>

#include "agent/api/handlers.h"
#include "agent/daemon/lease_broker.h"
#include "agent/secrets/path.h"

namespace sk::api {
namespace {

using secrets::LeaseRecord;

Json LeaseJson(const daemon::LeaseBroker::Listed& l) {
  const LeaseRecord& r = l.record;
  Json j = {{"id", r.id},
            {"name", r.name},
            {"role", r.role},
            {"state", secrets::LeaseStateName(r.state)},
            {"created_ms", r.created_ms},
            {"expires_ms", r.expires_ms},
            {"updated_ms", r.updated_ms}};
  if (!r.reason.empty()) j["reason"] = r.reason;
  if (l.failed_attempts > 0) {
    j["failed_attempts"] = l.failed_attempts;
    j["last_error"] = l.last_error;
  }
  return j;
}

Reply Create(Context& ctx) {
  auto body = ParseJsonObject(ctx.req.body);
  if (!body.ok()) return Failure(body.status());
  if (Status st = OnlyFields(*body, {"name", "ttl"}); !st.ok()) return Failure(st);
  auto name = StringField(*body, "name");
  if (!name.ok()) return Failure(name.status());
  auto ttl_text = StringField(*body, "ttl");
  if (!ttl_text.ok()) return Failure(ttl_text.status());
  if (!name->has_value()) return Failure(InvalidArgument("a lease needs 'name' (its kind)", "bad_request"));
  if (Status st = secrets::ValidatePath(**name); !st.ok()) return Failure(st);
  ctx.audit_path = **name;
  std::optional<std::uint64_t> ttl_s =
      ttl_text->has_value() ? secrets::ParseRotationEvery(**ttl_text) : std::optional<std::uint64_t>(3600);
  if (!ttl_s)
    return Failure(InvalidArgument("'ttl' is a whole number and a unit: 90s, 15m, 1h, 7d", "bad_ttl"));
  if (Status st = ctx.authorize(policy::Capability::kLease, **name); !st.ok()) return Failure(st);
  if (Status st = ctx.record_change(); !st.ok()) return Failure(st);
  auto granted =
      ctx.agent.leases().Create(**name, std::chrono::seconds(static_cast<std::int64_t>(*ttl_s)), ctx.actor);
  if (!granted.ok()) return Failure(granted.status());
  const LeaseRecord& r = granted->record;
  // Built by hand, wiped by the server after sending: it holds the password.
  Reply reply;
  ApiResponse& out = reply.answer;
  out.secret = true;
  out.body.reserve(256 + r.name.size() + granted->password.size());
  out.body += "{\"id\":\"" + r.id + "\",\"name\":";
  AppendJsonString(out.body, r.name);
  out.body += ",\"role\":\"" + r.role + "\",\"username\":\"" + r.role + "\",\"password\":\"";
  const ByteView pw = granted->password.Expose();
  out.body.append(reinterpret_cast<const char*>(pw.data()), pw.size());  // [A-Za-z0-9] only
  out.body += "\",\"state\":\"active\",\"created_ms\":" + std::to_string(r.created_ms) +
              ",\"expires_ms\":" + std::to_string(r.expires_ms) + ",\"seq\":" + std::to_string(r.seq) + "}";
  return reply;
}

Reply List(Context& ctx) {
  auto all_it = ctx.match.query.find("all");
  const bool all = all_it != ctx.match.query.end() && (all_it->second == "1" || all_it->second == "true");
  Json items = Json::array();
  for (const auto& l : ctx.agent.leases().List()) {
    if (!all && l.record.state == secrets::LeaseState::kRevoked) continue;
    if (!ctx.authorize(policy::Capability::kLease, l.record.name).ok()) continue;
    items.push_back(LeaseJson(l));
  }
  return Json200({{"leases", std::move(items)}});
}

Reply Revoke(Context& ctx) {
  const std::string& id = ctx.match.path;
  if (!secrets::ValidLeaseId(id))
    return Failure(InvalidArgument("a lease id is 16 lower-case hex digits", "bad_request"));
  std::optional<LeaseRecord> found;
  for (LeaseRecord& r : ctx.svc->Leases()) {
    if (r.id == id) found = std::move(r);
  }
  // The same answer for a lease that does not exist and one the caller may not see.
  const Status missing(Code::kNotFound, "no_such_lease", "no lease " + id);
  if (!found || !ctx.authorize(policy::Capability::kLease, found->name).ok()) return Failure(missing);
  ctx.audit_path = found->name;
  if (Status st = ctx.record_change(); !st.ok()) return Failure(st);
  auto after = ctx.agent.leases().Revoke(id, ctx.actor);
  if (!after.ok()) return Failure(after.status());
  Reply r = Json200(LeaseJson(*after));
  // Not yet dropped: accepted, and retried by the sweep until it lands.
  if (after->record.state != secrets::LeaseState::kRevoked) r.answer.status = 202;
  return r;
}

}  // namespace

Reply HandleLease(Context& ctx) {
  switch (ctx.match.route) {
    case Route::kLeaseCreate:
      return Create(ctx);
    case Route::kLeaseList:
      return List(ctx);
    case Route::kLeaseRevoke:
      return Revoke(ctx);
    default:
      return Failure(Internal("not a lease route"));
  }
}

}  // namespace sk::api
