// `sealkeep status|seal|unseal|rotate` and `sealkeep tpm reseal`: the agent's state and
// its keys, through a running sealkeepd (docs/api.md: /v1/sys/*).
#include <cstdio>
#include <string>
#include <vector>

#include "crypto/reasons.h"
#include "hsm/tpm/pcr.h"
#include "tools/cli/agent_client.h"
#include "tools/cli/command.h"

namespace sk::cli {
namespace {

constexpr std::chrono::milliseconds kKeyTimeout{600'000};  // rotation re-wraps every data key

std::string Text(const Json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return "-";
  const Json& v = j[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

std::string ShortHash(const std::string& hex) { return hex.size() > 16 ? hex.substr(0, 16) + ".." : hex; }

void RunStatus() {
  HttpResponse r = CallOrFail({"GET", "/v1/sys/status"});
  Json j = ParseBody(r);
  const bool sealed = Str(j, "state") != "unsealed";
  if (Globals().json) {
    PrintBody(r);
  } else if (sealed) {
    std::string reason = Str(j, "reason");
    std::printf("state:     sealed: %s%s\n", reason == sk::reason::kSealed ? "" : (reason + ": ").c_str(),
                Str(j, "message").c_str());
    std::printf("agent:     sealkeepd %s, up %llu s\n", Str(j, "version").c_str(),
                static_cast<unsigned long long>(U64(j, "uptime_s")));
  } else {
    const Json b = j.value("backend", Json::object());
    const Json jr = j.value("journal", Json::object());
    const Json c = j.value("dek_cache", Json::object());
    std::printf("state:     unsealed\n");
    std::printf("agent:     sealkeepd %s, up %llu s\n", Str(j, "version").c_str(),
                static_cast<unsigned long long>(U64(j, "uptime_s")));
    std::printf("backend:   %s %s, keyset %s, generation %s (generations %s), anchor in %s\n",
                Text(b, "kind").c_str(), Text(b, "identity").c_str(), Text(b, "keyset_id").c_str(),
                Text(b, "generation").c_str(), Text(b, "generations").c_str(),
                Text(b, "anchor_location").c_str());
    std::printf("journal:   head seq %s (%s), anchored seq %s (%s, counter %s), %s mode, %s problems\n",
                Text(jr, "head_seq").c_str(), ShortHash(Str(jr, "head_hash")).c_str(),
                Text(jr, "anchor_seq").c_str(), ShortHash(Str(jr, "anchor_hash")).c_str(),
                Text(jr, "anchor_counter").c_str(), Text(jr, "mode").c_str(), Text(jr, "problems").c_str());
    std::printf("activity:  %s paths, %s commits in %s batches, %s anchor advances\n",
                Text(j, "paths").c_str(), Text(j, "commits").c_str(), Text(j, "batches").c_str(),
                Text(j, "anchor_advances").c_str());
    std::printf("dek cache: %s entries, %s hits, %s misses\n", Text(c, "size").c_str(),
                Text(c, "hits").c_str(), Text(c, "misses").c_str());
  }
  if (sealed) throw ExitRequest{kExitSealed};
}

HttpResponse PostSys(const std::string& route, const std::string& body = "{}") {
  return CallOrFail({"POST", "/v1/sys/" + route, body, kKeyTimeout});
}

void RunSeal() {
  HttpResponse r = PostSys("seal");
  if (Globals().json) return PrintBody(r);
  std::printf("sealed: the agent dropped its keys from memory; `sealkeep unseal` brings them back\n");
}

void RunUnseal() {
  HttpResponse r = PostSys("unseal");
  if (Globals().json) return PrintBody(r);
  std::printf("unsealed\n");
}

void RunRotate() {
  HttpResponse r = PostSys("rotate");
  if (Globals().json) return PrintBody(r);
  Json j = ParseBody(r);
  std::printf("master key generation %llu is current; every data key is re-wrapped under it (txn %s)\n",
              static_cast<unsigned long long>(U64(j, "generation")), ShortTxn(j).c_str());
}

std::string& PcrsFlag() {
  static std::string pcrs;
  return pcrs;
}
CLI::Option*& PcrsOption() {
  static CLI::Option* option = nullptr;
  return option;
}

void RunReseal() {
  Json body = Json::object();
  if (PcrsOption()->count() > 0) {
    auto mask = hsm::tpm::ParsePcrList(PcrsFlag());
    if (!mask.ok()) Fail(mask.status());
    body["pcrs"] = hsm::tpm::PcrListFromMask(*mask);
  }
  HttpResponse r = PostSys("reseal", body.dump());
  if (Globals().json) return PrintBody(r);
  Json j = ParseBody(r);
  std::string pcrs;
  for (const auto& p : j.value("pcrs", Json::array())) pcrs += (pcrs.empty() ? "" : ",") + p.dump();
  std::printf("re-sealed the master key to PCRs %s at their current values (txn %s)\n",
              pcrs.empty() ? "none" : pcrs.c_str(), ShortTxn(j).c_str());
}

void Add(CLI::App& app) {
  app.add_subcommand("status",
                     "Show the agent's state, backend, key generation, journal head and anchor, counters "
                     "(GET /v1/sys/status); exits 6 when the agent is sealed, after saying why")
      ->callback(RunStatus);
}

void AddKeys(CLI::App& app) {
  app.add_subcommand("seal",
                     "Make the agent drop its keys from memory (POST /v1/sys/seal); it answers 503 until "
                     "`sealkeep unseal`")
      ->callback(RunSeal);
  app.add_subcommand("unseal",
                     "Make a sealed agent unseal its master key and verify its journal again (POST "
                     "/v1/sys/unseal); exits 6 with the reason when it cannot")
      ->callback(RunUnseal);
  app.add_subcommand("rotate",
                     "Make a new master-key generation and re-wrap the journal, audit and every data key "
                     "under it, online (POST /v1/sys/rotate)")
      ->callback(RunRotate);
}

// `tpm reseal` joins the `tpm` group that tools/cli/tpm_commands.cc registers (order 210).
void AddReseal(CLI::App& app) {
  auto groups = app.get_subcommands([](CLI::App* a) { return a->get_name() == "tpm"; });
  CLI::App* tpm = groups.empty() ? nullptr : groups.front();
  if (tpm == nullptr) {
    tpm = app.add_subcommand("tpm", "TPM seals");
    tpm->require_subcommand(1);
  }
  auto* reseal = tpm->add_subcommand(
      "reseal",
      "Through the running agent: seal its master key anew to the current values of --pcrs (default: the "
      "PCRs of the agent's config), journaled (POST /v1/sys/reseal {\"pcrs\":[...]})");
  PcrsOption() =
      reseal->add_option("--pcrs", PcrsFlag(), "PCRs of the sha256 bank, e.g. 7,11 (none: no PCR policy)");
  reseal->callback(RunReseal);
}

const Registrar kStatus(Add, 10);
const Registrar kKeys(AddKeys, 50);
const Registrar kReseal(AddReseal, 220);

}  // namespace
}  // namespace sk::cli
