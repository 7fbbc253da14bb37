// Route handlers: parse the body, call the service, shape the JSON answer.
#include "agent/api/handlers.h"

#include "crypto/locked_pool.h"
#include "sealkeep_version.h"

namespace sk::api {
namespace {

using secrets::Op;

Status BadRequest(const std::string& why) { return InvalidArgument(why, "bad_request"); }

Json TxnJson(const secrets::TxnResult& r) {
  Json results = Json::array();
  for (const auto& o : r.results) results.push_back({{"op", o.op}, {"path", o.path}, {"version", o.version}});
  return {{"txn_id", r.txn_id}, {"seq", r.seq}, {"replayed", r.replayed}, {"results", results}};
}

Result<secrets::Labels> LabelsField(const Json& obj) {
  secrets::Labels out;
  auto it = obj.find("labels");
  if (it == obj.end() || it->is_null()) return out;
  if (!it->is_object()) return BadRequest("'labels' must be an object of strings");
  for (auto l = it->begin(); l != it->end(); ++l) {
    if (!l->is_string()) return BadRequest("label values must be strings");
    out[l.key()] = l->get<std::string>();
  }
  return out;
}

// A put op from {"value"|"value_b64", "cas", "expires_in", "labels", "max_versions"}.
Status FillPut(Json& obj, Op& op) {
  SK_ASSIGN_OR_RETURN(op.value, ValueField(obj));
  SK_ASSIGN_OR_RETURN(op.cas, U64Field(obj, "cas"));
  SK_ASSIGN_OR_RETURN(auto expires, U64Field(obj, "expires_in"));
  op.expires_in_s = expires.value_or(0);
  SK_ASSIGN_OR_RETURN(op.labels, LabelsField(obj));
  SK_ASSIGN_OR_RETURN(auto max_versions, U64Field(obj, "max_versions"));
  if (max_versions) {
    if (*max_versions > 1'000'000) return BadRequest("'max_versions' is at most 1000000");
    op.max_versions = static_cast<std::uint32_t>(*max_versions);
  }
  return OkStatus();
}

policy::Capability CapabilityFor(Op::Type t) {
  switch (t) {
    case Op::Type::kPut:
      return policy::Capability::kWrite;
    case Op::Type::kDelete:
    case Op::Type::kUndelete:
      return policy::Capability::kDelete;
    case Op::Type::kDestroy:
      return policy::Capability::kDestroy;
    case Op::Type::kRollback:
    case Op::Type::kFloor:
      return policy::Capability::kRollback;
    case Op::Type::kCheckVersion:
      return policy::Capability::kRead;
  }
  return policy::Capability::kAdmin;
}

Result<std::uint64_t> QueryVersion(const Context& ctx) {
  auto it = ctx.match.query.find("version");
  if (it == ctx.match.query.end()) return std::uint64_t{0};
  const std::string& v = it->second;
  if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos) {
    return BadRequest("'version' must be a positive integer");
  }
  std::uint64_t n = std::stoull(v);
  if (n == 0) return BadRequest("'version' must be a positive integer");
  return n;
}

ApiResponse WithTxn(const Context& ctx, const Result<secrets::TxnResult>& r, std::string path = "") {
  if (!r.ok()) return ErrorResponse(ctx, r.status());
  Json j = {{"txn_id", r->txn_id}, {"seq", r->seq}};
  if (!path.empty()) {
    j["path"] = path;
    j["version"] = r->results.empty() ? 0 : r->results[0].version;
  }
  return Json200(j);
}

}  // namespace

std::string AuditPaths(const std::vector<std::string>& paths) {
  constexpr std::size_t kBudget = 480;
  std::string out;
  std::size_t i = 0;
  for (; i < paths.size(); ++i) {
    if (!out.empty() && out.size() + 1 + paths[i].size() > kBudget) break;
    if (out.empty() && paths[i].size() > kBudget) break;
    if (!out.empty()) out += ',';
    out += paths[i];
  }
  if (i < paths.size()) out += " (+" + std::to_string(paths.size() - i) + " more)";
  return out;
}

ApiResponse Json200(const Json& body) {
  ApiResponse r;
  r.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  return r;
}

ApiResponse HandleHealth(Context& ctx) {
  Status sealed = ctx.agent.sealed_status();
  if (sealed.ok()) return Json200({{"status", "unsealed"}});
  ApiResponse r = Json200({{"status", "sealed"}, {"reason", sealed.reason()}, {"message", sealed.message()}});
  r.status = 503;
  return r;
}

