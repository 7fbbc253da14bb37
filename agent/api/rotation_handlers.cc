// Staged rotation over HTTP (docs/rotation.md):
//   POST /v1/secrets/{path}/rotation/begin   {value | value_b64 | generator, cas, every,
//                                             expires_in, labels, note}
//   POST /v1/secrets/{path}/rotation/finish  {version}
//   POST /v1/secrets/{path}/rotation/abort   {version, reason}
//   GET  /v1/secrets/{path}/rotation/status
// begin, finish and abort need `rotate` and `write` on the path (Api's route gate,
// AuthorizeChange as for any change, and the write check here: a rotation replaces the
// value, so `rotate`, which `admin` implies and which on `sys` means master-key rotation,
// must not be a way around `write`); status needs `list`. No answer carries a value: a rotator reads the
// pending value with GET ?stage=pending.
#include <string>

#include "agent/alerts/alerts.h"
#include "agent/api/handlers.h"
#include "agent/api/op_parser.h"
#include "agent/api/request_body.h"
#include "agent/secrets/generator.h"

namespace sk::api {
namespace {

using secrets::Op;

Status BadRequest(const std::string& why) { return InvalidArgument(why, "bad_request"); }

Result<secrets::GeneratorSpec> ParseGenerator(const Json& g) {
  if (!g.is_object()) return BadRequest("'generator' must be an object");
  SK_ASSIGN_OR_RETURN(std::optional<std::string> type, StringField(g, "type"));
  secrets::GeneratorSpec spec;
  if (type == "password") {
    SK_RETURN_IF_ERROR(OnlyFields(g, {"type", "length", "classes", "exclude"}));
    if (auto c = g.find("classes"); c != g.end()) {
      if (!c->is_array() || c->empty())
        return BadRequest("'classes' is a non-empty list of lower, upper, digit, symbol");
      spec.lower = spec.upper = spec.digit = spec.symbol = false;
      for (const Json& name : *c) {
        if (name == "lower") {
          spec.lower = true;
        } else if (name == "upper") {
          spec.upper = true;
        } else if (name == "digit") {
          spec.digit = true;
        } else if (name == "symbol") {
          spec.symbol = true;
        } else {
          return BadRequest("'classes' holds lower, upper, digit or symbol");
        }
      }
    }
    SK_ASSIGN_OR_RETURN(std::optional<std::string> exclude, StringField(g, "exclude"));
    spec.exclude = exclude.value_or("");
  } else if (type == "bytes") {
    SK_RETURN_IF_ERROR(OnlyFields(g, {"type", "length", "encoding"}));
    spec.type = secrets::GeneratorSpec::Type::kBytes;
    SK_ASSIGN_OR_RETURN(std::optional<std::string> enc, StringField(g, "encoding"));
    if (enc && *enc == "base64") {
      spec.encoding = secrets::GeneratorSpec::Encoding::kBase64;
    } else if (enc && *enc != "hex") {
      return BadRequest("a bytes generator's 'encoding' is hex or base64");
    }
  } else {
    return BadRequest("'generator' needs 'type': password or bytes");
  }
  SK_ASSIGN_OR_RETURN(std::optional<std::uint64_t> length, U64Field(g, "length"));
  if (length) spec.length = static_cast<std::size_t>(std::min<std::uint64_t>(*length, 1u << 20));
  SK_RETURN_IF_ERROR(secrets::ValidateGenerator(spec));
  return spec;
}

Reply Begin(Context& ctx) {
  auto parsed = ParseRequestBody(ctx.req.body);
  if (!parsed.ok()) return Failure(parsed.status());
  const Json& body = parsed->json;
  if (Status st = OnlyFields(
          body, {"value", "value_b64", "generator", "cas", "every", "expires_in", "labels", "note"});
      !st.ok()) {
    return Failure(st);
  }
  const bool given = body.contains("value") || body.contains("value_b64");
  if (given == body.contains("generator")) {
    return Failure(BadRequest("give the new value ('value' or 'value_b64') or a 'generator', one of them"));
  }
  Op op;
  op.type = Op::Type::kStage;
  op.path = ctx.match.path;
  if (given) {
    auto value = ValueField(*parsed, body);
    if (!value.ok()) return Failure(value.status());
    op.value = std::move(value).value();
  } else {
    auto spec = ParseGenerator(body["generator"]);
    if (!spec.ok()) return Failure(spec.status());
    auto made = secrets::Generate(*spec);
    if (!made.ok()) return Failure(made.status());
    op.value = std::move(made).value();
    op.digest_as = "generator " + body["generator"].dump();  // a retry makes another value: same request
  }
  auto cas = U64Field(body, "cas");
  auto expires = U64Field(body, "expires_in");
  auto every = StringField(body, "every");
  auto note = StringField(body, "note");
  auto labels = LabelsField(body);
  for (const Status& st : {cas.status(), expires.status(), every.status(), note.status(), labels.status()}) {
    if (!st.ok()) return Failure(st);
  }
  op.cas = *cas;
  op.expires_in_s = expires->value_or(0);
  op.note = note->value_or("");
  // The pending version carries the labels given, else the head's (read inside the commit,
  // so a put meanwhile is not undone), and always the rotation label, so a restore or a
  // deploy abort keeps the path's current version from now on.
  op.labels = std::move(labels).value();
  if (*every) {
    if (!secrets::ParseRotationEvery(**every)) {
      return Failure(BadRequest("'every' is a whole number and one unit: s, m, h or d (\"30d\")"));
    }
    op.rotation_label = **every;
  }
  std::vector<Op> ops;
  ops.push_back(std::move(op));
  return CommitOne(ctx, std::move(ops));
}

Reply End(Context& ctx, bool finish) {
  auto parsed = ParseRequestBody(ctx.req.body);
  if (!parsed.ok()) return Failure(parsed.status());
  const Json& body = parsed->json;
  if (Status st = finish ? OnlyFields(body, {"version"}) : OnlyFields(body, {"version", "reason"});
      !st.ok()) {
    return Failure(st);
  }
  auto version = U64Field(body, "version");
  if (!version.ok()) return Failure(version.status());
  if (!*version || **version == 0) return Failure(BadRequest("give the pending 'version'"));
  auto reason = StringField(body, "reason");
  if (!reason.ok()) return Failure(reason.status());
  Op op;
  op.type = finish ? Op::Type::kPromote : Op::Type::kAbort;
  op.path = ctx.match.path;
  op.version = **version;
  op.note = reason->value_or("");
  const std::string why = op.note.empty() ? "no reason given" : op.note;
  std::vector<Op> ops;
  ops.push_back(std::move(op));
  Reply r = CommitOne(ctx, std::move(ops));
  if (!finish && r.error.ok()) {
    alerts::Alert a;
    a.kind = alerts::AlertKind::kRotationFailed;
    a.message = "rotation of " + ctx.match.path + " aborted: " + why.substr(0, 200);
    a.request_id = ctx.req.request_id;
    a.uid = ctx.req.subject.uid;
    a.pid = ctx.req.subject.pid;
    a.unit = ctx.req.subject.unit;
    a.path = ctx.match.path;
    a.reason = "rotation_failed";
    ctx.agent.alerts().Raise(std::move(a));
  }
  return r;
}

Reply Status_(Context& ctx) {
  auto r = ctx.svc->RotationStatus(ctx.match.path);
  if (!r.ok()) return Failure(r.status());
  Json j = {{"path", ctx.match.path},
            {"current", r->current},
            {"current_created_ms", r->current_created_ms},
            {"current_expires_ms", r->current_expires_ms},
            {"pending", r->pending},
            {"pending_created_ms", r->pending_created_ms},
            {"previous", r->previous},
            {"every_s", r->every_s},
            {"due_ms", r->due_ms},
            {"labels", r->labels}};
  return Json200(j);
}

}  // namespace

Reply HandleRotation(Context& ctx) {
  if (ctx.match.route != Route::kRotationStatus) {
    if (Status allowed = ctx.authorize(policy::Capability::kWrite, ctx.match.path); !allowed.ok()) {
      return Failure(allowed);
    }
  }
  switch (ctx.match.route) {
    case Route::kRotationBegin:
      return Begin(ctx);
    case Route::kRotationFinish:
      return End(ctx, true);
    case Route::kRotationAbort:
      return End(ctx, false);
    case Route::kRotationStatus:
      return Status_(ctx);
    default:
      return Failure(Internal("not a rotation route"));
  }
}

}  // namespace sk::api
