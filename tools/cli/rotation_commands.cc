// `sealkeep rotation begin|finish|abort|status|run` and `sealkeep rotator`: staged rotation
// of a secret and of the credential it is at a target (docs/rotation.md). `sealkeep rotate`
// (sys_commands.cc) is another thing: it rotates the agent's own master key.
//
// The rotator's crash guarantee comes from the agent's journal: begin stores the new value
// as a pending version, so a rotator killed at any step leaves either no pending version
// (nothing happened, or the rotation finished or aborted) or one, which the next run
// resolves from what the target accepts, before anything else on that path:
//   the target accepts the pending value  -> finish (pending becomes current)
//   it accepts the current value          -> abort  (the target was never changed, or was put back)
//   neither                                -> revert to the current value, test it, abort
//   the target cannot be reached           -> leave it pending and fail; the next run tries again
// So every run ends each path in exactly one state: finished, or aborted with the target on
// the old value, or untouched and reported (never the store and the target disagreeing).
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "agent/secrets/service.h"
#include "crypto/bytes.h"
#include "crypto/locked_pool.h"
#include "tools/cli/agent_client.h"
#include "tools/cli/command.h"
#include "tools/cli/lease_database.h"
#include "tools/cli/rotation_config.h"
#include "tools/cli/rotation_target.h"