ApiResponse HandleStatus(Context& ctx) {
  Json j = {{"version", SEALKEEP_VERSION}, {"uptime_s", static_cast<std::uint64_t>(ctx.agent.uptime_s())}};
  Status sealed = ctx.agent.sealed_status();
  if (!ctx.svc) {
    j["state"] = "sealed";
    j["reason"] = sealed.reason();
    j["message"] = sealed.message();
    return Json200(j);
  }
  secrets::ServiceStatus s = ctx.svc->Report();
  j["state"] = "unsealed";
  j["backend"] = {{"kind", s.backend.kind},
                  {"identity", s.backend.identity},
                  {"keyset_id", s.backend.keyset_id},
                  {"generation", s.backend.current_generation},
                  {"generations", s.backend.generations},
                  {"hardware_counter", s.backend.hardware_counter},
                  {"anchor_location", s.backend.anchor_location}};
  j["journal"] = {{"head_seq", s.head_seq},
                  {"head_hash", s.head_hash},
                  {"anchor_seq", s.anchor.seq},
                  {"anchor_hash", HexEncode(s.anchor.head_hash)},
                  {"anchor_counter", s.anchor.counter},
                  {"mode", s.anchor_mode},
                  {"problems", s.journal_problems},
                  {"start_verify_s", s.start_verify_seconds}};
  j["paths"] = s.paths;
  j["commits"] = s.commits;
  j["batches"] = s.batches;
  j["anchor_advances"] = s.anchor_advances;
  j["dek_cache"] = {{"size", s.dek_cache_size}, {"hits", s.dek_cache_hits}, {"misses", s.dek_cache_misses}};
  return Json200(j);
}

ApiResponse HandleSecretGet(Context& ctx) {
  auto version = QueryVersion(ctx);
  if (!version.ok()) return ErrorResponse(ctx, version.status());
  bool b64 = false;
  if (auto e = ctx.match.query.find("encoding"); e != ctx.match.query.end()) {
    if (e->second != "base64") return ErrorResponse(ctx, BadRequest("'encoding' may only be 'base64'"));
    b64 = true;
  }
  auto got =
      ctx.svc->Get(ctx.match.path, *version == 0 ? std::nullopt : std::optional<std::uint64_t>(*version));
  if (!got.ok()) return ErrorResponse(ctx, got.status());
  ByteView value = got->value.Expose();
  b64 = b64 || !IsValidUtf8(value);
  // Built by hand into one pre-sized buffer, wiped by the server after sending.
  ApiResponse r;
  r.secret = true;
  std::string labels = Json(got->labels).dump();
  r.body.reserve(160 + ctx.match.path.size() + labels.size() + value.size() * 6 + (value.size() + 2) / 3 * 4);
  r.body += "{\"path\":";
  AppendJsonString(r.body, ctx.match.path);
  r.body += ",\"version\":" + std::to_string(got->version);
  if (b64) {
    r.body += ",\"value_b64\":\"";
    std::string enc = Base64Encode(value);
    r.body += enc;
    SecureWipe(enc.data(), enc.size());
    r.body += "\"";
  } else {
    r.body += ",\"value\":";
    AppendJsonString(r.body, AsChars(value));
  }
  r.body += ",\"created_ms\":" + std::to_string(got->created_ms) +
            ",\"expires_ms\":" + std::to_string(got->expires_ms) + ",\"labels\":" + labels + "}";
  return r;
}

ApiResponse HandleSecretPut(Context& ctx) {
  auto body = ParseJsonObject(ctx.req.body);
  if (!body.ok()) return ErrorResponse(ctx, body.status());
  Status st = OnlyFields(*body, {"value", "value_b64", "cas", "expires_in", "labels", "max_versions"});
  std::vector<Op> ops(1);
  ops[0].type = Op::Type::kPut;
  ops[0].path = ctx.match.path;
  if (st.ok()) st = FillPut(*body, ops[0]);
  if (!st.ok()) return ErrorResponse(ctx, st);
  return WithTxn(ctx, ctx.svc->Transact(std::move(ops), ctx.req.idempotency_key, ctx.actor), ctx.match.path);
}

