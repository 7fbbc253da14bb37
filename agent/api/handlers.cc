// Route handlers: parse the body, call the service, shape the JSON answer.
#include "agent/api/handlers.h"

#include <map>

#include "agent/api/op_parser.h"
#include "agent/api/request_body.h"
#include "agent/policy/policy.h"
#include "agent/secrets/path.h"
#include "crypto/aead.h"
#include "crypto/locked_pool.h"
#include "sealkeep_version.h"

namespace sk::api {

Json TxnJson(const secrets::TxnResult& r) {
  Json results = Json::array();
  for (const auto& o : r.results) results.push_back({{"op", o.op}, {"path", o.path}, {"version", o.version}});
  return {{"txn_id", r.txn_id}, {"seq", r.seq}, {"replayed", r.replayed}, {"results", results}};
}

namespace {

using secrets::Op;

Status BadRequest(const std::string& why) { return InvalidArgument(why, "bad_request"); }

// The op a single route's body describes.
Op::Type RouteOpType(Route r) {
  switch (r) {
    case Route::kSecretUndelete:
      return Op::Type::kUndelete;
    case Route::kSecretDestroy:
      return Op::Type::kDestroy;
    case Route::kSecretRollback:
      return Op::Type::kRollback;
    case Route::kSecretFloor:
      return Op::Type::kFloor;
    default:
      return Op::Type::kPut;
  }
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
    case Op::Type::kStage:
    case Op::Type::kPromote:
    case Op::Type::kAbort:
      return policy::Capability::kRotate;
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

const secrets::Labels kNoLabels;

// The policy checks of one change, beyond the route's own gate: the op's capability under
// the labels of the head it replaces and of the version it touches or writes (a put's
// labels, or the path's it inherits; a rollback's source), and the OpGuard the committer
// applies in the op's batch: the same label checks against what the batch sees, `destroy`
// for a prune, `admin` for lowering max_versions.
Status AuthorizeOp(Context& ctx, Op& op) {
  const policy::Capability cap = CapabilityFor(op.type);
  std::optional<secrets::Labels> head;
  if (auto l = ctx.svc->PathLabels(op.path); l.ok()) head = std::move(l).value();
  const secrets::Labels* head_labels = head ? &*head : nullptr;
  auto check = ctx.authorize_labels;
  // A put that creates the path replaces nothing; everything else acts on the head.
  if (op.type != Op::Type::kPut || head) SK_RETURN_IF_ERROR(check(cap, op.path, head_labels));
  if (op.type == Op::Type::kPut || op.type == Op::Type::kStage) {
    // The labels the new version carries: those asked for, else the path's (none for a create).
    const secrets::Labels* written = !op.labels.empty() ? &op.labels : head ? head_labels : &kNoLabels;
    SK_RETURN_IF_ERROR(check(cap, op.path, written));
  } else if (op.version && op.type != Op::Type::kCheckVersion && op.type != Op::Type::kPromote &&
             op.type != Op::Type::kAbort) {
    // The version a rollback copies, or a delete, undelete or destroy touches.
    auto all = ctx.svc->VersionLabels(op.path);
    if (all.ok() && *op.version >= 1 && *op.version <= all->size()) {
      SK_RETURN_IF_ERROR(check(cap, op.path, &(*all)[*op.version - 1]));
    }
  }
  if (op.type == Op::Type::kPut || op.type == Op::Type::kRollback || op.type == Op::Type::kStage ||
      op.type == Op::Type::kPromote) {
    const secrets::Labels* basis = head_labels != nullptr ? head_labels : &op.labels;
    op.guard.may_prune = check(policy::Capability::kDestroy, op.path, basis).ok();
    op.guard.may_lower_retention = check(policy::Capability::kAdmin, op.path, basis).ok();
    op.guard.labels = [check, cap, path = op.path](const secrets::Labels* now,
                                                   const secrets::Labels& written) {
      if (now != nullptr) SK_RETURN_IF_ERROR(check(cap, path, now));
      return check(cap, path, &written);
    };
  }
  return OkStatus();
}

Reply WithTxn(const Result<secrets::TxnResult>& r, std::string path = "") {
  if (!r.ok()) return Failure(r.status());
  Json j = {{"txn_id", r->txn_id}, {"seq", r->seq}};
  if (!path.empty()) {
    j["path"] = path;
    j["version"] = r->results.empty() ? 0 : r->results[0].version;
  }
  return Json200(j);
}

}  // namespace

Status AuthorizeChange(Context& ctx, secrets::Op& op) { return AuthorizeOp(ctx, op); }

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

Reply Json200(const Json& body) {
  Reply r;
  r.answer.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  return r;
}

Reply Failure(const Status& st, Json extra) {
  Reply r;
  r.error = st.ok() ? Internal("a handler failed with OK") : st;
  r.error_extra = std::move(extra);
  return r;
}

Reply HandleHealth(Context& ctx) {
  Status sealed = ctx.agent.sealed_status();
  if (sealed.ok()) return Json200({{"status", "unsealed"}});
  Reply r = Json200({{"status", "sealed"}, {"reason", sealed.reason()}, {"message", sealed.message()}});
  r.answer.status = 503;  // not an error body: health says what it is either way
  return r;
}

Reply HandleStatus(Context& ctx) {
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

// A one-op change to the route's path: its policy checks, its record, then the commit.
Reply CommitOne(Context& ctx, std::vector<Op> ops) {
  if (Status allowed = AuthorizeOp(ctx, ops[0]); !allowed.ok()) return Failure(allowed);
  if (Status rec = ctx.record_in_commit(); !rec.ok()) return Failure(rec);
  return WithTxn(ctx.svc->Transact(std::move(ops), ctx.req.idempotency_key, ctx.actor), ctx.match.path);
}

Reply HandleSecretGet(Context& ctx) {
  auto version = QueryVersion(ctx);
  if (!version.ok()) return Failure(version.status());
  bool b64 = false;
  if (auto e = ctx.match.query.find("encoding"); e != ctx.match.query.end()) {
    if (e->second != "base64") return Failure(BadRequest("'encoding' may only be 'base64'"));
    b64 = true;
  }
  std::optional<secrets::Stage> stage;
  if (auto s = ctx.match.query.find("stage"); s != ctx.match.query.end()) {
    if (s->second == "current") {
      stage = secrets::Stage::kCurrent;
    } else if (s->second == "pending") {
      stage = secrets::Stage::kPending;
    } else if (s->second == "previous") {
      stage = secrets::Stage::kPrevious;
    } else {
      return Failure(BadRequest("'stage' is current, pending or previous"));
    }
    if (*version != 0) return Failure(BadRequest("give 'version' or 'stage', not both"));
    // Before anything is looked up, so a caller without `rotate` cannot even learn whether
    // a rotation is pending (403 either way); the pending version's own labels are checked
    // once it is read.
    if (stage == secrets::Stage::kPending) {
      if (Status allowed = ctx.authorize(policy::Capability::kRotate, ctx.match.path); !allowed.ok()) {
        return Failure(allowed);
      }
    }
  }
  auto got = stage ? ctx.svc->GetStage(ctx.match.path, *stage)
                   : ctx.svc->Get(ctx.match.path,
                                  *version == 0 ? std::nullopt : std::optional<std::uint64_t>(*version));
  if (!got.ok()) return Failure(got.status());
  // The labels of the version actually read: a put may have moved the head since the
  // route's check, which was made on the labels of the version asked for.
  if (Status allowed = ctx.authorize_labels(policy::Capability::kRead, ctx.match.path, &got->labels);
      !allowed.ok()) {
    return Failure(allowed);
  }
  // A pending version is a credential not yet in use: only a rotator (`rotate`) reads it.
  if (stage == secrets::Stage::kPending) {
    if (Status allowed = ctx.authorize_labels(policy::Capability::kRotate, ctx.match.path, &got->labels);
        !allowed.ok()) {
      return Failure(allowed);
    }
  }
  ByteView value = got->value.Expose();
  b64 = b64 || !IsValidUtf8(value);
  // Built by hand into one pre-sized buffer, wiped by the server after sending.
  Reply reply;
  ApiResponse& r = reply.answer;
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
  return reply;
}

Reply HandleSecretPut(Context& ctx) {
  auto parsed = ParseRequestBody(ctx.req.body);
  if (!parsed.ok()) return Failure(parsed.status());
  Result<Op> op = ParseOp(*parsed, parsed->json, Op::Type::kPut, OpSource::kRoute);
  if (!op.ok()) return Failure(op.status());
  std::vector<Op> ops;
  ops.push_back(std::move(op).value());
  ops[0].path = ctx.match.path;
  return CommitOne(ctx, std::move(ops));
}

namespace {

// Rows a listing examines beyond its limit, at most: the work of one request stays
// bounded even when the caller may see none of the rows (docs/api.md).
constexpr std::size_t kListSlack = 256;
constexpr std::string_view kCursorAad = "sealkeep list cursor v1";

std::string Base64Url(ByteView bytes) {
  std::string s = Base64Encode(bytes);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& c : s) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return s;
}

std::optional<Bytes> Base64UrlDecode(std::string s) {
  if (s.find_first_of("+/=") != std::string::npos) return std::nullopt;
  for (char& c : s) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (s.size() % 4 != 0) s += '=';
  return Base64Decode(s);
}

// A cursor that continues after `path` without naming it: "~" and the path sealed
// (AES-256-GCM) under the agent's per-run cursor key.
Result<std::string> SealCursor(const SecretBytes& key, const std::string& path) {
  if (key.size() != kAeadKeySize)
    return Internal("no key for listing cursors (the random source failed at start)");
  SK_ASSIGN_OR_RETURN(Bytes blob, AeadSeal(key, AsBytes(kCursorAad), AsBytes(path)));
  return "~" + Base64Url(blob);
}

// `after` as the path a listing continues after: a path as is, or a sealed cursor.
Result<std::string> CursorPath(const SecretBytes& key, const std::string& after) {
  auto bad = [] {
    return InvalidArgument(
        "'after' is a path or the 'next' of an earlier answer from this run of the agent; list again "
        "without it",
        "bad_cursor");
  };
  if (after.empty()) return after;
  if (after[0] != '~') {
    if (!secrets::ValidatePath(after).ok()) return bad();
    return after;
  }
  std::optional<Bytes> blob = Base64UrlDecode(after.substr(1));
  if (!blob || key.size() != kAeadKeySize) return bad();
  auto opened = AeadOpen(key, AsBytes(kCursorAad), *blob);
  if (!opened.ok()) return bad();
  return std::string(AsChars(opened->Expose()));
}

}  // namespace

Reply HandleSecretList(Context& ctx) {
  std::string prefix;
  std::size_t limit = 1000;
  if (auto p = ctx.match.query.find("prefix"); p != ctx.match.query.end()) prefix = p->second;
  if (auto l = ctx.match.query.find("limit"); l != ctx.match.query.end()) {
    if (l->second.empty() || l->second.size() > 5 ||
        l->second.find_first_not_of("0123456789") != std::string::npos || std::stoul(l->second) == 0 ||
        std::stoul(l->second) > 10000) {
      return Failure(BadRequest("'limit' is 1..10000"));
    }
    limit = std::stoul(l->second);
  }
  std::string after;
  if (auto a = ctx.match.query.find("after"); a != ctx.match.query.end()) {
    auto path = CursorPath(ctx.cursor_key, a->second);
    if (!path.ok()) return Failure(path.status());
    after = std::move(path).value();
  }
  // At most limit + kListSlack rows are examined: `limit` visible ones and one more (so
  // "truncated" is exact when they are there), past up to kListSlack this caller may not see.
  const std::size_t budget = limit + kListSlack;
  auto listed = ctx.svc->List(prefix, budget, after);
  if (!listed.ok()) return Failure(listed.status());
  Json paths = Json::array();
  bool truncated = false;
  std::string next, last_examined, last_shown;
  for (const auto& p : *listed) {
    if (!ctx.authorize_labels(policy::Capability::kList, p.path, &p.labels).ok()) {
      last_examined = p.path;  // invisible to this caller
      continue;
    }
    if (paths.size() == limit) {
      truncated = true;
      next = last_shown;
      break;
    }
    Json row = {{"path", p.path},
                {"head", p.head},
                {"state", p.head_state},
                {"floor", p.floor},
                {"updated_ms", p.updated_ms},
                {"expires_ms", p.expires_ms},
                {"labels", p.labels}};
    if (p.pending != 0) row["pending"] = p.pending;
    paths.push_back(std::move(row));
    last_examined = last_shown = p.path;
  }
  if (!truncated && listed->size() == budget) {
    // The budget ran out: more may follow. A cursor past a row the caller may not see must
    // not name it.
    truncated = true;
    if (last_examined == last_shown) {
      next = last_shown;
    } else {
      auto sealed = SealCursor(ctx.cursor_key, last_examined);
      if (!sealed.ok()) return Failure(sealed.status());
      next = std::move(sealed).value();
    }
  }
  Json j = {{"paths", paths}, {"truncated", truncated}};
  if (truncated) j["next"] = next;
  return Json200(j);
}

ReadableVersions MayReadVersions(Context& ctx, const std::string& path,
                                 const std::vector<secrets::Labels>& labels) {
  ReadableVersions r{std::vector<bool>(labels.size(), false), Status()};
  bool any = false;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (i > 0 && labels[i] == labels[i - 1]) {
      r.may[i] = r.may[i - 1];  // the same labels: the same answer, asked once
    } else {
      Status allowed = ctx.authorize_labels(policy::Capability::kRead, path, &labels[i]);
      r.may[i] = allowed.ok();
      if (!allowed.ok()) r.denial = allowed;
    }
    any = any || r.may[i];
  }
  if (any) r.denial = Status();
  return r;
}

Reply HandleSecretVersions(Context& ctx) {
  const std::string& path = ctx.match.path;
  // Which versions this caller may see: those whose own labels its read allows.
  auto labels = ctx.svc->VersionLabels(path);
  if (!labels.ok()) {
    if (labels.status().code() == Code::kNotFound) {
      // A missing path answers as the caller's read decides for unknown labels.
      if (Status allowed = ctx.authorize_labels(policy::Capability::kRead, path, nullptr); !allowed.ok())
        return Failure(allowed);
    }
    return Failure(labels.status());
  }
  const ReadableVersions readable = MayReadVersions(ctx, path, *labels);
  if (!readable.denial.ok()) return Failure(readable.denial);
  const std::vector<bool>& may = readable.may;
  auto versions = ctx.svc->Versions(path);
  if (!versions.ok()) return Failure(versions.status());
  Json list = Json::array();
  for (const auto& v : *versions) {
    if (v.version == 0 || v.version > may.size() || !may[v.version - 1]) continue;
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
  return Json200({{"path", path}, {"versions", list}});
}

Reply HandleSecretChange(Context& ctx) {
  std::vector<Op> ops(1);
  if (ctx.match.route == Route::kSecretDelete) {
    ops[0].type = Op::Type::kDelete;
    auto v = QueryVersion(ctx);
    if (!v.ok()) return Failure(v.status());
    if (*v != 0) ops[0].version = *v;
  } else {
    auto parsed = ParseRequestBody(ctx.req.body);
    if (!parsed.ok()) return Failure(parsed.status());
    Result<Op> op = ParseOp(*parsed, parsed->json, RouteOpType(ctx.match.route), OpSource::kRoute);
    if (!op.ok()) return Failure(op.status());
    ops[0] = std::move(op).value();
  }
  ops[0].path = ctx.match.path;
  Reply r = CommitOne(ctx, std::move(ops));
  r.rollback = ctx.match.route == Route::kSecretRollback;
  return r;
}

Reply HandleTxn(Context& ctx) {
  auto parsed = ParseRequestBody(ctx.req.body);
  if (!parsed.ok()) return Failure(parsed.status());
  Json* body = &parsed->json;
  Status st = OnlyFields(*body, {"ops", "idempotency_key"});
  if (!st.ok()) return Failure(st);
  auto key = StringField(*body, "idempotency_key");
  if (!key.ok()) return Failure(key.status());
  std::string idem = key->value_or(ctx.req.idempotency_key);
  auto it = body->find("ops");
  if (it == body->end() || !it->is_array() || it->empty())
    return Failure(BadRequest("'ops' must be a non-empty list"));
  if (it->size() > 1000) return Failure(BadRequest("a transaction has at most 1000 ops"));
  std::vector<Op> ops;
  std::vector<std::string> paths;
  ops.reserve(it->size());
  for (std::size_t i = 0; i < it->size(); ++i) {
    const Json& j = (*it)[i];
    // The records of a refused txn name its paths up to the one refused.
    if (j.is_object()) {
      if (auto p = j.find("path"); p != j.end() && p->is_string())
        paths.push_back(p->get<std::string>().substr(0, 300));
    }
    auto fail = [&](const Status& why) {
      ctx.audit_path = AuditPaths(paths);
      return Failure(why.WithContext("op " + std::to_string(i + 1)));
    };
    Result<Op> op = ParseTxnOp(*parsed, j);
    if (!op.ok()) return fail(op.status());
    if (Status allowed = AuthorizeOp(ctx, *op); !allowed.ok()) return fail(allowed);
    ops.push_back(std::move(op).value());
  }
  ctx.audit_path = AuditPaths(paths);
  if (Status rec = ctx.record_in_commit(); !rec.ok()) return Failure(rec);
  secrets::TxnFailure failed;
  auto r = ctx.svc->Transact(std::move(ops), idem, ctx.actor, &failed);
  if (!r.ok()) {
    Reply refused = Failure(r.status());
    refused.rollback = failed.type == Op::Type::kRollback;  // the op that failed, not any op
    return refused;
  }
  return Json200(TxnJson(*r));
}

// Snapshots are guarded by `cap` on their prefix; a snapshot of everything ("" prefix)
// needs `admin`, since no glob short of `**` covers it.
Status AuthorizePrefix(Context& ctx, policy::Capability cap, const std::string& prefix) {
  std::string p = prefix;
  while (!p.empty() && p.back() == '/') p.pop_back();
  if (p.empty()) return ctx.authorize(policy::Capability::kAdmin, std::string(policy::kAdminPath));
  return ctx.authorize(cap, p);
}

bool Listable(Context& ctx, const std::string& path) {
  return ctx.authorize(policy::Capability::kList, path).ok();
}

namespace {

// The answer to a caller who may not see snapshot `name`, the same whether or not it exists.
Status SnapshotHidden(const std::string& verb, const std::string& name) {
  return Status(Code::kForbidden, "forbidden",
                "not allowed to " + verb + " snapshot " + name + " (or there is no such snapshot)");
}

// The snapshot the route names, for a caller holding `cap` on its prefix. A caller who may
// not look at every snapshot (list everything: `admin`) gets SnapshotHidden for a missing
// or unreadable snapshot as for one outside its reach, so a name's existence leaks nothing.
Result<secrets::SnapshotInfo> VisibleSnapshot(Context& ctx, policy::Capability cap, const std::string& verb) {
  const std::string& name = ctx.match.path;
  auto info = ctx.svc->GetSnapshot(name);
  if (!info.ok()) {
    // Missing or not verifying: which, only a caller who may look at every snapshot learns.
    const Code code = info.status().code();
    if ((code == Code::kNotFound || code == Code::kConflict) &&
        !AuthorizePrefix(ctx, policy::Capability::kList, "").ok()) {
      return SnapshotHidden(verb, name);
    }
    return info.status();
  }
  if (!AuthorizePrefix(ctx, cap, info->prefix).ok()) return SnapshotHidden(verb, name);
  return info;
}

}  // namespace

Reply HandleSnapshotCreate(Context& ctx) {
  auto body = ParseJsonObject(ctx.req.body);
  if (!body.ok()) return Failure(body.status());
  Status st = OnlyFields(*body, {"name", "prefix"});
  auto name = StringField(*body, "name");
  auto prefix = StringField(*body, "prefix");
  if (st.ok() && !name.ok()) st = name.status();
  if (st.ok() && !prefix.ok()) st = prefix.status();
  if (st.ok() && !*name) st = BadRequest("a snapshot needs a 'name'");
  if (!st.ok()) return Failure(st);
  std::string shown_prefix = prefix->value_or("");
  ctx.audit_path =
      (**name).substr(0, 128) + ": " + (shown_prefix.empty() ? "**" : shown_prefix.substr(0, 300));
  Status allowed = AuthorizePrefix(ctx, policy::Capability::kSnapshot, prefix->value_or(""));
  if (!allowed.ok()) return Failure(allowed);
  if (Status rec = ctx.record_change(); !rec.ok()) return Failure(rec);
  auto r = ctx.svc->CreateSnapshot(**name, prefix->value_or(""), ctx.actor);
  if (!r.ok()) return Failure(r.status());
  // The snapshot holds the whole subtree; the answer names only what the caller may list.
  Json versions = Json::object();
  for (const auto& o : r->results) {
    if (Listable(ctx, o.path)) versions[o.path] = o.version;
  }
  return Json200({{"name", **name}, {"txn_id", r->txn_id}, {"seq", r->seq}, {"versions", versions}});
}

Reply HandleSnapshotGet(Context& ctx) {
  auto info = VisibleSnapshot(ctx, policy::Capability::kList, "read");
  if (!info.ok()) return Failure(info.status());
  Json versions = Json::object();
  for (const auto& [path, version] : info->versions) {
    if (Listable(ctx, path)) versions[path] = version;
  }
  return Json200({{"name", info->name},
                  {"prefix", info->prefix},
                  {"created_ms", info->created_ms},
                  {"versions", versions},
                  {"verifies", info->verifies}});
}

Reply HandleSnapshotRestore(Context& ctx) {
  auto info = VisibleSnapshot(ctx, policy::Capability::kSnapshot, "restore");
  if (!info.ok()) return Failure(info.status());
  std::vector<std::string> paths;
  for (const auto& [path, version] : info->versions) paths.push_back(path);
  ctx.audit_path = ctx.match.path + ": " + AuditPaths(paths);
  // A rotated credential (label sealkeep.rotation) keeps its current version: its target
  // accepts only that one. The report's `kept` names each such path.
  secrets::RestoreOptions options;
  options.keep_rotated = true;
  return RestoreChecked(ctx, *info, options);
}

Reply RestoreChecked(Context& ctx, const secrets::SnapshotInfo& info, const secrets::RestoreOptions& options,
                     const Json& extra) {
  // Every path it restores needs `snapshot`; a refusal names none of them (the caller may
  // not be allowed to learn they exist).
  std::map<std::string, bool> may_prune;
  for (const auto& [path, version] : info.versions) {
    if (options.keep.count(path) != 0) continue;
    if (!ctx.authorize(policy::Capability::kSnapshot, path).ok()) {
      return Failure(Status(
          Code::kForbidden, "forbidden",
          "not allowed to restore snapshot " + info.name + ": it holds paths the caller may not snapshot"));
    }
    may_prune[path] = ctx.authorize(policy::Capability::kDestroy, path).ok();
  }
  if (Status rec = ctx.record_change(); !rec.ok()) return Failure(rec);
  auto check = ctx.authorize_labels;
  auto guard_for = [&may_prune, check](const std::string& path) {
    secrets::OpGuard g;
    auto it = may_prune.find(path);
    g.may_prune = it != may_prune.end() && it->second;
    g.labels = [check, path](const secrets::Labels* now, const secrets::Labels& written) {
      if (now != nullptr) SK_RETURN_IF_ERROR(check(policy::Capability::kSnapshot, path, now));
      return check(policy::Capability::kSnapshot, path, &written);
    };
    return g;
  };
  auto r = ctx.svc->RestoreSnapshot(info.name, ctx.actor, guard_for, options);
  if (!r.ok()) return Failure(r.status()).Rollback();
  if (!r->applied) {
    Json failures = Json::array();
    for (const auto& f : r->failures) {
      if (!Listable(ctx, f.path)) continue;
      failures.push_back(
          {{"path", f.path}, {"version", f.version}, {"reason", f.reason}, {"message", f.message}});
    }
    return Failure(Conflict("snapshot " + info.name +
                                " cannot be restored: " + std::to_string(r->failures.size()) +
                                " target(s) do not verify; nothing changed",
                            "restore_refused"),
                   {{"failures", failures}})
        .Rollback();
  }
  secrets::TxnResult shown = r->result;
  std::erase_if(shown.results, [&](const secrets::OpResult& o) { return !Listable(ctx, o.path); });
  Json j = TxnJson(shown);
  j["applied"] = true;
  if (!r->kept.empty() || options.keep_rotated || !options.keep.empty()) {
    Json kept = Json::array();
    for (const auto& [path, why] : r->kept) {
      if (Listable(ctx, path)) kept.push_back({{"path", path}, {"why", why}});
    }
    j["kept"] = kept;
  }
  if (extra.is_object()) j.update(extra);
  return Json200(j);
}

}  // namespace sk::api
