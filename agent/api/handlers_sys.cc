// /v1/sys/*: rotation, sealing, recovery, re-sealing and verification.
#include <sstream>

#include "agent/api/handlers.h"
#include "agent/audit/audit_verifier.h"
#include "hsm/tpm/tpm_backend.h"

namespace sk::api {
namespace {

ApiResponse Sealed(const Context& ctx) { return ErrorResponse(ctx, ctx.agent.sealed_status()); }

ApiResponse JournalVerify(Context& ctx) {
  auto r = ctx.svc->VerifyAll();
  if (!r.ok()) return ErrorResponse(ctx, r.status());
  Json problems = Json::array();
  for (const auto& p : r->problems) {
    problems.push_back({{"seq", p.seq},
                        {"path", p.path},
                        {"version", p.version},
                        {"reason", p.reason},
                        {"detail", p.detail}});
  }
  return Json200(
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
}

ApiResponse AuditVerify(Context& ctx) {
  auto writer = ctx.agent.audit();
  if (!writer) return ErrorResponse(ctx, FailedPrecondition("no audit log is configured", "no_audit_log"));
  audit::AuditVerifyOptions o;
  audit::AuditHead head = writer->Head();
  if (Status st = writer->Sync(); !st.ok()) return ErrorResponse(ctx, st);
  o.expected_last_seq = head.seq;
  o.expected_head_mac = head.mac;
  auto r = audit::VerifyAuditLog(ctx.agent.config().audit_dir, ctx.svc->audit_key(), o);
  if (!r.ok()) return ErrorResponse(ctx, r.status());
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
  return Json200(j);
}

ApiResponse Reseal(Context& ctx) {
  auto body = ParseJsonObject(ctx.req.body);
  if (!body.ok()) return ErrorResponse(ctx, body.status());
  if (Status st = OnlyFields(*body, {"pcrs"}); !st.ok()) return ErrorResponse(ctx, st);
  std::vector<int> pcrs;
  if (auto it = body->find("pcrs"); it != body->end()) {
    if (!it->is_array())
      return ErrorResponse(ctx, InvalidArgument("'pcrs' must be a list of integers 0-23", "bad_request"));
    for (const auto& p : *it) {
      if (!p.is_number_integer() || p.get<int>() < 0 || p.get<int>() > 23) {
        return ErrorResponse(ctx, InvalidArgument("'pcrs' must be a list of integers 0-23", "bad_request"));
      }
      pcrs.push_back(p.get<int>());
    }
  } else {
    pcrs = ctx.agent.config().backend.tpm.pcrs;
  }
  auto backend = ctx.agent.backend();
  if (!backend) return Sealed(ctx);
  // Stage the new seals (written and synced beside the live files, not in effect), then
  // journal, then put them in effect: a re-seal that is not journaled never takes effect.
  // If journaling fails, `pending` is dropped with its staged files and nothing changed.
  auto pending = hsm::tpm::BeginResealTpmBackend(*backend, pcrs);
  if (!pending.ok()) return ErrorResponse(ctx, pending.status());
  pcrs = (*pending)->pcrs();
  std::ostringstream note;
  note << "pcrs=";
  for (std::size_t i = 0; i < pcrs.size(); ++i) note << (i ? "," : "") << pcrs[i];
  auto r = ctx.svc->RecordReseal(note.str(), ctx.actor);
  if (!r.ok()) {
    // anchor_unavailable: the entry is stored durably, only the hardware anchor lags (it
    // catches up on the next commit or start). The re-seal is journaled: put it in effect.
    if (r.status().reason() == "anchor_unavailable") {
      if (Status st = (*pending)->Commit(); !st.ok()) {
        return ErrorResponse(ctx, st.WithContext("the re-seal is journaled (the hardware anchor lags: " +
                                                 std::string(r.status().message()) +
                                                 ") but not every sealed file was replaced; run it again"));
      }
    }
    return ErrorResponse(ctx, r.status());
  }
  if (Status st = (*pending)->Commit(); !st.ok()) {
    return ErrorResponse(ctx, st.WithContext("the re-seal is journaled (seq " + std::to_string(r->seq) +
                                             ") but not every sealed file was replaced; run it again"));
  }
  return Json200({{"pcrs", pcrs}, {"txn_id", r->txn_id}, {"seq", r->seq}});
}

}  // namespace

ApiResponse HandleSys(Context& ctx) {
  switch (ctx.match.route) {
    case Route::kSeal:
      ctx.agent.Seal("sealed by request " + ctx.req.request_id);
      return Json200({{"status", "sealed"}});
    case Route::kUnseal: {
      Status st = ctx.agent.Unseal();
      if (!st.ok()) return ErrorResponse(ctx, st);
      return Json200({{"status", "unsealed"}});
    }
    case Route::kRecover: {
      auto body = ParseJsonObject(ctx.req.body);
      if (!body.ok()) return ErrorResponse(ctx, body.status());
      if (Status st = OnlyFields(*body, {"accept_rollback"}); !st.ok()) return ErrorResponse(ctx, st);
      auto it = body->find("accept_rollback");
      if (it == body->end() || !it->is_boolean() || !it->get<bool>()) {
        return ErrorResponse(ctx,
                             InvalidArgument("recover needs {\"accept_rollback\": true}", "bad_request"));
      }
      auto r = ctx.agent.AcceptRollback(ctx.actor);
      if (!r.ok()) return ErrorResponse(ctx, r.status());
      return Json200({{"status", "unsealed"}, {"accepted", *r}});
    }
    default:
      break;
  }
  if (!ctx.svc) return Sealed(ctx);
  switch (ctx.match.route) {
    case Route::kRotate: {
      auto r = ctx.svc->Rotate(ctx.actor);
      if (!r.ok()) return ErrorResponse(ctx, r.status());
      return Json200({{"generation", r->results.empty() ? 0 : r->results[0].version},
                      {"txn_id", r->txn_id},
                      {"seq", r->seq}});
    }
    case Route::kReseal:
      return Reseal(ctx);
    case Route::kJournalVerify:
      return JournalVerify(ctx);
    case Route::kAuditVerify:
      return AuditVerify(ctx);
    default:
      return ErrorResponse(ctx, Internal("unrouted sys request"));
  }
}

}  // namespace sk::api