ApiResponse HandleSecretList(Context& ctx) {
  std::string prefix;
  std::size_t limit = 1000;
  if (auto p = ctx.match.query.find("prefix"); p != ctx.match.query.end()) prefix = p->second;
  if (auto l = ctx.match.query.find("limit"); l != ctx.match.query.end()) {
    if (l->second.empty() || l->second.size() > 5 ||
        l->second.find_first_not_of("0123456789") != std::string::npos || std::stoul(l->second) == 0 ||
        std::stoul(l->second) > 10000) {
      return ErrorResponse(ctx, BadRequest("'limit' is 1..10000"));
    }
    limit = std::stoul(l->second);
  }
  // Ask for one more than the limit, so "truncated" is exact for what this caller may see.
  auto listed = ctx.svc->List(prefix, 100000);
  if (!listed.ok()) return ErrorResponse(ctx, listed.status());
  Json paths = Json::array();
  bool truncated = false;
  for (const auto& p : *listed) {
    if (!ctx.authorize(policy::Capability::kList, p.path).ok()) continue;  // invisible to this caller
    if (paths.size() == limit) {
      truncated = true;
      break;
    }
    paths.push_back({{"path", p.path},
                     {"head", p.head},
                     {"state", p.head_state},
                     {"floor", p.floor},
                     {"updated_ms", p.updated_ms},
                     {"labels", p.labels}});
  }
  return Json200({{"paths", paths}, {"truncated", truncated}});
}

ApiResponse HandleSecretVersions(Context& ctx) {
  auto versions = ctx.svc->Versions(ctx.match.path);
  if (!versions.ok()) return ErrorResponse(ctx, versions.status());
  Json list = Json::array();
  for (const auto& v : *versions) {
    Json e = {{"version", v.version},
              {"state", v.state},
              {"kind", v.kind},
              {"from_version", v.from_version},
              {"created_ms", v.created_ms},
              {"expires_ms", v.expires_ms},
              {"key_generation", v.key_generation},
              {"verifies", v.verifies}};
    if (!v.verifies) e["reason"] = v.reason;
    list.push_back(std::move(e));
  }
  return Json200({{"path", ctx.match.path}, {"versions", list}});
}

ApiResponse HandleSecretChange(Context& ctx) {
  std::vector<Op> ops(1);
  Op& op = ops[0];
  op.path = ctx.match.path;
  Result<Json> body = Json::object();
  if (ctx.match.route != Route::kSecretDelete) body = ParseJsonObject(ctx.req.body);
  if (!body.ok()) return ErrorResponse(ctx, body.status());
  Status st;
  switch (ctx.match.route) {
    case Route::kSecretDelete: {
      op.type = Op::Type::kDelete;
      auto v = QueryVersion(ctx);
      if (!v.ok()) return ErrorResponse(ctx, v.status());
      if (*v != 0) op.version = *v;
      break;
    }
    case Route::kSecretUndelete:
      op.type = Op::Type::kUndelete;
      st = OnlyFields(*body, {"version"});
      if (st.ok()) {
        auto v = U64Field(*body, "version");
        if (!v.ok())
          st = v.status();
        else
          op.version = *v;
      }
      break;
    case Route::kSecretDestroy: {
      op.type = Op::Type::kDestroy;
      st = OnlyFields(*body, {"version"});
      auto v = U64Field(*body, "version");
      if (st.ok() && !v.ok()) st = v.status();
      if (st.ok() && (!*v || **v == 0)) st = BadRequest("destroy needs an explicit 'version'");
      if (st.ok()) op.version = *v;
      break;
    }
    case Route::kSecretRollback: {
      op.type = Op::Type::kRollback;
      st = OnlyFields(*body, {"to", "cas"});
      auto to = U64Field(*body, "to");
      auto cas = U64Field(*body, "cas");
      if (st.ok() && !to.ok()) st = to.status();
      if (st.ok() && !cas.ok()) st = cas.status();
      if (st.ok() && !*to) st = BadRequest("rollback needs 'to'");
      if (st.ok()) {
        op.version = *to;
        op.cas = *cas;
      }
      break;
    }
    default: {
      op.type = Op::Type::kFloor;
      st = OnlyFields(*body, {"floor"});
      auto f = U64Field(*body, "floor");
      if (st.ok() && !f.ok()) st = f.status();
      if (st.ok() && !*f) st = BadRequest("'floor' is required");
      if (st.ok()) op.floor = **f;
      break;
    }
  }
  if (!st.ok()) return ErrorResponse(ctx, st);
  return WithTxn(ctx, ctx.svc->Transact(std::move(ops), ctx.req.idempotency_key, ctx.actor), ctx.match.path);
}

