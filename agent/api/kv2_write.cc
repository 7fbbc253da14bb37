// KV v2 changes (kv2.h): writes, soft deletes, undeletes and destroys. Each is a native op
// (put, delete, undelete, destroy) through the same policy checks (AuthorizeChange), the
// same change record and the same transactions as the native routes.
#include <algorithm>
#include <chrono>

#include "agent/api/kv2_internal.h"
#include "agent/api/request_body.h"
#include "crypto/reasons.h"

namespace sk::api::kv2 {
namespace {

using secrets::Op;

std::uint64_t NowMs() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// options.cas, read as Vault reads it (a whole number, also as a string); nullopt when
// absent.
Result<std::optional<std::uint64_t>> CasOption(const Json& body) {
  auto options = body.find("options");
  if (options == body.end() || options->is_null()) return std::optional<std::uint64_t>();
  if (!options->is_object()) return BadRequest("'options' must be an object");
  auto cas = options->find("cas");
  if (cas == options->end() || cas->is_null()) return std::optional<std::uint64_t>();
  if (cas->is_number_unsigned()) return std::optional(cas->get<std::uint64_t>());
  if (cas->is_number_float()) {
    const double d = cas->get<double>();
    if (d >= 0 && d < 1e15 && d == static_cast<double>(static_cast<std::uint64_t>(d))) {
      return std::optional(static_cast<std::uint64_t>(d));
    }
  }
  if (cas->is_string()) {
    const std::string& s = cas->get_ref<const std::string&>();
    if (!s.empty() && s.size() <= 19 && s.find_first_not_of("0123456789") == std::string::npos) {
      return std::optional<std::uint64_t>(std::stoull(s));
    }
  }
  return BadRequest(
      "error parsing check-and-set parameter: options.cas is a version number (0: create only)");
}

// Vault ignores parameters it does not know and says so in the answer's warnings.
Json IgnoredFields(const Json& body, std::initializer_list<std::string_view> known) {
  std::string ignored;
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) != known.end()) continue;
    if (!ignored.empty()) ignored += ' ';
    ignored += it.key().substr(0, 64);
  }
  if (ignored.empty()) return nullptr;
  return Json::array({"Endpoint ignored these unrecognized parameters: [" + ignored + "]"});
}

// "versions": a list of version numbers (numbers, or numbers as strings), or one string of
// them separated by commas, as Vault takes it. At most 1000, each listed once, in order.
Result<std::vector<std::uint64_t>> VersionsField(std::string_view text) {
  SK_ASSIGN_OR_RETURN(Json body, ParseJsonObject(text));
  std::vector<std::uint64_t> out;
  auto bad = [] { return BadRequest("'versions' is a list of version numbers"); };
  auto add = [&](std::string_view s) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string_view::npos)
      return false;
    out.push_back(std::stoull(std::string(s)));
    return true;
  };
  auto it = body.find("versions");
  if (it != body.end() && it->is_array()) {
    for (const Json& v : *it) {
      if (v.is_number_unsigned()) {
        out.push_back(v.get<std::uint64_t>());
      } else if (!v.is_string() || !add(v.get_ref<const std::string&>())) {
        return bad();
      }
    }
  } else if (it != body.end() && it->is_number_unsigned()) {
    out.push_back(it->get<std::uint64_t>());
  } else if (it != body.end() && it->is_string()) {
    std::string_view s = it->get_ref<const std::string&>();
    for (std::size_t comma; !s.empty(); s = comma == std::string_view::npos ? "" : s.substr(comma + 1)) {
      comma = s.find(',');
      if (!add(s.substr(0, comma))) return bad();
    }
  } else if (it != body.end() && !it->is_null()) {
    return bad();
  }
  if (out.empty()) return BadRequest("no version number provided");
  if (out.size() > 1000) return BadRequest("at most 1000 versions at once");
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Op ChangeOp(Op::Type type, const std::string& path, std::optional<std::uint64_t> version) {
  Op op;
  op.type = type;
  op.path = path;
  op.version = version;
  return op;
}

