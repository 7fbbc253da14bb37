// KV v2 reads (kv2.h): a version's data, a path's metadata, a listing. Each checks the
// policy as the native routes do: `read` under the labels of the version read, `list` per
// path listed.
#include <set>

#include "agent/api/kv2_internal.h"
#include "agent/api/request_body.h"
#include "crypto/locked_pool.h"

namespace sk::api::kv2 {
namespace {

using policy::Capability;

// ?version=n; 0 (or none) is the latest, as in Vault.
Result<std::uint64_t> QueryVersion(const Context& ctx) {
  auto it = ctx.match.query.find("version");
  if (it == ctx.match.query.end()) return std::uint64_t{0};
  const std::string& v = it->second;
  if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos) {
    return BadRequest("'version' must be a whole number (0: the latest)");
  }
  return std::stoull(v);
}

// When the path last changed (a write, delete, undelete or destroy): its index row.
}  // namespace

std::uint64_t HeadVersion(Context& ctx, const std::string& path) {
  auto r = ctx.svc->RotationStatus(path);
  return r.ok() ? r->current : 0;
}

namespace {

std::uint64_t UpdatedMs(Context& ctx, const std::string& path) {
  auto listed = ctx.svc->List(path, 1);
  if (listed.ok() && !listed->empty() && (*listed)[0].path == path) return (*listed)[0].updated_ms;
  return 0;
}

// sealkeep's index keeps no time for a soft delete; the path's last change is not before it.
std::string DeletionTime(const secrets::VersionReport& v, std::uint64_t path_updated_ms) {
  if (v.state == "deleted") return Rfc3339(path_updated_ms);
  if (v.state == "live" && v.expires_ms != 0) return Rfc3339(v.expires_ms);
  return "";
}

// A read of a deleted, destroyed or expired version: Vault answers 404 with the version's
// metadata; a path with nothing but destroyed versions is simply missing.
Reply ReadRefused(Context& ctx, const std::string& path, std::optional<std::uint64_t> asked,
                  const Status& st) {
  const std::string_view r = st.reason();
  if (r != "deleted" && r != "destroyed" && st.code() != Code::kExpired) {
    if (st.code() == Code::kNotFound) return Failure(Missing(std::string(st.message())));
    return Failure(st);
  }
  auto versions = ctx.svc->Versions(path);
  if (!versions.ok()) return Failure(st);
  if (AllDestroyed(*versions)) return Failure(Missing(path + " does not exist"));
  const std::uint64_t n = asked.value_or(HeadVersion(ctx, path));
  if (n == 0 || n > versions->size()) return Failure(st);
  const secrets::VersionReport& v = (*versions)[n - 1];
  auto labels = ctx.svc->VersionLabels(path);
  Json meta = {
      {"created_time", Rfc3339(v.created_ms)},
      {"custom_metadata", labels.ok() && n <= labels->size() ? LabelsOrNull((*labels)[n - 1]) : nullptr},
      {"deletion_time", DeletionTime(v, UpdatedMs(ctx, path))},
      {"destroyed", v.state == "destroyed"},
      {"version", n}};
  if (st.code() == Code::kExpired) meta["deletion_time"] = Rfc3339(v.expires_ms);
  return Failure(st, {{"data", nullptr}, {"metadata", meta}});
}

// The answer to a read: the envelope around {"data": OBJECT, "metadata": {...}}, built in
// one pre-sized buffer the server wipes after sending (as the native GET's).
Reply ReadAnswer(const Context& ctx, const secrets::SecretValue& got) {
  std::optional<SecretBytes> object;
  if (auto f = got.labels.find(std::string(kKvFormatLabel));
      f != got.labels.end() && f->second == kKvFormatJson) {
    auto compact = CompactJson(got.value.Expose());
    if (compact.ok() && compact->size() >= 2 && compact->Expose()[0] == '{')
      object = std::move(compact).value();
  }
  const ByteView value = got.value.Expose();
  const bool utf8 = IsValidUtf8(value);
  const Json meta = {{"created_time", Rfc3339(got.created_ms)},
                     {"custom_metadata", LabelsOrNull(got.labels)},
                     {"deletion_time", got.expires_ms != 0 ? Rfc3339(got.expires_ms) : ""},
                     {"destroyed", false},
                     {"version", got.version}};
  const std::string head = EnvelopeHead(ctx.req.request_id) + "{\"data\":";
  const std::string tail = ",\"metadata\":" + meta.dump() + "}" + EnvelopeTail(nullptr);
  Reply reply;
  ApiResponse& r = reply.answer;
  r.secret = true;
  const std::size_t data_bound =
      object ? object->size() : 16 + (utf8 ? value.size() * 6 : (value.size() + 2) / 3 * 4);
  r.body.reserve(head.size() + data_bound + tail.size());
  r.body += head;
  if (object) {
    r.body.append(AsChars(object->Expose()));
  } else if (utf8) {
    r.body += "{\"value\":";
    AppendJsonString(r.body, AsChars(value));
    r.body += "}";
  } else {
    std::string enc = Base64Encode(value);
    r.body += "{\"value_b64\":\"";
    r.body += enc;
    r.body += "\"}";
    SecureWipe(enc.data(), enc.size());
  }
  r.body += tail;
  return reply;
}

}  // namespace

