// `sealkeep put|get|ls|versions|rm|undelete|destroy|rollback|floor`: one secret path at a
// time, through a running sealkeepd (docs/api.md, /v1/secrets). Values come from stdin or
// a file, never from the command line, and are written out byte for byte.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "agent/secrets/service.h"
#include "crypto/bytes.h"
#include "crypto/locked_pool.h"
#include "tools/cli/agent_client.h"
#include "tools/cli/command.h"

namespace sk::cli {
namespace {

constexpr std::chrono::milliseconds kWriteTimeout{60'000};

struct SecretFlags {
  std::string path;
  std::string value_file;
  std::uint64_t cas = 0, expires_in = 0, max_versions_value = 0, to = 0, floor = 0;
  std::uint64_t version = 0;  // 0: not given (the option only takes N >= 1)
  std::vector<std::string> labels;
  std::string prefix;
  std::string stage;     // get --stage
  std::string expiring;  // ls --expiring DURATION
  std::uint64_t limit = 1000;
  // Options whose presence matters (cas 0 means "must not exist").
  CLI::Option* put_cas = nullptr;
  CLI::Option* rollback_cas = nullptr;
  CLI::Option* expires = nullptr;
  CLI::Option* max_versions = nullptr;
};

SecretFlags& Flags() {
  static SecretFlags flags;
  return flags;
}

bool Given(const CLI::Option* o) { return o != nullptr && o->count() > 0; }

// "db/pw: version 3 (txn 1a2b3c4d..)", with `what` after the version when given.
void PrintWrite(const Json& answer, const std::string& what = "") {
  std::printf("%s: version %llu%s (txn %s)\n", Str(answer, "path").c_str(),
              static_cast<unsigned long long>(U64(answer, "version")), what.c_str(),
              ShortTxn(answer).c_str());
}

HttpResponse Post(const std::string& target, const Json& body) {
  std::string text = body.dump();
  return CallOrFail({"POST", target, text, kWriteTimeout});
}

void Finish(const HttpResponse& r, const std::string& what = "") {
  if (Globals().json) return PrintBody(r);
  PrintWrite(ParseBody(r), what);
}

Json LabelsJson(const std::vector<std::string>& labels) {
  Json j = Json::object();
  for (const auto& kv : labels) {
    std::size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      Fail(InvalidArgument("--label takes key=value, got '" + kv + "'", "bad_labels"));
    }
    std::string key = kv.substr(0, eq);
    if (j.contains(key)) Fail(InvalidArgument("--label " + key + " is given twice", "bad_labels"));
    j[key] = kv.substr(eq + 1);
  }
  return j;
}

void RunPut() {
  auto& f = Flags();
  std::string target = SecretTarget(f.path);
  Json meta = Json::object();
  if (Given(f.put_cas)) meta["cas"] = f.cas;
  if (Given(f.expires)) meta["expires_in"] = f.expires_in;
  if (Given(f.max_versions)) meta["max_versions"] = f.max_versions_value;
  if (!f.labels.empty()) meta["labels"] = LabelsJson(f.labels);
  std::string rest = meta.dump();  // "{...}": no secret in it

  SecretBytes value = ReadSecretInput(f.value_file);
  std::string b64 = Base64Encode(value.Expose());
  WipeOnExit wipe_b64(b64);
  // The body is built in one buffer of its final size, so no copy of the value is left
  // in a freed allocation; it is wiped once sent (also when the call fails).
  std::string body;
  WipeOnExit wipe_body(body);
  body.reserve(b64.size() + rest.size() + 32);
  body += "{\"value_b64\":\"";
  body += b64;
  body += '"';
  if (rest == "{}") {
    body += '}';
  } else {
    body += ',';
    body.append(rest, 1, std::string::npos);
  }
  WipeString(b64);
  Finish(CallOrFail({"PUT", target, body, kWriteTimeout}));
}

void RunGet() {
  auto& f = Flags();
  std::string target = SecretTarget(f.path);
  std::string query;
  if (!Globals().json) query = "encoding=base64";
  if (f.version != 0)
    query += (query.empty() ? "" : "&") + std::string("version=") + std::to_string(f.version);
  if (!f.stage.empty()) {
    if (f.version != 0) Fail(InvalidArgument("give --version or --stage, not both", "usage"));
    query += (query.empty() ? "" : "&") + std::string("stage=") + f.stage;
  }
  if (!query.empty()) target += "?" + query;
  HttpResponse r = CallOrFail({"GET", target});
  if (Globals().json) return PrintBody(r);
  Json j = ParseBody(r);
  if (!j.contains("value_b64") || !j["value_b64"].is_string()) {
    Fail(Status(Code::kUnavailable, "bad_response", "sealkeepd's answer has no value_b64"));
  }
  std::string& b64 = j["value_b64"].get_ref<std::string&>();
  auto value = Base64Decode(b64);
  WipeString(b64);
  if (!value) Fail(Status(Code::kUnavailable, "bad_response", "sealkeepd's value_b64 is not base64"));
  // Straight to the descriptor: stdio's buffer would keep a copy of the value.
  std::fflush(stdout);
  std::size_t off = 0;
  int err = 0;
  while (off < value->size()) {
    ssize_t n = ::write(STDOUT_FILENO, value->data() + off, value->size() - off);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      err = errno;
      break;
    }
  }
  SecureWipe(value->data(), value->size());
  if (err != 0)
    Fail(Unavailable(std::string("cannot write the value to stdout: ") + std::strerror(err), "write_failed"));
}

// Pages through GET /v1/secrets with the answer's `next` cursor until --limit paths are
// in hand or the agent says there are no more (a page may be empty: the agent examines a
// bounded number of rows per request, and skips those this caller may not list).
void RunList() {
  auto& f = Flags();
  // --expiring: only heads that expire within the window (or have expired), soonest first.
  std::optional<std::uint64_t> window_ms;
  if (!f.expiring.empty()) {
    auto s = secrets::ParseRotationEvery(f.expiring);
    if (!s)
      Fail(InvalidArgument("--expiring takes a whole number and one unit: s, m, h or d (\"7d\")", "usage"));
    window_ms = *s * 1000;
  }
  const std::string base = "/v1/secrets?prefix=" + QueryEscape(CheckedPrefix(f.prefix));
  Json paths = Json::array();
  bool truncated = false;
  std::string after;
  do {
    const std::uint64_t want = std::min<std::uint64_t>(f.limit - paths.size(), 1000);
    std::string target = base + "&limit=" + std::to_string(want);
    if (!after.empty()) target += "&after=" + QueryEscape(after);
    Json j = ParseBody(CallOrFail({"GET", target}));
    for (const auto& p : j.value("paths", Json::array())) paths.push_back(p);
    truncated = j.value("truncated", false);
    std::string next = truncated ? j.value("next", "") : "";
    if (next == after) break;  // no progress: never loop on an agent that does not page
    after = std::move(next);
  } while (!after.empty() && paths.size() < f.limit);
  if (window_ms) {
    const auto now = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                    std::chrono::system_clock::now().time_since_epoch())
                                                    .count());
    Json kept = Json::array();
    for (const auto& p : paths) {
      const std::uint64_t at = U64(p, "expires_ms");
      if (at != 0 && at <= now + *window_ms) kept.push_back(p);
    }
    std::stable_sort(kept.begin(), kept.end(), [](const Json& a, const Json& b) {
      return U64(a, "expires_ms") < U64(b, "expires_ms");
    });
    paths = std::move(kept);
  }
  if (Globals().json) {
    Json out = {{"paths", paths}, {"truncated", truncated}};
    if (truncated && !after.empty()) out["next"] = after;
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  std::vector<std::vector<std::string>> rows = {
      {"PATH", "HEAD", "STATE", "FLOOR", "UPDATED", window_ms ? "EXPIRES" : "LABELS"}};
  for (const auto& p : paths) {
    std::string labels;
    const Json path_labels = p.value("labels", Json::object());
    for (const auto& [k, v] : path_labels.items()) {
      labels += (labels.empty() ? "" : ",") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
    }
    std::string state = Str(p, "state");
    if (U64(p, "pending") != 0) state += " (rotating to " + std::to_string(U64(p, "pending")) + ")";
    rows.push_back({Str(p, "path"), std::to_string(U64(p, "head")), state, std::to_string(U64(p, "floor")),
                    FormatTimeMs(U64(p, "updated_ms")),
                    window_ms        ? FormatTimeMs(U64(p, "expires_ms"))
                    : labels.empty() ? "-"
                                     : labels});
  }
  if (rows.size() == 1) {
    std::fprintf(stderr, "sealkeep: no secrets%s%s\n", f.prefix.empty() ? "" : (" under " + f.prefix).c_str(),
                 window_ms ? (" expiring within " + f.expiring).c_str() : "");
    return;
  }
  PrintTable(rows);
  if (truncated) {
    std::fprintf(stderr, "sealkeep: the list stops at %llu paths; raise --limit\n",
                 static_cast<unsigned long long>(f.limit));
  }
}