// Applies `wanted` (nullopt: the head at commit time) in one transaction. Vault passes over
// versions it cannot change (one destroyed, for a delete or undelete; one gone); sealkeep
// refuses such an op, so it is dropped and the rest tried again, until all apply or none is
// left. Every try changes nothing unless it commits.
Reply ApplyAll(Context& ctx, Op::Type type, std::vector<std::optional<std::uint64_t>> wanted) {
  const std::string& path = ctx.match.path;
  for (const auto& v : wanted) {
    Op op = ChangeOp(type, path, v);
    if (Status allowed = AuthorizeChange(ctx, op); !allowed.ok()) return Failure(allowed);
  }
  if (Status rec = ctx.record_in_commit(); !rec.ok()) return Failure(rec);
  while (!wanted.empty()) {
    std::vector<Op> ops;
    for (const auto& v : wanted) ops.push_back(ChangeOp(type, path, v));
    secrets::TxnFailure failed;
    auto r = ctx.svc->Transact(std::move(ops), ctx.req.idempotency_key, ctx.actor, &failed);
    if (r.ok()) break;
    const bool passed_over =
        r.status().reason() == reason::kDestroyed || r.status().code() == Code::kNotFound;
    if (failed.op == 0 || failed.op > wanted.size() || !passed_over) return Failure(r.status());
    wanted.erase(wanted.begin() + static_cast<std::ptrdiff_t>(failed.op - 1));
  }
  return NoContent();
}

// A path that does not exist: Vault answers 204 to a change of it, once the caller may.
Reply NothingThere(Context& ctx, policy::Capability cap) {
  if (Status allowed = ctx.authorize_labels(cap, ctx.match.path, nullptr); !allowed.ok())
    return Failure(allowed);
  return NoContent();
}

}  // namespace

Reply Write(Context& ctx) {
  const std::string& path = ctx.match.path;
  if (Status st = CheckPath(path); !st.ok()) return Failure(st);
  // `data` goes from the body to locked memory whole, as compact JSON text.
  auto parsed = ParseRequestBody(ctx.req.body, "data");
  if (!parsed.ok()) return Failure(parsed.status());
  const Json& body = parsed->json;
  auto data = RawJsonField(*parsed, body, "data");
  if (!data.ok()) return Failure(data.status());
  if (!*data || AsChars((*data)->Expose()) == "null") return Failure(BadRequest("no data provided"));
  if ((*data)->Expose()[0] != '{') return Failure(BadRequest("'data' must be a JSON object"));
  auto cas = CasOption(body);
  if (!cas.ok()) return Failure(cas.status());

  Op op;
  op.type = Op::Type::kPut;
  op.path = path;
  op.value = std::move(**data);
  op.cas = *cas;
  // The version keeps the path's labels (policy conditions hold as for a native put) and
  // says what its bytes are.
  auto head = ctx.svc->PathLabels(path);
  if (head.ok()) op.labels = *head;
  op.labels[std::string(kKvFormatLabel)] = std::string(kKvFormatJson);
  if (op.cas == 0u && head.ok()) {
    // A path of destroyed versions is missing to KV: "create only" continues its
    // numbering, still only if nothing is written to it meanwhile.
    auto versions = ctx.svc->Versions(path);
    if (versions.ok() && AllDestroyed(*versions)) op.cas = HeadVersion(ctx, path);
  }
  const secrets::Labels written = op.labels;
  if (Status allowed = AuthorizeChange(ctx, op); !allowed.ok()) return Failure(allowed);
  if (Status rec = ctx.record_in_commit(); !rec.ok()) return Failure(rec);
  std::vector<Op> ops;
  ops.push_back(std::move(op));
  auto r = ctx.svc->Transact(std::move(ops), ctx.req.idempotency_key, ctx.actor);
  if (!r.ok()) return Failure(r.status());
  const std::uint64_t version = r->results.empty() ? 0 : r->results[0].version;
  std::uint64_t created = NowMs();
  if (auto listed = ctx.svc->List(path, 1);
      listed.ok() && !listed->empty() && (*listed)[0].path == path && (*listed)[0].head == version) {
    created = (*listed)[0].updated_ms;  // the journal's time for it, unless a later write moved the head
  }
  return Envelope(ctx,
                  {{"created_time", Rfc3339(created)},
                   {"custom_metadata", LabelsOrNull(written)},
                   {"deletion_time", ""},
                   {"destroyed", false},
                   {"version", version}},
                  IgnoredFields(body, {"data", "options"}));
}

