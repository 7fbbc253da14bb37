// The KV v2 facade (kv2.h): its routes, Vault's envelope and errors, and the routes that
// touch no secret (config, sys/health, sys/mounts, what is not supported).
#include "agent/api/kv2.h"

#include <ctime>

#include "agent/api/kv2_internal.h"
#include "agent/secrets/path.h"
#include "crypto/reasons.h"
#include "sealkeep_version.h"

namespace sk::api {
namespace {

// Vault reads booleans in queries as Go's strconv.ParseBool does.
bool QueryTrue(const std::map<std::string, std::string>& q, const char* key) {
  auto it = q.find(key);
  if (it == q.end()) return false;
  for (const char* t : {"1", "t", "T", "true", "TRUE", "True"}) {
    if (it->second == t) return true;
  }
  return false;
}

bool IsSegment(std::string_view s) {
  if (s.empty() || s == "." || s == "..") return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::optional<RouteResult> MatchKvRoute(std::string_view method, std::string_view path,
                                        std::map<std::string, std::string> query) {
  constexpr std::string_view kV1 = "/v1/";
  if (path.substr(0, kV1.size()) != kV1) return std::nullopt;
  std::string_view rest = path.substr(kV1.size());
  const bool get = method == "GET", post = method == "POST" || method == "PUT", del = method == "DELETE";
  auto found = [&](Route r, std::string_view mount, std::string_view p) {
    RouteResult out;
    out.match = RouteMatch{r, std::string(p), std::move(query)};
    out.match->mount = std::string(mount);
    return out;
  };
  if (rest == "sys/health" || rest == "sys/mounts")
    return found(get ? Route::kKvInfo : Route::kKvUnsupported, "", rest);

  const std::size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const std::string_view mount = rest.substr(0, slash);
  if (!IsSegment(mount) || mount == "sys") return std::nullopt;
  const std::string_view after = rest.substr(slash + 1);
  const std::size_t op_end = after.find('/');
  const std::string_view op = after.substr(0, op_end);
  const std::string_view p = op_end == std::string_view::npos ? std::string_view() : after.substr(op_end + 1);
  const bool has_path = !p.empty();

  if (op == "data") {
    if (has_path && get) return found(Route::kKvRead, mount, p);
    if (has_path && post) return found(Route::kKvWrite, mount, p);
    if (has_path && del) return found(Route::kKvDelete, mount, p);
  } else if (op == "metadata") {
    std::string_view prefix = p;
    while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
    if (method == "LIST" || (get && QueryTrue(query, "list"))) return found(Route::kKvList, mount, prefix);
    if (has_path && (get || post)) return found(Route::kKvMetadata, mount, p);
    if (has_path && del) return found(Route::kKvDestroyAll, mount, p);
  } else if (op == "delete" || op == "undelete" || op == "destroy") {
    const Route r = op == "delete"     ? Route::kKvDelete
                    : op == "undelete" ? Route::kKvUndelete
                                       : Route::kKvDestroy;
    if (has_path && post) return found(r, mount, p);
  } else if (op == "config") {
    if (!has_path && get) return found(Route::kKvInfo, mount, "config");
  } else if (op != "subkeys") {
    return std::nullopt;  // not a path of a KV v2 mount
  }
  return found(Route::kKvUnsupported, mount, after);
}

bool IsKvRoute(Route r) {
  switch (r) {
    case Route::kKvRead:
    case Route::kKvWrite:
    case Route::kKvDelete:
    case Route::kKvUndelete:
    case Route::kKvDestroy:
    case Route::kKvMetadata:
    case Route::kKvList:
    case Route::kKvDestroyAll:
    case Route::kKvInfo:
    case Route::kKvUnsupported:
      return true;
    default:
      return false;
  }
}

bool KvMountServed(const RouteMatch& m, std::string_view mount) {
  if (mount.empty()) return false;
  return m.mount.empty() ? m.path == "sys/health" || m.path == "sys/mounts" : m.mount == mount;
}

namespace kv2 {

std::string Rfc3339(std::uint64_t ms) {
  if (ms == 0) return "";
  const auto secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  if (gmtime_r(&secs, &tm) == nullptr) return "";
  char buf[40];
  const std::size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char frac[8];
  std::snprintf(frac, sizeof(frac), ".%03uZ", static_cast<unsigned>(ms % 1000));
  return std::string(buf, n) + frac;
}

Json LabelsOrNull(const secrets::Labels& labels) {
  if (labels.empty()) return nullptr;
  return Json(labels);
}

std::string EnvelopeHead(const std::string& request_id) {
  std::string out = "{\"request_id\":";
  AppendJsonString(out, request_id);
  out += ",\"lease_id\":\"\",\"renewable\":false,\"lease_duration\":0,\"data\":";
  return out;
}

std::string EnvelopeTail(const Json& warnings) {
  return ",\"wrap_info\":null,\"warnings\":" + warnings.dump() + ",\"auth\":null,\"mount_type\":\"kv\"}";
}

Reply Envelope(const Context& ctx, const Json& data, const Json& warnings) {
  Reply r;
  r.answer.body = EnvelopeHead(ctx.req.request_id) +
                  data.dump(-1, ' ', false, Json::error_handler_t::replace) + EnvelopeTail(warnings);
  return r;
}

Reply NoContent() {
  Reply r;
  r.answer.status = 204;
  return r;
}

Status Missing(const std::string& what) { return NotFound(what, "not_found"); }
Status BadRequest(const std::string& why) { return InvalidArgument(why, "bad_request"); }

bool AllDestroyed(const std::vector<secrets::VersionReport>& versions) {
  for (const auto& v : versions) {
    if (v.state != "destroyed") return false;
  }
  return true;
}

Status CheckPath(const std::string& path) { return secrets::ValidatePath(path); }

namespace {

Reply Health(const Context& ctx) {
  const Status sealed = ctx.agent.sealed_status();
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  Json j = {{"initialized", true},
            {"sealed", !sealed.ok()},
            {"standby", false},
            {"performance_standby", false},
            {"replication_performance_mode", "disabled"},
            {"replication_dr_mode", "disabled"},
            {"server_time_utc", now},
            {"version", std::string("sealkeep-") + SEALKEEP_VERSION},
            {"cluster_name", "sealkeep"},
            {"cluster_id", ""}};
  Reply r;
  r.answer.body = j.dump();
  if (!sealed.ok()) r.answer.status = 503;  // Vault's answer while sealed, with the same body
  return r;
}

// The one mount, as Vault describes a KV v2 mount in sys/mounts.
Json MountJson(const std::string& mount) {
  return {{"type", "kv"},
          {"description", "sealkeep's KV v2 facade (docs/vault-compat.md)"},
          {"accessor", "kv_sealkeep_" + mount},
          {"config", {{"default_lease_ttl", 0}, {"max_lease_ttl", 0}, {"force_no_cache", false}}},
          {"options", {{"version", "2"}}},
          {"local", true},
          {"seal_wrap", false},
          {"external_entropy_access", false},
          {"uuid", ""},
          {"plugin_version", ""},
          {"running_plugin_version", std::string("sealkeep-") + SEALKEEP_VERSION}};
}

Reply Info(Context& ctx) {
  const std::string& what = ctx.match.path;
  const config::AgentConfig& cfg = ctx.agent.config();
  if (what == "sys/health") return Health(ctx);
  if (what == "sys/mounts") {
    const std::string name = cfg.kv_mount + "/";
    // Vault also gives the mounts at the top level, for clients older than the envelope.
    Json body = {{"request_id", ctx.req.request_id},
                 {"lease_id", ""},
                 {"renewable", false},
                 {"lease_duration", 0},
                 {"data", {{name, MountJson(cfg.kv_mount)}}},
                 {"wrap_info", nullptr},
                 {"warnings", nullptr},
                 {"auth", nullptr},
                 {name, MountJson(cfg.kv_mount)}};
    Reply r;
    r.answer.body = body.dump();
    return r;
  }
  return Envelope(ctx, {{"cas_required", false},
                        {"delete_version_after", "0s"},
                        {"max_versions", cfg.store.default_max_versions}});
}

Reply Unsupported(Context& ctx) {
  const std::string what = ctx.req.method.substr(0, 16) + " " + ctx.match.path.substr(0, 200);
  if (ctx.match.path.rfind("subkeys", 0) == 0) {
    return Failure(Status(Code::kUnimplemented, "unsupported_path",
                          "sealkeep's KV v2 facade has no " + what + " (docs/vault-compat.md)"));
  }
  return Failure(Status(Code::kUnimplemented, "unsupported_operation",
                        "sealkeep's KV v2 facade does not support " + what + " (docs/vault-compat.md)"));
}

}  // namespace
}  // namespace kv2

Reply HandleKv(Context& ctx) {
  switch (ctx.match.route) {
    case Route::kKvRead:
      return kv2::Read(ctx);
    case Route::kKvWrite:
      return kv2::Write(ctx);
    case Route::kKvDelete:
    case Route::kKvUndelete:
    case Route::kKvDestroy:
      return kv2::ChangeVersions(ctx);
    case Route::kKvMetadata:
      return ctx.req.method == "GET" ? kv2::Metadata(ctx) : kv2::MetadataSettings(ctx);
    case Route::kKvList:
      return kv2::List(ctx);
    case Route::kKvDestroyAll:
      return kv2::DestroyAll(ctx);
    case Route::kKvInfo:
      return kv2::Info(ctx);
    default:
      return kv2::Unsupported(ctx);
  }
}

namespace {

// The status Vault gives what sealkeep's Status says.
unsigned KvStatus(const Status& st) {
  const std::string_view r = st.reason();
  if (r == reason::kCasMismatch) return 400;  // Vault: a check-and-set failure is a bad request
  if (r == "unsupported_operation") return 405;
  if (r == "unsupported_path") return 404;
  if (st.code() == Code::kNotFound || st.code() == Code::kExpired) return 404;
  return HttpStatusFor(st);
}

// Vault's "errors": its own words first where clients match on them, then sealkeep's
// reason and message (never a secret: Status messages hold none).
Json KvErrors(const Status& st, unsigned http) {
  if (http == 404 && (st.code() == Code::kNotFound || st.code() == Code::kExpired)) return Json::array();
  const std::string detail = "sealkeep " + std::string(st.reason()) + ": " + std::string(st.message());
  const std::string_view r = st.reason();
  if (r == reason::kCasMismatch) return {"check-and-set parameter did not match the current version", detail};
  if (st.code() == Code::kForbidden) return {"permission denied", detail};
  if (st.code() == Code::kSealed) return {"sealkeep is sealed", detail};
  if (reason::IsTampering(r) || r == reason::kKeyRetired) {
    return {"sealkeep " + std::string(r) +
            ": the stored version does not verify, so it is not served: " + std::string(st.message())};
  }
  return {detail};
}

}  // namespace

ApiResponse KvToHttp(const Context& ctx, Reply reply) {
  if (reply.error.ok()) return std::move(reply.answer);
  ApiResponse r;
  r.status = KvStatus(reply.error);
  if (reply.error_extra.is_object()) {
    r.body = kv2::EnvelopeHead(ctx.req.request_id) + reply.error_extra.dump() + kv2::EnvelopeTail(nullptr);
    return r;
  }
  r.body =
      Json{{"errors", KvErrors(reply.error, r.status)}}.dump(-1, ' ', false, Json::error_handler_t::replace);
  return r;
}

}  // namespace sk::api