void RunVersions() {
  HttpResponse r = CallOrFail({"GET", SecretTarget(Flags().path, "/versions")});
  if (Globals().json) return PrintBody(r);
  Json j = ParseBody(r);
  std::vector<std::vector<std::string>> rows = {
      {"VERSION", "STATE", "KIND", "CREATED", "EXPIRES", "KEYGEN", "VERIFIES"}};
  for (const auto& v : j.value("versions", Json::array())) {
    std::string kind = Str(v, "kind");
    if (U64(v, "from_version") != 0) kind += " from " + std::to_string(U64(v, "from_version"));
    std::string verifies = v.value("verifies", false) ? "yes" : "no: " + Str(v, "reason");
    rows.push_back({std::to_string(U64(v, "version")), Str(v, "state"), kind,
                    FormatTimeMs(U64(v, "created_ms")), FormatTimeMs(U64(v, "expires_ms")),
                    std::to_string(U64(v, "key_generation")), verifies});
  }
  PrintTable(rows);
}

void RunDelete() {
  auto& f = Flags();
  std::string target = SecretTarget(f.path);
  if (f.version != 0) target += "?version=" + std::to_string(f.version);
  Finish(CallOrFail({"DELETE", target, {}, kWriteTimeout}), " deleted");
}

void RunUndelete() {
  auto& f = Flags();
  Json body = Json::object();
  if (f.version != 0) body["version"] = f.version;
  Finish(Post(SecretTarget(f.path, "/undelete"), body), " undeleted");
}