Reply ChangeVersions(Context& ctx) {
  const std::string& path = ctx.match.path;
  if (Status st = CheckPath(path); !st.ok()) return Failure(st);
  const Route route = ctx.match.route;
  const Op::Type type = route == Route::kKvUndelete  ? Op::Type::kUndelete
                        : route == Route::kKvDestroy ? Op::Type::kDestroy
                                                     : Op::Type::kDelete;
  const policy::Capability cap =
      type == Op::Type::kDestroy ? policy::Capability::kDestroy : policy::Capability::kDelete;
  const bool latest = route == Route::kKvDelete && ctx.req.method == "DELETE";  // DELETE data/{path}
  std::vector<std::uint64_t> asked;
  if (!latest) {
    auto versions = VersionsField(ctx.req.body);
    if (!versions.ok()) return Failure(versions.status());
    asked = std::move(versions).value();
  }
  auto labels = ctx.svc->VersionLabels(path);
  if (!labels.ok()) {
    if (labels.status().code() != Code::kNotFound) return Failure(labels.status());
    return NothingThere(ctx, cap);
  }
  std::vector<std::optional<std::uint64_t>> wanted;
  if (latest) wanted.emplace_back(std::nullopt);
  for (std::uint64_t v : asked) {
    if (v >= 1 && v <= labels->size()) wanted.emplace_back(v);  // Vault passes over versions that never were
  }
  if (wanted.empty()) {
    if (Status allowed = ctx.authorize_labels(cap, path, &labels->back()); !allowed.ok())
      return Failure(allowed);
    return NoContent();
  }
  return ApplyAll(ctx, type, std::move(wanted));
}

Reply DestroyAll(Context& ctx) {
  const std::string& path = ctx.match.path;
  if (Status st = CheckPath(path); !st.ok()) return Failure(st);
  auto labels = ctx.svc->VersionLabels(path);
  if (!labels.ok()) {
    if (labels.status().code() != Code::kNotFound) return Failure(labels.status());
    return NothingThere(ctx, policy::Capability::kDestroy);
  }
  // Every version's bytes are erased; the journal keeps its sealed entries (docs/vault-compat.md).
  if (labels->size() > 1000) {
    return Failure(
        BadRequest(path + " has more than 1000 versions: destroy them in batches with POST destroy"));
  }
  std::vector<std::optional<std::uint64_t>> wanted;
  for (std::uint64_t v = 1; v <= labels->size(); ++v) wanted.emplace_back(v);
  return ApplyAll(ctx, Op::Type::kDestroy, std::move(wanted));
}

Reply MetadataSettings(Context& ctx) {
  const std::string& path = ctx.match.path;
  if (Status st = CheckPath(path); !st.ok()) return Failure(st);
  auto body = ParseJsonObject(ctx.req.body);
  if (!body.ok()) return Failure(body.status());
  std::optional<secrets::Labels> labels;
  if (auto l = ctx.svc->PathLabels(path); l.ok()) labels = std::move(l).value();
  if (Status allowed = ctx.authorize_labels(policy::Capability::kWrite, path, labels ? &*labels : nullptr);
      !allowed.ok()) {
    return Failure(allowed);
  }
  auto refuse = [](const std::string& key, const std::string& what) {
    return Failure(BadRequest("sealkeep keeps no per-path KV settings: '" + key + "' can only be " + what +
                              " (docs/vault-compat.md)"));
  };
  for (auto it = body->begin(); it != body->end(); ++it) {
    const std::string& key = it.key();
    const Json& v = *it;
    if (v.is_null()) continue;
    if (key == "max_versions" && !(v.is_number_unsigned() && v.get<std::uint64_t>() == 0)) {
      return refuse(key, "0, the store's max_versions; a path's own is a native put's max_versions");
    }
    if (key == "cas_required" && v != false) return refuse(key, "false");
    if (key == "delete_version_after" && v != "0s" && v != "0" && v != "" && v != 0) {
      return refuse(key, "\"0s\"; a version expires by a native put's expires_in");
    }
    if (key == "custom_metadata") {
      // The labels as they are (with or without sealkeep's format label) change nothing.
      secrets::Labels now = labels.value_or(secrets::Labels());
      secrets::Labels bare = now;
      bare.erase(std::string(kKvFormatLabel));
      if (!v.is_object() || (v != Json(now) && v != Json(bare))) {
        return refuse(key, "the path's labels as they are; labels are set by a native put");
      }
    }
  }
  return NoContent();  // nothing to change; Vault's other parameters are ignored, as Vault ignores them
}

}  // namespace sk::api::kv2