Reply Read(Context& ctx) {
  const std::string& path = ctx.match.path;
  if (Status st = CheckPath(path); !st.ok()) return Failure(st);
  auto version = QueryVersion(ctx);
  if (!version.ok()) return Failure(version.status());
  const std::optional<std::uint64_t> asked = *version == 0 ? std::nullopt : std::optional(*version);
  // The gate of the native GET: `read` under the labels of the version asked for (the
  // head's without one, or when there is no such version; none for a missing path).
  std::optional<secrets::Labels> labels;
  if (auto all = ctx.svc->VersionLabels(path); all.ok() && !all->empty()) {
    const std::uint64_t want = asked.value_or(HeadVersion(ctx, path));
    labels = want >= 1 && want <= all->size() ? (*all)[want - 1] : all->back();
  }
  if (Status allowed = ctx.authorize_labels(Capability::kRead, path, labels ? &*labels : nullptr);
      !allowed.ok())
    return Failure(allowed);
  auto got = ctx.svc->Get(path, asked);
  if (!got.ok()) return ReadRefused(ctx, path, asked, got.status());
  // The labels of the version actually read (a put may have moved the head meanwhile).
  if (Status allowed = ctx.authorize_labels(Capability::kRead, path, &got->labels); !allowed.ok())
    return Failure(allowed);
  return ReadAnswer(ctx, *got);
}

Reply Metadata(Context& ctx) {
  const std::string& path = ctx.match.path;
  if (Status st = CheckPath(path); !st.ok()) return Failure(st);
  auto labels = ctx.svc->VersionLabels(path);
  if (!labels.ok()) {
    if (labels.status().code() != Code::kNotFound) return Failure(labels.status());
    if (Status allowed = ctx.authorize_labels(Capability::kRead, path, nullptr); !allowed.ok())
      return Failure(allowed);
    return Failure(Missing(path + " does not exist"));
  }
  // As the native history: only the versions whose own labels the caller's `read` allows.
  const ReadableVersions readable = MayReadVersions(ctx, path, *labels);
  if (!readable.denial.ok()) return Failure(readable.denial);
  const std::vector<bool>& may = readable.may;
  auto versions = ctx.svc->Versions(path);
  if (!versions.ok()) return Failure(versions.status());
  if (AllDestroyed(*versions)) return Failure(Missing(path + " does not exist"));
  const std::uint64_t updated = UpdatedMs(ctx, path);
  Json list = Json::object();
  Json warnings = nullptr;
  const std::uint64_t head = HeadVersion(ctx, path);
  if (head == 0) return Failure(Missing(path + " does not exist"));
  for (const auto& v : *versions) {
    // Not a rotation's pending version, nor an aborted one above the head: never KV versions.
    if (v.version == 0 || v.version > head || v.version > may.size() || !may[v.version - 1]) continue;
    list[std::to_string(v.version)] = {{"created_time", Rfc3339(v.created_ms)},
                                       {"deletion_time", DeletionTime(v, updated)},
                                       {"destroyed", v.state == "destroyed"}};
    if (!v.verifies && v.state != "destroyed") {
      if (warnings.is_null()) warnings = Json::array();
      warnings.push_back("version " + std::to_string(v.version) + " does not verify (" + v.reason +
                         "): sealkeep will not serve it");
    }
  }
  Json data = {{"cas_required", false},
               {"created_time", Rfc3339(versions->front().created_ms)},
               {"current_version", head},
               {"custom_metadata", may[head - 1] ? LabelsOrNull((*labels)[head - 1]) : nullptr},
               {"delete_version_after", "0s"},
               {"max_versions", 0},
               {"oldest_version", 0},
               {"updated_time", Rfc3339(updated)},
               {"versions", list}};
  return Envelope(ctx, data, warnings);
}

namespace {

// Rows a listing pages through, and at most how many: Vault's LIST has no paging, so the
// work of one is bounded here (the answer then says so in its warnings).
constexpr std::size_t kListPage = 1000;
constexpr std::size_t kListMaxRows = 100'000;

}  // namespace

Reply List(Context& ctx) {
  const std::string& prefix = ctx.match.path;
  if (!prefix.empty()) {
    if (Status st = CheckPath(prefix); !st.ok()) return Failure(st);
  }
  const std::string base = prefix.empty() ? std::string() : prefix + "/";
  std::set<std::string> keys;
  std::string after;
  std::size_t examined = 0;
  bool truncated = false;
  for (;;) {
    auto page = ctx.svc->List(prefix, kListPage, after);
    if (!page.ok()) return Failure(page.status());
    bool jumped = false;
    for (const auto& p : *page) {
      ++examined;
      after = p.path;
      if (p.path.size() <= base.size() || p.path.compare(0, base.size(), base) != 0) continue;  // the prefix
      // What the caller may not list is not there for it (as in the native listing), nor
      // is a path of destroyed versions only (as in Vault after DELETE metadata).
      if (!ctx.authorize_labels(Capability::kList, p.path, &p.labels).ok()) continue;
      if (p.head_state == "destroyed") {
        auto versions = ctx.svc->Versions(p.path);
        if (versions.ok() && AllDestroyed(*versions)) continue;
      }
      const std::string rel = p.path.substr(base.size());
      if (const std::size_t cut = rel.find('/'); cut != std::string::npos) {
        const std::string folder = rel.substr(0, cut + 1);
        keys.insert(folder);
        after = base + folder + '\x7f';  // past every path in that folder: '\x7f' sorts after them all
        jumped = true;
        break;
      }
      keys.insert(rel);
    }
    if (examined >= kListMaxRows) {
      truncated = true;
      break;
    }
    if (!jumped && page->size() < kListPage) break;
  }
  if (keys.empty()) return Failure(Missing("nothing to list under '" + prefix + "'"));
  Json warnings = nullptr;
  if (truncated) {
    warnings = Json::array({"the listing stopped after examining " + std::to_string(kListMaxRows) +
                            " paths: list a narrower prefix, or use GET /v1/secrets?prefix= (paged)"});
  }
  return Envelope(ctx, {{"keys", Json(std::vector<std::string>(keys.begin(), keys.end()))}}, warnings);
}

}  // namespace sk::api::kv2