void RunDestroy() {
  auto& f = Flags();
  Finish(Post(SecretTarget(f.path, "/destroy"), {{"version", f.version}}), " destroyed");
}

void RunRollback() {
  auto& f = Flags();
  Json body = {{"to", f.to}};
  if (Given(f.rollback_cas)) body["cas"] = f.cas;
  Finish(Post(SecretTarget(f.path, "/rollback"), body), ", a copy of version " + std::to_string(f.to));
}

void RunFloor() {
  auto& f = Flags();
  HttpResponse r = Post(SecretTarget(f.path, "/floor"), {{"floor", f.floor}});
  if (Globals().json) return PrintBody(r);
  Json j = ParseBody(r);
  std::printf("%s: floor %llu (txn %s)\n", Str(j, "path").c_str(),
              static_cast<unsigned long long>(U64(j, "version")), ShortTxn(j).c_str());
}

CLI::App* Sub(CLI::App& app, const char* name, const char* help, void (*run)()) {
  auto* cmd = app.add_subcommand(name, help);
  cmd->add_option("PATH", Flags().path, "Secret path: segments of [A-Za-z0-9._-] joined by '/'")->required();
  cmd->callback(run);
  return cmd;
}

void AddVersionOption(CLI::App* cmd, const char* help) {
  cmd->add_option("--version", Flags().version, help)->check(CLI::PositiveNumber);
}