ApiResponse HandleTxn(Context& ctx) {
  auto body = ParseJsonObject(ctx.req.body);
  if (!body.ok()) return ErrorResponse(ctx, body.status());
  Status st = OnlyFields(*body, {"ops", "idempotency_key"});
  if (!st.ok()) return ErrorResponse(ctx, st);
  auto key = StringField(*body, "idempotency_key");
  if (!key.ok()) return ErrorResponse(ctx, key.status());
  std::string idem = key->value_or(ctx.req.idempotency_key);
  auto it = body->find("ops");
  if (it == body->end() || !it->is_array() || it->empty())
    return ErrorResponse(ctx, BadRequest("'ops' must be a non-empty list"));
  if (it->size() > 1000) return ErrorResponse(ctx, BadRequest("a transaction has at most 1000 ops"));
  std::vector<Op> ops;
  std::vector<std::string> paths;
  ops.reserve(it->size());
  for (std::size_t i = 0; i < it->size(); ++i) {
    Json& j = (*it)[i];
    auto fail = [&](const Status& s) {
      ctx.audit_path = AuditPaths(paths);
      return ErrorResponse(ctx, s.WithContext("op " + std::to_string(i + 1)));
    };
    if (!j.is_object()) return fail(BadRequest("each op must be an object"));
    auto kind = StringField(j, "op");
    auto path = StringField(j, "path");
    if (!kind.ok()) return fail(kind.status());
    if (!path.ok()) return fail(path.status());
    if (!*kind || !*path) return fail(BadRequest("each op needs 'op' and 'path'"));
    Op op;
    op.path = **path;
    paths.push_back(op.path.substr(0, 300));
    const std::string& k = **kind;
    if (k == "put") {
      op.type = Op::Type::kPut;
      st = OnlyFields(j, {"op", "path", "value", "value_b64", "cas", "expires_in", "labels", "max_versions"});
      if (st.ok()) st = FillPut(j, op);
    } else if (k == "delete" || k == "undelete" || k == "destroy" || k == "check") {
      op.type = k == "delete"     ? Op::Type::kDelete
                : k == "undelete" ? Op::Type::kUndelete
                : k == "destroy"  ? Op::Type::kDestroy
                                  : Op::Type::kCheckVersion;
      st = OnlyFields(j, {"op", "path", "version", "cas"});
      auto v = U64Field(j, "version");
      auto cas = U64Field(j, "cas");
      if (st.ok() && !v.ok()) st = v.status();
      if (st.ok() && !cas.ok()) st = cas.status();
      if (st.ok()) {
        op.version = *v;
        op.cas = *cas;
        if (op.type == Op::Type::kDestroy && (!op.version || *op.version == 0))
          st = BadRequest("destroy needs 'version'");
        if (op.type == Op::Type::kCheckVersion && !op.version) st = BadRequest("check needs 'version'");
      }
    } else if (k == "rollback") {
      op.type = Op::Type::kRollback;
      st = OnlyFields(j, {"op", "path", "to", "cas"});
      auto to = U64Field(j, "to");
      auto cas = U64Field(j, "cas");
      if (st.ok() && !to.ok()) st = to.status();
      if (st.ok() && !cas.ok()) st = cas.status();
      if (st.ok() && !*to) st = BadRequest("rollback needs 'to'");
      if (st.ok()) {
        op.version = *to;
        op.cas = *cas;
      }
    } else if (k == "floor") {
      op.type = Op::Type::kFloor;
      st = OnlyFields(j, {"op", "path", "floor"});
      auto f = U64Field(j, "floor");
      if (st.ok() && !f.ok()) st = f.status();
      if (st.ok() && !*f) st = BadRequest("floor needs 'floor'");
      if (st.ok()) op.floor = **f;
    } else {
      st = BadRequest("unknown op '" + k.substr(0, 32) + "'");
    }
    if (!st.ok()) return fail(st);
    Status allowed = ctx.authorize(CapabilityFor(op.type), op.path);
    if (!allowed.ok()) return fail(allowed);
    ops.push_back(std::move(op));
  }
  ctx.audit_path = AuditPaths(paths);
  if (Status rec = ctx.record_change(); !rec.ok()) return ErrorResponse(ctx, rec);
  auto r = ctx.svc->Transact(std::move(ops), idem, ctx.actor);
  if (!r.ok()) return ErrorResponse(ctx, r.status());
  return Json200(TxnJson(*r));
}

