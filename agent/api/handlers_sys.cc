// /v1/sys/*: rotation, sealing, recovery, re-sealing and verification.
#include <unistd.h>

#include <fstream>
#include <iterator>

#include "agent/api/handlers.h"
#include "agent/audit/audit_verifier.h"
#include "crypto/random.h"
#include "crypto/reasons.h"

namespace sk::api {
namespace {

Reply Sealed(const Context& ctx) { return Failure(ctx.agent.sealed_status()); }

Reply JournalVerify(Context& ctx) {
  auto r = ctx.svc->VerifyAll();
  if (!r.ok()) return Failure(r.status());
  Json problems = Json::array();
  for (const auto& p : r->problems) {
    problems.push_back({{"seq", p.seq},
                        {"path", p.path},
                        {"version", p.version},
                        {"reason", p.reason},
                        {"detail", p.detail}});
  }
  Reply reply = Json200(
      {{"ok", r->ok},
       {"entries", r->entries},
       {"versions_checked", r->versions_checked},
       {"head_seq", r->head_seq},
       {"head_hash", r->head_hash},
       {"anchor",
        {{"seq", r->anchor.seq}, {"hash", HexEncode(r->anchor.head_hash)}, {"counter", r->anchor.counter}}},
       {"anchor_state", r->anchor_state},
       {"problems", problems},
       {"seconds", r->seconds}});
  if (!r->ok) {
    reply.tampered = !r->problems.empty()       ? r->problems[0].reason
                     : !r->anchor_state.empty() ? r->anchor_state
                                                : std::string("journal_tampered");
  }
  return reply;
}

Reply AuditVerify(Context& ctx) {
  auto writer = ctx.agent.audit();
  if (!writer) return Failure(FailedPrecondition("no audit log is configured", "no_audit_log"));
  audit::AuditVerifyOptions o;
  audit::AuditHead head = writer->Head();
  if (Status st = writer->Sync(); !st.ok()) return Failure(st);
  o.expected_last_seq = head.seq;
  o.expected_head_mac = head.mac;
  auto r = audit::VerifyAuditLog(ctx.agent.config().audit_dir, ctx.svc->audit_key(), o);
  if (!r.ok()) return Failure(r.status());
  Json j = {{"ok", r->ok()},           {"segments", r->segments},
            {"records", r->records},   {"first_seq", r->first_seq},
            {"last_seq", r->last_seq}, {"checkpoint_checked", r->checkpoint_checked},
            {"notes", r->notes}};
  if (r->problem) {
    j["problem"] = {{"kind", r->problem->KindName()},
                    {"file", r->problem->file},
                    {"line", r->problem->line},
                    {"seq", r->problem->seq},
                    {"detail", r->problem->detail}};
  }
  Reply reply = Json200(j);
  if (!r->ok()) reply.tampered = r->problem ? std::string(r->problem->KindName()) : "audit_tampered";
  return reply;
}

Reply Reseal(Context& ctx) {
  auto body = ParseJsonObject(ctx.req.body);
  if (!body.ok()) return Failure(body.status());
  if (Status st = OnlyFields(*body, {"pcrs"}); !st.ok()) return Failure(st);
  std::optional<std::vector<int>> pcrs;
  if (auto it = body->find("pcrs"); it != body->end()) {
    pcrs.emplace();
    if (!it->is_array())
      return Failure(InvalidArgument("'pcrs' must be a list of integers 0-23", "bad_request"));
    for (const auto& p : *it) {
      if (!p.is_number_integer() || p.get<int>() < 0 || p.get<int>() > 23) {
        return Failure(InvalidArgument("'pcrs' must be a list of integers 0-23", "bad_request"));
      }
      pcrs->push_back(p.get<int>());
    }
  }
  auto r = ctx.agent.Reseal(std::move(pcrs), ctx.actor);
  if (!r.ok()) return Failure(r.status());
  return Json200({{"pcrs", r->pcrs}, {"txn_id", r->txn_id}, {"seq", r->seq}});
}

Json RecoveryJson(const secrets::RecoveryInfo& r) {
  Json j = {{"configured", r.configured}};
  if (r.configured) {
    j["key_id"] = r.key_id;
    j["threshold"] = r.threshold;
    j["shares"] = r.shares;
    j["seq"] = r.seq;
    j["versions"] = r.versions;
    j["wrapped"] = r.wrapped;
    j["pending"] = r.versions - std::min(r.versions, r.wrapped);
  }
  return j;
}

Reply RecoveryInit(Context& ctx) {
  auto body = ParseJsonObject(ctx.req.body);
  if (!body.ok()) return Failure(body.status());
  if (Status st = OnlyFields(*body, {"threshold", "shares", "replace"}); !st.ok()) return Failure(st);
  auto number = [&](const char* name) -> std::optional<int> {
    auto it = body->find(name);
    if (it == body->end() || !it->is_number_integer()) return std::nullopt;
    const auto v = it->get<std::int64_t>();
    if (v < 0 || v > 255) return std::nullopt;
    return static_cast<int>(v);
  };
  const auto threshold = number("threshold"), shares = number("shares");
  if (!threshold || !shares) {
    return Failure(
        InvalidArgument("recovery needs {\"threshold\": M, \"shares\": N} (integers)", "bad_request"));
  }
  bool replace = false;
  if (auto it = body->find("replace"); it != body->end()) {
    if (!it->is_boolean()) return Failure(InvalidArgument("'replace' must be true or false", "bad_request"));
    replace = it->get<bool>();
  }
  auto r = ctx.svc->InitRecovery(*threshold, *shares, replace, ctx.actor);
  if (!r.ok()) return Failure(r.status());
  Json j = RecoveryJson(r->info);
  j["txn_id"] = r->txn_id;
  Json lines = Json::array();
  for (const SecretBytes& s : r->shares) lines.push_back(std::string(AsChars(s.Expose())));
  j["share_lines"] = std::move(lines);
  Reply reply = Json200(j);
  reply.answer.secret = true;  // the shares: wiped from the response buffer once sent
  return reply;
}

Reply Backup(Context& ctx) {
  auto tag = RandomBytes(8);
  if (!tag.ok()) return Failure(tag.status());
  const std::string tmp = ctx.agent.config().state_dir + "/.backup-" + HexEncode(*tag) + ".db";
  auto m = ctx.svc->CreateBackup(tmp);
  if (!m.ok()) return Failure(m.status());
  std::string bytes;
  {
    std::ifstream in(tmp, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      ::unlink(tmp.c_str());
      return Failure(Status(Code::kUnavailable, "store_io_error", "cannot read the backup copy " + tmp));
    }
  }
  ::unlink(tmp.c_str());
  Reply reply;
  reply.answer.status = 200;
  reply.answer.content_type = "application/octet-stream";
  reply.answer.body = std::move(bytes);
  reply.answer.headers.push_back({"X-Sealkeep-Backup-Head-Seq", std::to_string(m->head_seq)});
  reply.answer.headers.push_back({"X-Sealkeep-Backup-Versions", std::to_string(m->versions)});
  return reply;
}

// GET /v1/sys/fleet: what this host's fleet sync knows (docs/fleet.md).
Reply FleetStatus(Context& ctx) {
  daemon::FleetSync* fleet = ctx.agent.fleet();
  if (fleet == nullptr) {
    return Failure(FailedPrecondition("this agent is not in a fleet: its config has no [fleet] table",
                                      "fleet_not_configured"));
  }
  const daemon::FleetSync::State f = fleet->Report();
  const config::FleetConfig& c = ctx.agent.config().fleet;
  nlohmann::json out = {
      {"host_id", f.host_id},
      {"prefix", c.prefix},
      {"signer_key", HexEncode(c.signer_key)},
      {"key_kind", f.key_kind},
      {"public_key", HexEncode(f.public_key)},
      {"applied_seq", f.applied_seq},
      {"db_head_seq", f.db_head_seq},
      {"lag_entries", f.db_head_seq > f.applied_seq ? f.db_head_seq - f.applied_seq : 0},
      {"db_reachable", f.db_reachable},
      {"last_success_ms", f.last_success_ms},
      {"applied_entries", f.applied_entries},
      {"refusals", f.refusals},
      {"refusal", f.refusal_reason.empty()
                      ? nlohmann::json(nullptr)
                      : nlohmann::json{{"reason", f.refusal_reason}, {"message", f.refusal_message}}},
      {"error", f.error}};
  return Json200(std::move(out));
}

}  // namespace

Reply HandleSys(Context& ctx) {
  switch (ctx.match.route) {
    case Route::kSeal:
      ctx.agent.Seal("sealed by request " + ctx.req.request_id);
      return Json200({{"status", "sealed"}});
    case Route::kUnseal: {
      Status st = ctx.agent.Unseal();
      if (!st.ok()) return Failure(st);
      return Json200({{"status", "unsealed"}});
    }
    case Route::kFleetStatus:
      return FleetStatus(ctx);
    case Route::kRecover: {
      auto body = ParseJsonObject(ctx.req.body);
      if (!body.ok()) return Failure(body.status());
      if (Status st = OnlyFields(*body, {"accept_rollback"}); !st.ok()) return Failure(st);
      auto it = body->find("accept_rollback");
      if (it == body->end() || !it->is_boolean() || !it->get<bool>()) {
        return Failure(InvalidArgument("recover needs {\"accept_rollback\": true}", "bad_request"));
      }
      auto r = ctx.agent.AcceptRollback(ctx.actor);
      if (!r.ok()) return Failure(r.status());
      return Json200({{"status", "unsealed"}, {"accepted", *r}});
    }
    default:
      break;
  }
  if (!ctx.svc) return Sealed(ctx);
  switch (ctx.match.route) {
    case Route::kRotate: {
      auto r = ctx.svc->Rotate(ctx.actor);
      if (!r.ok()) return Failure(r.status());
      return Json200({{"generation", r->results.empty() ? 0 : r->results[0].version},
                      {"txn_id", r->txn_id},
                      {"seq", r->seq}});
    }
    case Route::kReseal:
      return Reseal(ctx);
    case Route::kRecoveryInit:
      return RecoveryInit(ctx);
    case Route::kRecoveryStatus: {
      auto r = ctx.svc->RecoveryStatus();
      if (!r.ok()) return Failure(r.status());
      return Json200(RecoveryJson(*r));
    }
    case Route::kBackup:
      return Backup(ctx);
    case Route::kJournalVerify:
      return JournalVerify(ctx);
    case Route::kAuditVerify:
      return AuditVerify(ctx);
    default:
      return Failure(Internal("unrouted sys request"));
  }
}

}  // namespace sk::api