void Add(CLI::App& app) {
  auto& f = Flags();
  auto* put =
      Sub(app, "put",
          "Write a new version of PATH (PUT /v1/secrets/PATH). The value is read from stdin, or from "
          "--value-file, byte for byte (no newline is stripped), and sent as value_b64; there is no way "
          "to give it on the command line. Prints the new version",
          RunPut);
  put->add_option("--value-file", f.value_file,
                  "Read the value from this file instead of stdin ('-': stdin)");
  f.put_cas =
      put->add_option("--cas", f.cas, "Only if the head version is N now (0: only if PATH does not exist)");
  f.expires = put->add_option("--expires-in", f.expires_in, "The version expires after SECONDS");
  put->add_option("--label", f.labels, "A label key=value on the version (repeat for more)");
  f.max_versions = put->add_option("--max-versions", f.max_versions_value, "Keep at most N versions of PATH");

  auto* get =
      Sub(app, "get",
          "Write the value of PATH's latest live version (or --version N) to stdout, exactly its bytes "
          "with nothing added (GET /v1/secrets/PATH?encoding=base64, decoded). With --json, print the "
          "agent's JSON answer instead (it holds the value)",
          RunGet);
  AddVersionOption(get, "Read this version instead of the latest live one");
  get->add_option("--stage", f.stage,
                  "Read the version a stage names: current (the head), previous (the newest live version "
                  "below it: what was current before the last rotation), or pending (a rotation's new "
                  "value; needs `rotate`)")
      ->check(CLI::IsMember({"current", "previous", "pending"}));
  get->add_flag("--json", Globals().json,
                "Print the agent's JSON answer (path, version, value, times, labels)");

  auto* ls =
      app.add_subcommand("ls",
                         "List paths under PREFIX with head version, state, floor, labels; never values "
                         "(GET /v1/secrets?prefix=PREFIX&limit=N&after=NEXT, page by page)");
  ls->add_option("PREFIX", f.prefix, "Only paths under this prefix (default: all)");
  ls->add_option("--limit", f.limit, "At most N paths (fetched in pages of up to 1000)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000000));
  ls->add_option("--expiring", f.expiring,
                 "Only paths whose head expires within DURATION (\"7d\", \"12h\") or has expired, soonest "
                 "first, with an EXPIRES column (of the paths --limit fetched)");
  ls->callback(RunList);

  Sub(app, "versions",
      "Show PATH's history: each version's state, kind, times, key generation and whether it verifies "
      "(GET /v1/secrets/PATH/versions)",
      RunVersions);

  auto* rm =
      Sub(app, "rm",
          "Soft-delete PATH's head version, or --version N (DELETE /v1/secrets/PATH); `undelete` brings "
          "it back",
          RunDelete);
  AddVersionOption(rm, "Delete this version instead of the head");
  auto* undelete = Sub(
      app, "undelete",
      "Undo a soft delete of PATH's head, or of --version N (POST /v1/secrets/PATH/undelete)", RunUndelete);
  AddVersionOption(undelete, "Undelete this version");

  auto* destroy = Sub(app, "destroy",
                      "Erase version N of PATH for good: its data key and ciphertext go, its sealed journal "
                      "entry stays (POST /v1/secrets/PATH/destroy {\"version\":N})",
                      RunDestroy);
  AddVersionOption(destroy, "The version to destroy");
  destroy->get_option("--version")->required();

  auto* rollback = Sub(app, "rollback",
                       "Write a new head version holding version N's value, only if version N verifies (POST "
                       "/v1/secrets/PATH/rollback {\"to\":N}); a refusal names its reason and exits 4",
                       RunRollback);
  rollback->add_option("--to", f.to, "The version to roll back to")->required()->check(CLI::PositiveNumber);
  f.rollback_cas = rollback->add_option("--cas", f.cas, "Only if the head version is N now");

  auto* floor = Sub(app, "floor",
                    "Raise PATH's rollback floor to N: versions below it can never be rolled back to "
                    "(POST /v1/secrets/PATH/floor {\"floor\":N}); floors only go up",
                    RunFloor);
  floor->add_option("N", f.floor, "The new floor")->required();
}

const Registrar kRegistrar(Add, 20);

}  // namespace
}  // namespace sk::cli
