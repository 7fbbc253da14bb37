// /v1/deploys: a release's secrets, begun, then committed or aborted together.
//
// A release is kept as sealed snapshots, so its state is journaled and verified like any
// other (docs/api.md, "Deploys"):
//   deploy.begun.<R>      the prefix as it stood at begin: what abort restores
//   deploy.committed.<R>  the prefix when the release was recorded as good
//   deploy.aborted.<R>    the prefix right after the abort, made in the abort's transaction
// Begin is idempotent by name (same prefix); a second commit or abort answers "already"
// and changes nothing; a committed release is not aborted (roll back with a new release).
// An abort keeps the current version of a rotated path (label sealkeep.rotation) and of
// every path in "keep", and says which and why.
#include <set>

#include "agent/api/handlers.h"
#include "agent/secrets/path.h"

namespace sk::api {
namespace {

constexpr std::string_view kBegun = "deploy.begun.";
constexpr std::string_view kCommitted = "deploy.committed.";
constexpr std::string_view kAborted = "deploy.aborted.";

Status BadRequest(const std::string& why) { return InvalidArgument(why, "bad_request"); }

// [A-Za-z0-9._-]{1,100}: a snapshot name once prefixed.
Status ValidateRelease(const std::string& release) {
  if (release.empty() || release.size() > 100 || !secrets::ValidateSnapshotName(release).ok()) {
    return InvalidArgument("a release name is 1-100 characters of [A-Za-z0-9._-]", "bad_name");
  }
  return OkStatus();
}

std::string Name(std::string_view kind, const std::string& release) { return std::string(kind) + release; }

// The release's snapshot of `kind`, or nullopt when it has none.
Result<std::optional<secrets::SnapshotInfo>> Find(Context& ctx, std::string_view kind,
                                                  const std::string& release) {
  auto info = ctx.svc->GetSnapshot(Name(kind, release));
  if (info.ok()) return std::optional<secrets::SnapshotInfo>(std::move(info).value());
  if (info.status().code() == Code::kNotFound) return std::optional<secrets::SnapshotInfo>();
  return info.status();
}

struct Release {
  secrets::SnapshotInfo begun;
  std::string state;  // open, committed, aborted
  std::uint64_t ended_ms = 0;
};

// The release the route names, for a caller with `cap` on its prefix; the same 403 whether
// or not it exists for a caller who may not look at every snapshot.
Result<Release> Load(Context& ctx, policy::Capability cap, const std::string& release) {
  SK_RETURN_IF_ERROR(ValidateRelease(release));
  SK_ASSIGN_OR_RETURN(auto begun, Find(ctx, kBegun, release));
  auto hidden = Status(Code::kForbidden, "forbidden",
                       "not allowed to use release " + release + " (or there is no such release)");
  if (!begun) {
    if (!AuthorizePrefix(ctx, policy::Capability::kList, "").ok()) return hidden;
    return NotFound("no release named " + release + " was begun");
  }
  if (!AuthorizePrefix(ctx, cap, begun->prefix).ok()) return hidden;
  Release r{std::move(*begun), "open", 0};
  SK_ASSIGN_OR_RETURN(auto committed, Find(ctx, kCommitted, release));
  SK_ASSIGN_OR_RETURN(auto aborted, Find(ctx, kAborted, release));
  if (committed) r = {std::move(r.begun), "committed", committed->created_ms};
  if (aborted) r = {std::move(r.begun), "aborted", aborted->created_ms};
  return r;
}

Json ReleaseJson(Context& ctx, const std::string& release, const Release& r) {
  Json versions = Json::object();
  for (const auto& [path, v] : r.begun.versions) {
    if (Listable(ctx, path)) versions[path] = v;
  }
  return {{"release", release},     {"prefix", r.begun.prefix},
          {"state", r.state},       {"begun_ms", r.begun.created_ms},
          {"ended_ms", r.ended_ms}, {"versions", versions}};
}

Reply Begin(Context& ctx, const std::string& release) {
  auto body_or = ParseJsonObject(ctx.req.body);
  if (!body_or.ok()) return Failure(body_or.status());
  Json body = std::move(body_or).value();
  if (Status st = OnlyFields(body, {"prefix"}); !st.ok()) return Failure(st);
  auto prefix = StringField(body, "prefix");
  if (!prefix.ok()) return Failure(prefix.status());
  if (!*prefix) return Failure(BadRequest("a release needs the 'prefix' whose secrets it covers"));
  if (Status st = secrets::ValidatePrefix(**prefix); !st.ok()) return Failure(st);
  if (Status st = AuthorizePrefix(ctx, policy::Capability::kSnapshot, **prefix); !st.ok()) return Failure(st);
  ctx.audit_path = release + ": " + ((*prefix)->empty() ? std::string("**") : **prefix);
  auto existing = Load(ctx, policy::Capability::kSnapshot, release);
  if (existing.ok()) {
    if (existing->state == "aborted") {
      return Failure(Conflict("release " + release + " was aborted; begin a new release", "release_aborted"));
    }
    if (existing->begun.prefix != **prefix) {
      return Failure(Conflict("release " + release + " was begun for prefix '" + existing->begun.prefix + "'",
                              "release_exists"));
    }
    Json j = ReleaseJson(ctx, release, *existing);
    j["already"] = true;
    return Json200(j);
  }
  if (existing.status().code() != Code::kNotFound) return Failure(existing.status());
  if (Status rec = ctx.record_change(); !rec.ok()) return Failure(rec);
  auto made = ctx.svc->CreateSnapshot(Name(kBegun, release), **prefix, ctx.actor);
  if (!made.ok() && made.status().reason() != "snapshot_exists") return Failure(made.status());
  auto now = Load(ctx, policy::Capability::kSnapshot, release);
  if (!now.ok()) return Failure(now.status());
  Json j = ReleaseJson(ctx, release, *now);
  j["already"] = !made.ok();  // a concurrent begin of the same release got there first
  return Json200(j);
}

Reply Commit(Context& ctx, const std::string& release) {
  auto body_or = ParseJsonObject(ctx.req.body);
  if (!body_or.ok()) return Failure(body_or.status());
  Json body = std::move(body_or).value();
  if (Status st = OnlyFields(body, {}); !st.ok()) return Failure(st);
  auto r_or = Load(ctx, policy::Capability::kSnapshot, release);
  if (!r_or.ok()) return Failure(r_or.status());
  Release r = std::move(r_or).value();
  ctx.audit_path = release + ": " + (r.begun.prefix.empty() ? "**" : r.begun.prefix);
  if (r.state == "aborted") {
    return Failure(Conflict("release " + release + " was aborted; begin a new release", "release_aborted"));
  }
  if (r.state == "committed") {
    Json j = ReleaseJson(ctx, release, r);
    j["already"] = true;
    return Json200(j);
  }
  if (Status rec = ctx.record_change(); !rec.ok()) return Failure(rec);
  auto made = ctx.svc->CreateSnapshot(Name(kCommitted, release), r.begun.prefix, ctx.actor);
  if (!made.ok() && made.status().reason() != "snapshot_exists") return Failure(made.status());
  auto now_or = Load(ctx, policy::Capability::kSnapshot, release);
  if (!now_or.ok()) return Failure(now_or.status());
  Release now = std::move(now_or).value();
  Json j = ReleaseJson(ctx, release, now);
  j["already"] = !made.ok();
  return Json200(j);
}

Reply Abort(Context& ctx, const std::string& release) {
  auto body_or = ParseJsonObject(ctx.req.body);
  if (!body_or.ok()) return Failure(body_or.status());
  Json body = std::move(body_or).value();
  if (Status st = OnlyFields(body, {"keep"}); !st.ok()) return Failure(st);
  secrets::RestoreOptions options;
  options.keep_rotated = true;
  options.marker = Name(kAborted, release);
  if (auto it = body.find("keep"); it != body.end()) {
    if (!it->is_array()) return Failure(BadRequest("'keep' must be a list of paths"));
    for (const Json& p : *it) {
      if (!p.is_string() || !secrets::ValidatePath(p.get<std::string>()).ok()) {
        return Failure(BadRequest("'keep' must be a list of paths"));
      }
      options.keep.insert(p.get<std::string>());
    }
  }
  auto r_or = Load(ctx, policy::Capability::kSnapshot, release);
  if (!r_or.ok()) return Failure(r_or.status());
  Release r = std::move(r_or).value();
  std::vector<std::string> paths;
  for (const auto& [path, v] : r.begun.versions) paths.push_back(path);
  ctx.audit_path = release + ": " + AuditPaths(paths);
  if (r.state == "committed") {
    return Failure(Conflict("release " + release +
                                " was committed: it is not aborted (roll back with a new release, or restore "
                                "snapshot " +
                                Name(kBegun, release) + ")",
                            "release_committed"));
  }
  if (r.state == "aborted") {
    Json j = ReleaseJson(ctx, release, r);
    j["already"] = true;
    return Json200(j);
  }
  Reply restored =
      RestoreChecked(ctx, r.begun, options, {{"release", release}, {"state", "aborted"}, {"already", false}});
  if (!restored.error.ok()) {
    // A concurrent abort may have got there first: its marker makes this one "already".
    auto again = Load(ctx, policy::Capability::kSnapshot, release);
    if (again.ok() && again->state == "aborted") {
      Json j = ReleaseJson(ctx, release, *again);
      j["already"] = true;
      return Json200(j);
    }
  }
  return restored;
}

Reply List(Context& ctx) {
  std::string state;
  if (auto s = ctx.match.query.find("state"); s != ctx.match.query.end()) state = s->second;
  if (!state.empty() && state != "open" && state != "committed" && state != "aborted") {
    return Failure(BadRequest("'state' is open, committed or aborted"));
  }
  auto begun = ctx.svc->ListSnapshots(std::string(kBegun));
  if (!begun.ok()) return Failure(begun.status());
  Json releases = Json::array();
  for (const secrets::SnapshotInfo& b : *begun) {
    const std::string release = b.name.substr(kBegun.size());
    auto r = Load(ctx, policy::Capability::kList, release);
    if (!r.ok()) continue;  // out of the caller's reach
    if (!state.empty() && r->state != state) continue;
    Json j = ReleaseJson(ctx, release, *r);
    j.erase("versions");
    releases.push_back(std::move(j));
  }
  return Json200({{"releases", releases}});
}

}  // namespace

Reply HandleDeploy(Context& ctx) {
  switch (ctx.match.route) {
    case Route::kDeployList:
      return List(ctx);
    case Route::kDeployGet: {
      auto r_or = Load(ctx, policy::Capability::kList, ctx.match.path);
      if (!r_or.ok()) return Failure(r_or.status());
      Release r = std::move(r_or).value();
      return Json200(ReleaseJson(ctx, ctx.match.path, r));
    }
    case Route::kDeployBegin:
      return Begin(ctx, ctx.match.path);
    case Route::kDeployCommit:
      return Commit(ctx, ctx.match.path);
    case Route::kDeployAbort:
      return Abort(ctx, ctx.match.path);
    default:
      return Failure(Internal("not a deploy route"));
  }
}

}  // namespace sk::api