namespace {

// Snapshots are guarded by `cap` on their prefix; a snapshot of everything ("" prefix)
// needs `admin`, since no glob short of `**` covers it.
Status AuthorizePrefix(Context& ctx, policy::Capability cap, const std::string& prefix) {
  std::string p = prefix;
  while (!p.empty() && p.back() == '/') p.pop_back();
  if (p.empty()) return ctx.authorize(policy::Capability::kAdmin, std::string(policy::kAdminPath));
  return ctx.authorize(cap, p);
}

}  // namespace

ApiResponse HandleSnapshotCreate(Context& ctx) {
  auto body = ParseJsonObject(ctx.req.body);
  if (!body.ok()) return ErrorResponse(ctx, body.status());
  Status st = OnlyFields(*body, {"name", "prefix"});
  auto name = StringField(*body, "name");
  auto prefix = StringField(*body, "prefix");
  if (st.ok() && !name.ok()) st = name.status();
  if (st.ok() && !prefix.ok()) st = prefix.status();
  if (st.ok() && !*name) st = BadRequest("a snapshot needs a 'name'");
  if (!st.ok()) return ErrorResponse(ctx, st);
  std::string shown_prefix = prefix->value_or("");
  ctx.audit_path =
      (**name).substr(0, 128) + ": " + (shown_prefix.empty() ? "**" : shown_prefix.substr(0, 300));
  Status allowed = AuthorizePrefix(ctx, policy::Capability::kSnapshot, prefix->value_or(""));
  if (!allowed.ok()) return ErrorResponse(ctx, allowed);
  if (Status rec = ctx.record_change(); !rec.ok()) return ErrorResponse(ctx, rec);
  auto r = ctx.svc->CreateSnapshot(**name, prefix->value_or(""), ctx.actor);
  if (!r.ok()) return ErrorResponse(ctx, r.status());
  Json versions = Json::object();
  for (const auto& o : r->results) versions[o.path] = o.version;
  return Json200({{"name", **name}, {"txn_id", r->txn_id}, {"seq", r->seq}, {"versions", versions}});
}

ApiResponse HandleSnapshotGet(Context& ctx) {
  auto info = ctx.svc->GetSnapshot(ctx.match.path);
  if (!info.ok()) return ErrorResponse(ctx, info.status());
  Status allowed = AuthorizePrefix(ctx, policy::Capability::kList, info->prefix);
  if (!allowed.ok()) return ErrorResponse(ctx, allowed);
  return Json200({{"name", info->name},
                  {"prefix", info->prefix},
                  {"created_ms", info->created_ms},
                  {"versions", info->versions},
                  {"verifies", info->verifies}});
}

ApiResponse HandleSnapshotRestore(Context& ctx) {
  auto info = ctx.svc->GetSnapshot(ctx.match.path);
  if (!info.ok()) return ErrorResponse(ctx, info.status());
  std::vector<std::string> paths;
  paths.reserve(info->versions.size());
  for (const auto& [path, version] : info->versions) paths.push_back(path);
  ctx.audit_path = ctx.match.path + ": " + AuditPaths(paths);
  Status allowed = AuthorizePrefix(ctx, policy::Capability::kSnapshot, info->prefix);
  for (auto it = info->versions.begin(); allowed.ok() && it != info->versions.end(); ++it) {
    allowed = ctx.authorize(policy::Capability::kSnapshot, it->first);
  }
  if (!allowed.ok()) return ErrorResponse(ctx, allowed);
  if (Status rec = ctx.record_change(); !rec.ok()) return ErrorResponse(ctx, rec);
  auto r = ctx.svc->RestoreSnapshot(ctx.match.path, ctx.actor);
  if (!r.ok()) return ErrorResponse(ctx, r.status());
  if (!r->applied) {
    Json failures = Json::array();
    for (const auto& f : r->failures) {
      failures.push_back(
          {{"path", f.path}, {"version", f.version}, {"reason", f.reason}, {"message", f.message}});
    }
    Json extra = {{"failures", failures}};
    return ErrorResponse(
        ctx,
        Conflict("snapshot " + ctx.match.path + " cannot be restored: " + std::to_string(r->failures.size()) +
                     " target(s) do not verify; nothing changed",
                 "restore_refused"),
        &extra);
  }
  Json j = TxnJson(r->result);
  j["applied"] = true;
  return Json200(j);
}

}  // namespace sk::api
