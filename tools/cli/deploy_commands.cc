// `sealkeep deploy begin|commit|abort|status` and `sealkeep watch`: a release's secrets
// rolled back together, and the journal's changes as they happen (docs/api.md: /v1/deploys,
// /v1/watch).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "tools/cli/agent_client.h"
#include "tools/cli/command.h"
#include "tools/cli/watch_client.h"

namespace sk::cli {
namespace {

constexpr std::chrono::milliseconds kWriteTimeout{60'000};
constexpr std::chrono::milliseconds kAbortTimeout{600'000};  // verifies every target version

struct DeployFlags {
  std::string release;
  std::string prefix;
  std::vector<std::string> keep;
  bool all = false;
  std::string watch_prefix;
  std::uint64_t after = 0;
  CLI::Option* after_opt = nullptr;
  bool once = false;
  unsigned timeout_s = 0;
  CLI::Option* timeout_opt = nullptr;
};

DeployFlags& Flags() {
  static DeployFlags flags;
  return flags;
}

std::string Target(std::string_view suffix = "") {
  return "/v1/deploys/" + CheckedSnapshotName(Flags().release) + std::string(suffix);
}

void PrintRelease(const Json& j, const char* verb) {
  std::string prefix = Str(j, "prefix");
  std::printf("release %s %s%s: prefix %s, %s\n", Str(j, "release").c_str(), verb,
              j.value("already", false) ? " (already)" : "", prefix.empty() ? "(all paths)" : prefix.c_str(),
              Str(j, "state").c_str());
}

void RunBegin() {
  std::string body = Json{{"prefix", CheckedPrefix(Flags().prefix)}}.dump();
  HttpResponse r = CallOrFail({"POST", Target("/begin"), body, kWriteTimeout});
  if (Globals().json) return PrintBody(r);
  Json j = ParseBody(r);
  PrintRelease(j, "begun");
  std::printf("  %zu path%s recorded; abort restores them\n", j.value("versions", Json::object()).size(),
              j.value("versions", Json::object()).size() == 1 ? "" : "s");
}

void RunCommit() {
  HttpResponse r = CallOrFail({"POST", Target("/commit"), "{}", kWriteTimeout});
  if (Globals().json) return PrintBody(r);
  PrintRelease(ParseBody(r), "committed");
}

void RunAbort() {
  Json keep = Json::array();
  for (const std::string& p : Flags().keep) {
    SecretTarget(p);  // checks the path (exit 2)
    keep.push_back(p);
  }
  std::string body = Json{{"keep", keep}}.dump();
  HttpResponse r = CallOrFail({"POST", Target("/abort"), body, kAbortTimeout}, PrintRestoreRefusal);
  if (Globals().json) return PrintBody(r);
  Json j = ParseBody(r);
  if (j.value("already", false)) {
    std::printf("release %s: already aborted; nothing changed\n", Str(j, "release").c_str());
    return;
  }
  const Json results = j.value("results", Json::array());
  std::printf("release %s aborted: %zu path%s restored (txn %s)\n", Str(j, "release").c_str(), results.size(),
              results.size() == 1 ? "" : "s", ShortTxn(j).c_str());
  for (const auto& res : results) {
    std::printf("  restored %s: version %llu\n", Str(res, "path").c_str(),
                static_cast<unsigned long long>(U64(res, "version")));
  }
  for (const auto& k : j.value("kept", Json::array())) {
    std::printf("  kept %s: %s\n", Str(k, "path").c_str(), Str(k, "why").c_str());
  }
}

void RunStatus() {
  auto& f = Flags();
  if (!f.release.empty()) {
    HttpResponse r = CallOrFail({"GET", Target()});
    if (Globals().json) return PrintBody(r);
    Json j = ParseBody(r);
    PrintRelease(j, "is");
    std::printf("  begun %s, ended %s\n", FormatTimeMs(U64(j, "begun_ms")).c_str(),
                FormatTimeMs(U64(j, "ended_ms")).c_str());
    std::vector<std::vector<std::string>> rows = {{"PATH", "VERSION AT BEGIN"}};
    const Json versions = j.value("versions", Json::object());
    for (const auto& [path, v] : versions.items()) {
      rows.push_back({path, v.dump()});
    }
    PrintTable(rows, stdout, "  ");
    return;
  }
  HttpResponse r = CallOrFail({"GET", f.all ? "/v1/deploys" : "/v1/deploys?state=open"});
  if (Globals().json) return PrintBody(r);
  Json j = ParseBody(r);
  const Json releases = j.value("releases", Json::array());
  if (releases.empty()) {
    std::printf(f.all ? "no releases\n" : "no open releases\n");
    return;
  }
  std::vector<std::vector<std::string>> rows = {{"RELEASE", "STATE", "PREFIX", "BEGUN", "ENDED"}};
  for (const auto& rel : releases) {
    std::string prefix = Str(rel, "prefix");
    rows.push_back({Str(rel, "release"), Str(rel, "state"), prefix.empty() ? "(all)" : prefix,
                    FormatTimeMs(U64(rel, "begun_ms")), FormatTimeMs(U64(rel, "ended_ms"))});
  }
  PrintTable(rows);
}

// One line per change, until interrupted (or the first batch with --once). A lost agent
// is waited for: the journal's seq carries on where it was.
void RunWatch() {
  auto& f = Flags();
  const std::string prefix = CheckedPrefix(f.watch_prefix);
  std::optional<std::uint64_t> after;
  if (f.after_opt->count() > 0) after = f.after;
  bool lost = false;
  const bool bounded = f.timeout_opt->count() > 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(f.timeout_s);
  for (;;) {
    unsigned wait_s = 60;
    if (bounded) {
      auto left =
          std::chrono::duration_cast<std::chrono::seconds>(until - std::chrono::steady_clock::now()).count();
      wait_s = static_cast<unsigned>(std::clamp<long long>(left, 0, 60));
    }
    auto answer = WatchOnce(Globals().socket, prefix, after, wait_s);
    if (!answer.ok()) {
      const Status& st = answer.status();
      // Down or restarting (or sealed): wait for it; anything else is the answer.
      if (st.code() != Code::kUnavailable && st.code() != Code::kSealed) Fail(st);
      if (!lost) std::fprintf(stderr, "sealkeep: watch: %s; waiting for the agent\n", st.ToString().c_str());
      lost = true;
      if (bounded && std::chrono::steady_clock::now() >= until) Fail(st);
      std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    if (lost) std::fprintf(stderr, "sealkeep: watch: the agent answers again\n");
    lost = false;
    after = answer->seq;
    for (const WatchedChange& c : answer->changes) {
      if (Globals().json) {
        std::printf(
            "%s\n",
            Json{{"seq", c.seq}, {"path", c.path}, {"version", c.version}, {"kind", c.kind}}.dump().c_str());
      } else {
        std::printf("%llu %s %s %llu\n", static_cast<unsigned long long>(c.seq), c.kind.c_str(),
                    c.path.c_str(), static_cast<unsigned long long>(c.version));
      }
    }
    std::fflush(stdout);
    if (f.once && !answer->changes.empty()) return;
    if (bounded && std::chrono::steady_clock::now() >= until) return;
  }
}

void Add(CLI::App& app) {
  auto& f = Flags();
  auto* deploy = app.add_subcommand(
      "deploy",
      "Releases whose secrets roll back together (/v1/deploys): begin records a prefix, commit marks the "
      "release good, abort restores what begin recorded in one transaction");
  deploy->require_subcommand(1);
  auto* begin = deploy->add_subcommand(
      "begin",
      "Record every path under --prefix at its current version as RELEASE (a sealed snapshot). Idempotent: "
      "beginning the same RELEASE with the same prefix again changes nothing");
  begin->add_option("RELEASE", f.release, "Release name: 1-100 characters of [A-Za-z0-9._-]")->required();
  begin->add_option("--prefix", f.prefix, "The secrets the release covers ('' : every path)")->required();
  begin->callback(RunBegin);

  auto* commit = deploy->add_subcommand(
      "commit", "Record RELEASE as good: it can no longer be aborted. A second commit answers 'already'");
  commit->add_option("RELEASE", f.release, "Release name")->required();
  commit->callback(RunCommit);

  auto* abort = deploy->add_subcommand(
      "abort",
      "Restore every path of RELEASE to its version at begin, in one transaction and only if every target "
      "still verifies (else nothing changes, each failing path is listed, exit 4). A rotated path (label "
      "sealkeep.rotation) and each --keep PATH keep their current version; the report says which and why. "
      "A second abort answers 'already aborted' and changes nothing");
  abort->add_option("RELEASE", f.release, "Release name")->required();
  abort->add_option("--keep", f.keep, "A path that keeps its current version (repeatable)")
      ->allow_extra_args(false);
  abort->callback(RunAbort);

  auto* status = deploy->add_subcommand(
      "status", "List open releases (--all: every release), or show RELEASE with its paths");
  status->add_option("RELEASE", f.release, "Release name");
  status->add_flag("--all", f.all, "Committed and aborted releases too");
  status->callback(RunStatus);

  auto* watch = app.add_subcommand(
      "watch",
      "Print one line per change under PREFIX as it is committed: 'SEQ KIND PATH VERSION' (--json: one "
      "object per line). Only paths you may list are shown. Runs until interrupted; waits for the agent "
      "when it restarts");
  watch->add_option("PREFIX", f.watch_prefix, "Prefix to watch ('' or omitted: every path)");
  f.after_opt = watch->add_option(
      "--after", f.after,
      "Start after this journal seq (default: the head now), to catch up on what you missed");
  watch->add_flag("--once", f.once, "Exit after the first changes are printed");
  f.timeout_opt =
      watch
          ->add_option("--timeout", f.timeout_s,
                       "Exit (0) after S seconds, printing what came by then (0: one look, no wait)")
          ->check(CLI::Range(0u, 86400u));
  watch->callback(RunWatch);
}

const Registrar kRegistrar(Add, 35);

}  // namespace
}  // namespace sk::cli
