// `sealkeep verify [--config F]` and `sealkeep recover --accept-rollback [--config F]`.
//
// Without --config both ask the running agent (GET /v1/sys/journal/verify, POST
// /v1/sys/recover). With --config they work offline, while the agent is stopped: they
// open the backend and the store named by the agent's config file themselves (offline.h);
// they refuse to start while the agent runs, and point at the online form instead.
//
// verify exits 7 when the journal does not verify (offline also when the store is not
// the anchored history: replay_detected, head_invalid). recover is journaled (kind
// recover) and moves the hardware anchor to the accepted store.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "agent/config/config.h"
#include "agent/secrets/service.h"
#include "crypto/bytes.h"
#include "crypto/reasons.h"
#include "hsm/backend_config.h"
#include "tools/cli/agent_client.h"
#include "tools/cli/command.h"
#include "tools/cli/offline.h"

namespace sk::cli {
namespace {

constexpr std::chrono::milliseconds kVerifyTimeout{600'000};

struct AdminFlags {
  std::string config;
  std::string state;  // --state DIR: the config is DIR/sealkeep.toml
  bool accept_rollback = false;
};

AdminFlags& Flags() {
  static AdminFlags flags;
  return flags;
}

// The verify report in the API's shape (docs/api.md, GET /v1/sys/journal/verify).
Json ReportJson(const secrets::VerifyReport& r) {
  Json problems = Json::array();
  for (const auto& p : r.problems) {
    problems.push_back({{"seq", p.seq},
                        {"path", p.path},
                        {"version", p.version},
                        {"reason", p.reason},
                        {"detail", p.detail}});
  }
  return {{"ok", r.ok},
          {"entries", r.entries},
          {"versions_checked", r.versions_checked},
          {"head_seq", r.head_seq},
          {"head_hash", r.head_hash},
          {"anchor",
           {{"seq", r.anchor.seq}, {"hash", HexEncode(r.anchor.head_hash)}, {"counter", r.anchor.counter}}},
          {"anchor_state", r.anchor_state},
          {"problems", problems},
          {"seconds", r.seconds}};
}

std::string Short(const std::string& hex) { return hex.size() > 16 ? hex.substr(0, 16) + ".." : hex; }

void PrintReport(const Json& j, const std::string& where) {
  const bool ok = j.value("ok", false);
  const Json anchor = j.value("anchor", Json::object());
  std::printf("journal:  %s (%s)\n", ok ? "verifies" : "DOES NOT VERIFY", where.c_str());
  std::printf("entries:  %llu, %llu versions checked in %.3f s\n",
              static_cast<unsigned long long>(U64(j, "entries")),
              static_cast<unsigned long long>(U64(j, "versions_checked")), j.value("seconds", 0.0));
  std::printf("head:     seq %llu, hash %s\n", static_cast<unsigned long long>(U64(j, "head_seq")),
              Short(Str(j, "head_hash")).c_str());
  std::printf("anchor:   seq %llu, hash %s, counter %llu: %s\n",
              static_cast<unsigned long long>(U64(anchor, "seq")), Short(Str(anchor, "hash")).c_str(),
              static_cast<unsigned long long>(U64(anchor, "counter")), Str(j, "anchor_state").c_str());
  const Json problems = j.value("problems", Json::array());
  if (problems.empty()) {
    std::printf("problems: none\n");
    return;
  }
  std::printf("problems: %zu%s\n", problems.size(), problems.size() >= 1000 ? " (the first 1000)" : "");
  std::vector<std::vector<std::string>> rows = {{"SEQ", "PATH", "VERSION", "REASON", "DETAIL"}};
  for (const auto& p : problems) {
    rows.push_back({std::to_string(U64(p, "seq")), Str(p, "path"), std::to_string(U64(p, "version")),
                    Str(p, "reason"), Str(p, "detail")});
  }
  PrintTable(rows, stdout, "  ");
}

void RunVerifyOffline() {
  Offline off = OpenOffline(Flags().config, "sealkeep verify");
  secrets::ServiceOptions options = off.config.store;
  options.read_only = true;
  auto svc = secrets::SecretService::Open(off.backend, options);
  if (!svc.ok()) {
    const Status& st = svc.status();
    if (st.reason() == sk::reason::kStoreLocked) AgentRunning("sealkeep verify");
    // The store opened but is not the anchored, sealed history: that is a failed verification.
    if (st.code() == Code::kCorruption || st.reason() == sk::reason::kReplayDetected ||
        st.reason() == sk::reason::kHeadInvalid) {
      if (Globals().json) {
        Json j = {{"ok", false},
                  {"error", {{"code", std::string(st.reason())}, {"message", std::string(st.message())}}}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("journal:  DOES NOT VERIFY (offline, %s)\n", off.config.store.store_path.c_str());
        std::printf("problem:  %s\n", st.ToString().c_str());
      }
      throw ExitRequest{kExitCorruption};
    }
    Fail(st.WithContext("opening the store " + off.config.store.store_path));
  }
  auto report = (*svc)->VerifyAll();
  if (!report.ok()) Fail(report.status());
  Json j = ReportJson(*report);
  if (Globals().json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    PrintReport(j, "offline, " + off.config.store.store_path);
  }
  if (!report->ok) throw ExitRequest{kExitCorruption};
}

void RunVerify() {
  if (!Flags().state.empty()) Flags().config = Flags().state + "/sealkeep.toml";
  if (!Flags().config.empty()) return RunVerifyOffline();
  HttpResponse r = CallOrFail({"GET", "/v1/sys/journal/verify", {}, kVerifyTimeout});
  Json j = ParseBody(r);
  if (Globals().json) {
    PrintBody(r);
  } else {
    PrintReport(j, "by the agent at " + Globals().socket);
  }
  if (!j.value("ok", false)) throw ExitRequest{kExitCorruption};
}

void RunRecover() {
  if (!Flags().state.empty()) Flags().config = Flags().state + "/sealkeep.toml";
  if (Flags().config.empty()) {
    std::string body = Json{{"accept_rollback", true}}.dump();
    HttpResponse r = CallOrFail({"POST", "/v1/sys/recover", body, kVerifyTimeout});
    if (Globals().json) return PrintBody(r);
    Json j = ParseBody(r);
    std::printf("accepted: %s\n", Str(j, "accepted").c_str());
    std::printf("the agent is %s; the journal records the recovery\n", Str(j, "status").c_str());
    return;
  }
  Offline off = OpenOffline(Flags().config, "sealkeep recover --accept-rollback");
  secrets::Actor actor{"uid=" + std::to_string(::getuid()) + " pid=" + std::to_string(::getpid()) +
                       " sealkeep recover --accept-rollback --config (offline)"};
  auto accepted = secrets::SecretService::AcceptRollback(off.backend, off.config.store, actor);
  if (!accepted.ok()) {
    if (accepted.status().reason() == sk::reason::kStoreLocked)
      AgentRunning("sealkeep recover --accept-rollback");
    Fail(accepted.status());
  }
  if (Globals().json) {
    std::printf("%s\n", Json{{"status", "recovered"}, {"accepted", *accepted}}.dump().c_str());
    return;
  }
  std::printf("accepted: %s\n", accepted->c_str());
  std::printf(
      "the store %s is the truth now: the journal records it (kind recover) and the hardware anchor names "
      "it; start sealkeepd\n",
      off.config.store.store_path.c_str());
}

void Add(CLI::App& app) {
  auto& f = Flags();
  auto* verify = app.add_subcommand(
      "verify",
      "Verify the whole sealed journal: every entry's seal, both chains, the head against the hardware "
      "anchor, and every stored version against its sealed digest. Asks the running agent (GET "
      "/v1/sys/journal/verify); with --config or --state, opens the store itself while the agent is stopped. "
      "Exits 7 when it does not verify");
  auto* vconfig = verify->add_option(
      "--config", f.config,
      "Offline: the agent's config file (e.g. /etc/sealkeep/sealkeep.toml); the agent must be stopped");
  verify
      ->add_option("--state", f.state,
                   "Offline: a state folder holding sealkeep.toml (as `tools/dev run` writes)")
      ->excludes(vconfig);
  verify->callback(RunVerify);

  auto* recover = app.add_subcommand(
      "recover",
      "Accept a store the agent refused as replay_detected (an older copy, or one the hardware anchor does "
      "not "
      "name) as the new truth; what the anchor recorded after it is given up. Journaled and anchored. Asks "
      "the "
      "sealed agent (POST /v1/sys/recover); with --config, works on the store while the agent is stopped");
  recover->add_flag("--accept-rollback", f.accept_rollback, "Required: says you accept the rollback")
      ->required();
  auto* rconfig = recover->add_option("--config", f.config,
                                      "Offline: the agent's config file; the agent must be stopped");
  recover->add_option("--state", f.state, "Offline: a state folder holding sealkeep.toml")->excludes(rconfig);
  recover->callback(RunRecover);
}

const Registrar kRegistrar(Add, 40);

}  // namespace
}  // namespace sk::cli