namespace sk::cli {
namespace {

constexpr std::chrono::milliseconds kWriteTimeout{60'000};
constexpr const char* kLockDir = "/run/sealkeep-rotator";  // tmpfiles: root:sealkeep 2770
constexpr const char* kLockFile = "/run/sealkeep-rotator/lock";

struct RotationFlags {
  std::string path;
  std::string value_file;
  std::string generate;  // begin: password | bytes
  std::uint64_t length = 32;
  std::string encoding = "hex";
  std::string every;
  std::string note;
  std::string reason;
  std::uint64_t version = 0;
  std::string config = std::string(kRotationConfigFile);
  bool force = false;
  bool serve_leases = false;
  std::string listen;
  CLI::Option* cas_opt = nullptr;
  std::uint64_t cas = 0;
};

RotationFlags& Flags() {
  static RotationFlags f;
  return f;
}

std::uint64_t NowMs() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// The rotation label's form of a schedule: "30d", "12h", "15m" or "90s".
std::string EveryText(std::chrono::seconds every) {
  const auto s = static_cast<std::uint64_t>(every.count());
  if (s % 86400 == 0) return std::to_string(s / 86400) + "d";
  if (s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

// `meta` (a JSON object, no secret in it) with "value_b64" added, built in one buffer of
// its final size so no freed allocation keeps a copy of the value; the caller wipes it.
std::string BodyWithValue(const Json& meta, const SecretBytes& value) {
  std::string b64 = Base64Encode(value.Expose());
  WipeOnExit wipe_b64(b64);
  const std::string head = meta.dump();
  std::string body;
  body.reserve(head.size() + b64.size() + 32);
  body = head;
  body.pop_back();
  body += meta.empty() ? "\"value_b64\":\"" : ",\"value_b64\":\"";
  body += b64;  // appended in place: no temporary holds the value
  body += "\"}";
  return body;  // moved out (NRVO): the one buffer
}

// One call whose error is a Status (the rotator goes on with the next path).
Result<Json> Call(const std::string& method, const std::string& target, const std::string& body = "") {
  SK_ASSIGN_OR_RETURN(HttpResponse r, HttpCall(Globals().socket, {method, target, body, kWriteTimeout}));
  SK_RETURN_IF_ERROR(StatusFromResponse(r));
  Json j = Json::parse(r.body, nullptr, false);
  if (!j.is_object())
    return Status(Code::kUnavailable, "bad_response", "sealkeepd's answer is not a JSON object");
  return j;
}

// The test seam of the crash tests: SEALKEEP_TEST_KILL_AT=begin|set|test kills the rotator
// (SIGKILL, no clean-up) right after that step, as a power cut or an OOM kill would.
void MaybeDie(const char* step) {
  const char* at = std::getenv("SEALKEEP_TEST_KILL_AT");
  if (at != nullptr && std::string_view(at) == step) ::kill(::getpid(), SIGKILL);
}

// A reason for the journal and the alert: a step and the target's error code, printable
// ASCII, short. Never the target's message: an exec program's output is its own and could
// hold anything (even the value), and the journal keeps what it is given for good.
std::string ReasonFor(std::string_view step, const Status& st) {
  std::string out = std::string(step) + ": " + std::string(st.reason().empty() ? "failed" : st.reason());
  for (char& c : out) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return out.substr(0, 200);
}

struct Outcome {
  std::string path;
  std::string result;  // finished, aborted, not_due, failed, resumed_finished, resumed_aborted
  std::string detail;
  bool ok = true;
};

class Rotator {
 public:
  explicit Rotator(const RotationEntry& e) : e_(e) {}

  // One path: resume a pending rotation, else rotate when due (or `force`). `value`, when
  // not empty, is the new value (else the entry's generator makes it in the agent).
  Outcome Run(bool force, SecretBytes value) {
    out_.path = e_.path;
    auto st = RunSteps(force, std::move(value));
    if (!st.ok()) {
      out_.ok = false;
      out_.result = "failed";
      out_.detail = st.ToString();
    }
    return out_;
  }

 private:
  Status RunSteps(bool force, SecretBytes value) {
    SK_ASSIGN_OR_RETURN(Json status, Call("GET", SecretTarget(e_.path, "/rotation/status")));
    if (U64(status, "pending") != 0) {
      SK_RETURN_IF_ERROR(MakeTheTarget());
      return Resume(U64(status, "pending"));
    }
    const std::uint64_t current = U64(status, "current");
    // Due when `every` has passed since the current version was written, or at once when
    // the path was never rotated (no sealkeep.rotation label): enabling rotation rotates.
    const bool rotated_before = status.value("labels", Json::object()).contains(secrets::kRotationLabel);
    const std::uint64_t due =
        U64(status, "current_created_ms") + static_cast<std::uint64_t>(e_.every.count()) * 1000;
    if (!force && rotated_before && NowMs() < due) {
      out_.result = "not_due";
      out_.detail = "due " + FormatTimeMs(due);
      return OkStatus();
    }
    SK_RETURN_IF_ERROR(MakeTheTarget());  // only now: it reads the admin secret (an audited read)
    // begin: the new value is stored (pending) before the target sees it.
    Json body = {{"cas", current}, {"note", "sealkeep rotator: " + target_->Describe()}};
    if (e_.every.count() > 0) body["every"] = EveryText(e_.every);
    std::string text;
    WipeOnExit wipe(text);
    if (!value.empty()) {
      text = BodyWithValue(body, value);
    } else if (!e_.generator.is_null()) {
      body["generator"] = e_.generator;
      text = body.dump();
    } else {
      return InvalidArgument(
          e_.path + " has no generator in the rotation config; give the value with --value-file", "usage");
    }
    SK_ASSIGN_OR_RETURN(Json begun, Call("POST", SecretTarget(e_.path, "/rotation/begin"), text));
    const std::uint64_t pending = U64(begun, "version");
    MaybeDie("begin");
    SK_ASSIGN_OR_RETURN(Values v, Fetch(pending, current));
    Status set = target_->Set(v.pending.Expose(), v.current.Expose());
    MaybeDie("set");
    if (!set.ok()) return PutBack(pending, v, ReasonFor("set failed", set), set);
    Status tested = target_->Test(v.pending.Expose());
    MaybeDie("test");
    if (!tested.ok())
      return PutBack(pending, v, ReasonFor("the target does not accept the new value", tested), tested);
    SK_RETURN_IF_ERROR(Finish(pending));
    out_.result = "finished";
    out_.detail = "version " + std::to_string(pending) + " is current at " + target_->Describe();
    return OkStatus();
  }

  struct Values {
    SecretBytes pending, current;
  };

  // Both values, checked to be the versions this rotation is about.
  Result<Values> Fetch(std::uint64_t pending, std::uint64_t current) {
    Values v;
    std::uint64_t got = 0;
    SK_ASSIGN_OR_RETURN(v.pending, FetchValue(e_.path, "stage=pending", &got));
    if (got != pending) {
      return Conflict(
          e_.path + ": the pending version is " + std::to_string(got) + ", not " + std::to_string(pending),
          "rotation_changed");
    }
    SK_ASSIGN_OR_RETURN(v.current, FetchValue(e_.path, "stage=current", &got));
    if (current != 0 && got != current) {
      return Conflict(
          e_.path + ": the current version is " + std::to_string(got) + ", not " + std::to_string(current),
          "rotation_changed");
    }
    return v;
  }

  Status MakeTheTarget() {
    if (target_) return OkStatus();
    SecretBytes admin;
    if (!e_.admin_secret.empty()) {
      auto got = FetchValue(e_.admin_secret);
      if (!got.ok())
        return got.status().WithContext("reading the target's admin password " + e_.admin_secret);
      admin = std::move(got).value();
    }
    SK_ASSIGN_OR_RETURN(target_, MakeTarget(e_.target, std::move(admin)));
    return OkStatus();
  }

  // A rotation found pending (a rotator was killed, or a target was down): decided from
  // what the target accepts now.
  Status Resume(std::uint64_t pending) {
    SK_ASSIGN_OR_RETURN(Values v, Fetch(pending, 0));
    Status accepts_new = target_->Test(v.pending.Expose());
    if (accepts_new.ok()) {
      SK_RETURN_IF_ERROR(Finish(pending));
      out_.result = "resumed_finished";
      out_.detail = "version " + std::to_string(pending) + " was already set at " + target_->Describe() +
                    "; it is current now";
      return OkStatus();
    }
    if (accepts_new.reason() != target_reason::kRefused) {
      return accepts_new.WithContext("resuming the rotation to version " + std::to_string(pending) +
                                     " (left pending; the next run tries again)");
    }
    SK_RETURN_IF_ERROR(
        PutBack(pending, v, ReasonFor("resumed: the target does not accept the pending value", accepts_new),
                accepts_new));
    out_.result = "resumed_aborted";
    return OkStatus();
  }

  // The target back on the current value (always reverted: a set may have landed even when
  // it reported a failure, or land late through a cache), then shown to accept it, then
  // abort. If it cannot be shown to be on the current value, the rotation stays pending (an
  // abort now could leave the store and the target disagreeing) and the next run resolves
  // it. `why` goes to the journal and the alert; `cause` (the full error) only to the output.
  Status PutBack(std::uint64_t pending, Values& v, const std::string& why, const Status& cause) {
    Status reverted = target_->Revert(v.current.Expose(), v.pending.Expose());
    Status on_old = target_->Test(v.current.Expose());
    if (!on_old.ok()) {
      return Status(Code::kUnavailable, "rotation_stuck",
                    e_.path + ": " + cause.ToString() +
                        "; and the target could not be put back on the current value (" +
                        (reverted.ok() ? on_old : reverted).ToString() + "): version " +
                        std::to_string(pending) + " stays pending and the next run resolves it");
    }
    Json body = {{"version", pending}, {"reason", why}};
    SK_RETURN_IF_ERROR(Call("POST", SecretTarget(e_.path, "/rotation/abort"), body.dump()).status());
    out_.ok = false;
    out_.result = "aborted";
    out_.detail = cause.ToString() + "; the target is on the current value";
    return OkStatus();
  }

  Status Finish(std::uint64_t pending) {
    Json body = {{"version", pending}};
    return Call("POST", SecretTarget(e_.path, "/rotation/finish"), body.dump()).status();
  }

  const RotationEntry& e_;
  std::unique_ptr<RotationTarget> target_;
  Outcome out_;
};

// One rotator at a time per host, the timer's and an admin's alike: two would race on the
// same pending versions (one aborting what the other is setting). The lock file is
// $SEALKEEP_ROTATOR_LOCK (tests), else kLockFile, in a folder of group sealkeep that the
// package's tmpfiles.d makes (and this makes when it is missing, as root on a dev machine).
void TakeLock() {
  const char* env = std::getenv("SEALKEEP_ROTATOR_LOCK");
  const std::string file = env != nullptr && *env != '\0' ? env : kLockFile;
  if (file == kLockFile && ::access(kLockDir, F_OK) != 0 && ::mkdir(kLockDir, 02770) == 0) {
    (void)::chmod(kLockDir, 02770);  // mkdir's mode passes through the umask
  }
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0660);
  if (fd >= 0) (void)::fchmod(fd, 0660);  // whoever made it, the other side (group sealkeep) opens it too
  if (fd < 0) {
    Fail(Unavailable("cannot open the rotator's lock " + file + ": " + std::strerror(errno), "lock_failed"));
  }
  if (::flock(fd, LOCK_EX) != 0) {
    Fail(Unavailable("cannot lock " + file + ": " + std::strerror(errno), "lock_failed"));
  }
  // fd stays open (and locked) until the process ends.
}

void Print(const std::vector<Outcome>& outcomes) {
  if (Globals().json) {
    Json a = Json::array();
    for (const auto& o : outcomes)
      a.push_back({{"path", o.path}, {"result", o.result}, {"detail", o.detail}});
    std::printf("%s\n", Json{{"rotations", a}}.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
    return;
  }
  for (const auto& o : outcomes) {
    std::printf("%s: %s%s%s\n", o.path.c_str(), o.result.c_str(), o.detail.empty() ? "" : ": ",
                o.detail.c_str());
  }
}

int ExitFor(const std::vector<Outcome>& outcomes) {
  for (const auto& o : outcomes) {
    if (!o.ok) return o.result.find("aborted") != std::string::npos ? kExitConflict : kExitError;
  }
  return kExitOk;
}

std::vector<RotationEntry> LoadConfigOrFail() {
  auto cfg = LoadRotationConfig(Flags().config);
  if (!cfg.ok()) Fail(cfg.status());
  return std::move(cfg).value();
}

void RunRotator() {
  if (Flags().serve_leases) ServeLeases(Flags().config, Flags().listen);
  std::vector<RotationEntry> entries = LoadConfigOrFail();
  TakeLock();
  std::vector<Outcome> outcomes;
  for (const RotationEntry& e : entries) outcomes.push_back(Rotator(e).Run(Flags().force, SecretBytes()));
  Print(outcomes);
  if (int code = ExitFor(outcomes); code != kExitOk) throw ExitRequest{code};
}

void RunOne() {
  auto& f = Flags();
  std::vector<RotationEntry> entries = LoadConfigOrFail();
  const RotationEntry* entry = nullptr;
  for (const RotationEntry& e : entries) {
    if (e.path == f.path) entry = &e;
  }
  if (entry == nullptr) {
    Fail(NotFound(f.path + " is not in " + f.config + " (a rotation needs its target)", "not_configured"));
  }
  SecretBytes value;
  if (!f.value_file.empty()) value = ReadSecretInput(f.value_file);
  TakeLock();
  std::vector<Outcome> outcomes{Rotator(*entry).Run(true, std::move(value))};
  Print(outcomes);
  if (int code = ExitFor(outcomes); code != kExitOk) throw ExitRequest{code};
}

void RunBegin() {
  auto& f = Flags();
  Json meta = Json::object();
  if (f.cas_opt != nullptr && f.cas_opt->count() > 0) meta["cas"] = f.cas;
  if (!f.every.empty()) meta["every"] = f.every;
  if (!f.note.empty()) meta["note"] = f.note;
  std::string body;
  WipeOnExit wipe(body);
  if (!f.generate.empty()) {
    if (!f.value_file.empty()) Fail(InvalidArgument("give --generate or --value-file, not both", "usage"));
    Json g = {{"type", f.generate}, {"length", f.length}};
    if (f.generate == "bytes") g["encoding"] = f.encoding;
    meta["generator"] = g;
    body = meta.dump();
  } else {
    body = BodyWithValue(meta, ReadSecretInput(f.value_file));
  }
  HttpResponse r = CallOrFail({"POST", SecretTarget(f.path, "/rotation/begin"), body, kWriteTimeout});
  if (Globals().json) return PrintBody(r);
  Json j = ParseBody(r);
  std::printf("%s: version %llu is pending (txn %s); finish or abort it\n", Str(j, "path").c_str(),
              static_cast<unsigned long long>(U64(j, "version")), ShortTxn(j).c_str());
}

void RunEnd(bool finish) {
  auto& f = Flags();
  Json body = {{"version", f.version}};
  if (!finish && !f.reason.empty()) body["reason"] = f.reason;
  HttpResponse r = CallOrFail({"POST", SecretTarget(f.path, finish ? "/rotation/finish" : "/rotation/abort"),
                               body.dump(), kWriteTimeout});
  if (Globals().json) return PrintBody(r);
  Json j = ParseBody(r);
  std::printf("%s: version %llu %s (txn %s)\n", Str(j, "path").c_str(),
              static_cast<unsigned long long>(f.version), finish ? "is current" : "was aborted and erased",
              ShortTxn(j).c_str());
}

void RunStatus() {
  auto& f = Flags();
  std::vector<std::string> paths;
  if (!f.path.empty()) {
    paths.push_back(f.path);
  } else {
    // Every configured path (when the config can be read) and every path the agent marks.
    if (auto cfg = LoadRotationConfig(f.config); cfg.ok()) {
      for (const auto& e : *cfg) paths.push_back(e.path);
    } else if (cfg.status().reason() != "config_missing") {
      Fail(cfg.status());
    }
    std::string after;
    do {
      std::string target = "/v1/secrets?prefix=&limit=1000";
      if (!after.empty()) target += "&after=" + QueryEscape(after);
      Json j = ParseBody(CallOrFail({"GET", target}));
      for (const auto& p : j.value("paths", Json::array())) {
        const Json labels = p.value("labels", Json::object());
        if ((labels.contains(secrets::kRotationLabel) || U64(p, "pending") != 0) &&
            std::find(paths.begin(), paths.end(), Str(p, "path")) == paths.end()) {
          paths.push_back(Str(p, "path"));
        }
      }
      std::string next = j.value("truncated", false) ? j.value("next", "") : "";
      if (next == after) break;
      after = std::move(next);
    } while (!after.empty());
  }
  Json all = Json::array();
  std::vector<std::vector<std::string>> rows = {
      {"PATH", "CURRENT", "SINCE", "PENDING", "PREVIOUS", "EVERY", "DUE"}};
  const std::uint64_t now = NowMs();
  for (const std::string& p : paths) {
    Json j = ParseBody(CallOrFail({"GET", SecretTarget(p, "/rotation/status")}));
    all.push_back(j);
    const std::uint64_t due = U64(j, "due_ms");
    std::string due_text = due == 0 ? "-" : FormatTimeMs(due) + (due <= now ? " (due)" : "");
    const Json labels = j.value("labels", Json::object());
    rows.push_back({p, std::to_string(U64(j, "current")), FormatTimeMs(U64(j, "current_created_ms")),
                    U64(j, "pending") == 0 ? "-" : std::to_string(U64(j, "pending")),
                    U64(j, "previous") == 0 ? "-" : std::to_string(U64(j, "previous")),
                    labels.value(std::string(secrets::kRotationLabel), std::string("-")), due_text});
  }
  if (Globals().json) {
    std::printf("%s\n", Json{{"rotations", all}}.dump().c_str());
    return;
  }
  if (rows.size() == 1) {
    std::fprintf(stderr, "sealkeep: no rotated secrets\n");
    return;
  }
  PrintTable(rows);
}

void Add(CLI::App& app) {
  auto& f = Flags();
  auto* rot = app.add_subcommand(
      "rotation",
      "Staged rotation of a secret: begin stores a pending version, finish makes it current, abort erases "
      "it (docs/rotation.md). Not `sealkeep rotate`, which rotates the agent's master key");
  rot->require_subcommand(1);
  auto path_arg = [&](CLI::App* c) { c->add_option("PATH", f.path, "Secret path")->required(); };

  auto* begin = rot->add_subcommand(
      "begin",
      "Store a new value of PATH as its pending version (POST .../rotation/begin). The value is read from "
      "stdin or --value-file, or made by the agent with --generate; it is never printed. Needs `rotate` and "
      "`write` on PATH");
  path_arg(begin);
  begin->add_option("--value-file", f.value_file, "Read the new value from this file ('-': stdin)");
  begin->add_option("--generate", f.generate, "Have the agent make the value: password or bytes")
      ->check(CLI::IsMember({"password", "bytes"}));
  begin->add_option("--length", f.length, "Characters (password) or bytes (bytes) to generate")
      ->capture_default_str();
  begin->add_option("--encoding", f.encoding, "bytes: hex or base64")
      ->check(CLI::IsMember({"hex", "base64"}))
      ->capture_default_str();
  begin->add_option("--every", f.every,
                    "The rotation schedule the path carries (label sealkeep.rotation): 30d, 12h...");
  begin->add_option("--note", f.note, "Why, on the journal entry (no secrets)");
  f.cas_opt = begin->add_option("--cas", f.cas, "Only if the current version is N now");
  begin->callback(RunBegin);

  auto* finish = rot->add_subcommand("finish", "Make the pending version current (POST .../rotation/finish)");
  path_arg(finish);
  finish->add_option("--version", f.version, "The pending version")->required()->check(CLI::PositiveNumber);
  finish->callback([] { RunEnd(true); });

  auto* abort = rot->add_subcommand(
      "abort",
      "Erase the pending version; the current one stays (POST .../rotation/abort, alert rotation_failed)");
  path_arg(abort);
  abort->add_option("--version", f.version, "The pending version")->required()->check(CLI::PositiveNumber);
  abort->add_option("--reason", f.reason, "Why (journaled and in the alert; no secrets)");
  abort->callback([] { RunEnd(false); });

  auto* status = rot->add_subcommand(
      "status",
      "Where rotations stand: PATH's, or every path in --config and every path the agent marks as rotated");
  status->add_option("PATH", f.path, "One secret path");
  status->add_option("--config", f.config, "The rotation config")->capture_default_str();
  status->callback(RunStatus);

  auto* run = rot->add_subcommand(
      "run",
      "Rotate PATH now at its target from --config: begin, set, test, finish; on a failure put the target "
      "back and abort. A pending rotation of PATH is resumed instead");
  path_arg(run);
  run->add_option("--config", f.config, "The rotation config")->capture_default_str();
  run->add_option("--value-file", f.value_file, "Use this value instead of the path's generator");
  run->callback(RunOne);

  auto* rotator = app.add_subcommand(
      "rotator",
      "Rotate every path of --config that is due (or all with --force), resuming interrupted rotations "
      "first; "
      "run by sealkeep-rotator.timer. Prints one line per path; exits 4 if a rotation was aborted, 1 on "
      "another failure");
  rotator->add_option("--config", f.config, "The rotation config")->capture_default_str();
  rotator->add_flag("--force", f.force, "Rotate every path now, due or not");
  rotator->add_flag(
      "--serve-leases", f.serve_leases,
      "Instead of rotating: serve the [[lease]] kinds of --config to the agent on --listen, making "
      "and dropping leased database roles, until stopped (sealkeep-leases.service)");
  rotator->add_option("--listen", f.listen,
                      "--serve-leases: the socket (default /run/sealkeep-leases/leases.sock)");
  rotator->callback(RunRotator);
}

const Registrar kRegistrar(Add, 45);

}  // namespace
}  // namespace sk::cli
