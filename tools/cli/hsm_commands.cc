// `sealkeep hsm provision|status|rotate|retire`: a PKCS#11 token's sealkeep objects.
//
// These commands talk to the token directly, not to the agent. provision and status
// are safe at any time; rotate and retire change the master-key generations under a
// running agent's feet, so run them with the agent stopped (the agent rotates online
// through POST /v1/sys/rotate, which also re-wraps every key).
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hsm/backend_config.h"
#include "hsm/pkcs11/pkcs11_backend.h"
#include "hsm/pkcs11/provision.h"
#include "tools/cli/command.h"

namespace sk::cli {
namespace {

using hsm::pkcs11::AnchorStatus;
using hsm::pkcs11::TokenStatus;
using nlohmann::json;

struct HsmFlags {
  hsm::Pkcs11Config config;
  bool init = false;
  std::string so_pin_file;
  std::uint32_t generation = 0;
};

HsmFlags& Flags() {
  static HsmFlags flags;
  return flags;
}

void AddTokenOptions(CLI::App* cmd) {
  auto& c = Flags().config;
  cmd->add_option("--module", c.module, "PKCS#11 module to load")->capture_default_str();
  cmd->add_option("--token", c.token_label, "Label of the token (tokens are found by label, never by slot)")
      ->capture_default_str();
  cmd->add_option(
      "--pin-file", c.pin_file,
      "File holding the user PIN (default: $CREDENTIALS_DIRECTORY/hsm-pin; never on the command line)");
}

// For the commands that change the token. SoftHSM2 never fsyncs its object files, so what
// it reports as created may be lost in a power cut; with --sync-dir every file and folder
// under DIR (SoftHSM2's tokendir) is fsynced after a change (hsm/pkcs11/sync_dir.h). DIR
// must exist: a typo would otherwise go unnoticed whenever the run changes nothing.
void AddSyncDirOption(CLI::App* cmd) {
  cmd->add_option("--sync-dir", Flags().config.sync_dir,
                  "SoftHSM2's token folder (its tokendir, e.g. /var/lib/softhsm/tokens): fsync it after "
                  "every change, because SoftHSM2 does not (the agent's [pkcs11] sync_dir)")
      ->check(CLI::ExistingDirectory);
}

std::string Generations(const std::vector<std::uint32_t>& gens) {
  std::string s;
  for (auto g : gens) s += (s.empty() ? "" : ", ") + std::to_string(g);
  return s.empty() ? "none" : s;
}

json AnchorJson(const AnchorStatus& a) {
  json j = {{"present", a.present}, {"verifies", a.verifies}, {"objects", a.objects}};
  if (a.verifies) {
    j["seq"] = a.value.seq;
    j["head_hash"] = HexEncode(a.value.head_hash);
    j["counter"] = a.value.counter;
    j["sealed_by_generation"] = a.sealed_by;
  } else if (a.present) {
    j["problem"] = a.problem;
  }
  return j;
}

json StatusJson(const TokenStatus& s) {
  json keys = json::array();
  for (const auto& k : s.keys) {
    json kj = {{"generation", k.generation},
               {"label", k.label},
               {"keyset_id", k.keyset_id},
               {"sensitive", k.sensitive},
               {"always_sensitive", k.always_sensitive},
               {"extractable", k.extractable},
               {"never_extractable", k.never_extractable},
               {"local", k.local},
               {"usable", k.usable}};
    if (!k.usable) kj["problem"] = k.problem;
    keys.push_back(std::move(kj));
  }
  return {{"module", s.module},
          {"token",
           {{"label", s.label}, {"serial", s.serial}, {"manufacturer", s.manufacturer}, {"model", s.model}}},
          {"user_pin",
           {{"count_low", s.user_pin_count_low},
            {"final_try", s.user_pin_final_try},
            {"locked", s.user_pin_locked}}},
          {"keyset_id", s.keyset_id},
          {"current_generation", s.current_generation},
          {"master_keys", keys},
          {"anchor", AnchorJson(s.anchor)}};
}

void PrintStatus(const TokenStatus& s) {
  std::printf("module      %s\n", s.module.c_str());
  std::printf("token       %s (serial %s, %s %s)\n", s.label.c_str(), s.serial.c_str(),
              s.manufacturer.c_str(), s.model.c_str());
  std::printf("user PIN    %s\n", s.user_pin_locked      ? "LOCKED"
                                  : s.user_pin_final_try ? "one try left"
                                  : s.user_pin_count_low ? "a wrong PIN was given since the last good one"
                                                         : "ok");
  std::printf("keyset      %s\n", s.keyset_id.empty() ? "(none)" : s.keyset_id.c_str());
  std::printf("current     generation %u\n", s.current_generation);
  std::printf("master keys%s\n", s.keys.empty() ? " (none)" : "");
  for (const auto& k : s.keys) {
    std::printf("  %-22s %s %s %s %s %s  %s\n", k.label.c_str(), k.sensitive ? "sensitive" : "NOT-sensitive",
                k.always_sensitive ? "always-sensitive" : "NOT-always-sensitive",
                k.extractable ? "EXTRACTABLE" : "not-extractable",
                k.never_extractable ? "never-extractable" : "NOT-never-extractable",
                k.local ? "generated-in-token" : "imported", k.usable ? "usable" : k.problem.c_str());
  }
  const AnchorStatus& a = s.anchor;
  if (!a.present) {
    std::printf("anchor      absent\n");
  } else if (!a.verifies) {
    std::printf("anchor      DOES NOT VERIFY: %s\n", a.problem.c_str());
  } else {
    std::printf("anchor      seq %llu, counter %llu, head %s (sealed by generation %u; verifies)\n",
                static_cast<unsigned long long>(a.value.seq),
                static_cast<unsigned long long>(a.value.counter), HexEncode(a.value.head_hash).c_str(),
                a.sealed_by);
  }
}

void RunProvision() {
  hsm::pkcs11::ProvisionOptions options{Flags().config, Flags().init, Flags().so_pin_file};
  auto report = hsm::pkcs11::Provision(options);
  if (!report.ok()) Fail(report.status());
  const TokenStatus& s = report->status;
  if (Globals().json) {
    json j = {{"token_initialised", report->token_initialised},
              {"master_key_created", report->master_key_created},
              {"anchor_created", report->anchor_created},
              {"status", StatusJson(s)}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  if (Flags().init) {
    std::printf("token: %s\n", report->token_initialised ? "initialised on a free slot"
                                                         : "already initialised; left as it is");
  }
  std::vector<std::uint32_t> gens;
  for (const auto& k : s.keys) gens.push_back(k.generation);
  std::printf("master key: %s\n", report->master_key_created
                                      ? "created generation 1"
                                      : ("already there (generations " + Generations(gens) + ")").c_str());
  std::printf("anchor: %s\n\n", report->anchor_created ? "created" : "already there; left as it is");
  PrintStatus(s);
}

void RunStatus() {
  auto s = hsm::pkcs11::InspectToken(Flags().config);
  if (!s.ok()) Fail(s.status());
  if (Globals().json) {
    std::printf("%s\n", StatusJson(*s).dump().c_str());
  } else {
    PrintStatus(*s);
  }
}

std::unique_ptr<hsm::KeyBackend> OpenOrFail() {
  auto backend = hsm::pkcs11::OpenPkcs11Backend(Flags().config);
  if (!backend.ok()) Fail(backend.status());
  return std::move(backend).value();
}

void PrintGenerations(const hsm::BackendInfo& info, const std::string& what) {
  if (Globals().json) {
    json j = {{"current_generation", info.current_generation}, {"generations", info.generations}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s; current generation %u; live: %s\n", what.c_str(), info.current_generation,
                Generations(info.generations).c_str());
  }
}

void RunRotate() {
  auto backend = OpenOrFail();
  auto g = backend->Rotate();
  if (!g.ok()) Fail(g.status());
  PrintGenerations(backend->Info(), "generation " + std::to_string(*g) + " created in the token");
}

void RunRetire() {
  auto backend = OpenOrFail();
  const std::uint32_t g = Flags().generation;
  Status st = backend->Retire(g);
  if (!st.ok()) Fail(st);
  PrintGenerations(backend->Info(), "generation " + std::to_string(g) +
                                        " retired: its key is destroyed and its blobs no longer unwrap");
}

void Add(CLI::App& app) {
  auto* hsm =
      app.add_subcommand("hsm", "Provision and inspect a PKCS#11 token (talks to the token, not the agent)");
  hsm->require_subcommand(1);

  auto* provision = hsm->add_subcommand(
      "provision",
      "Create sealkeep's master key (generation 1) and anchor object on a token; safe to run again: it "
      "creates only what is missing and reports what exists");
  AddTokenOptions(provision);
  AddSyncDirOption(provision);
  provision->add_flag(
      "--init", Flags().init,
      "If no token carries the label, first initialise a free slot's token with it and set the "
      "user PIN (an existing token is never re-initialised)");
  provision->add_option("--so-pin-file", Flags().so_pin_file,
                        "File holding the security officer PIN (with --init)");
  provision->callback(RunProvision);

  auto* status = hsm->add_subcommand("status",
                                     "List what the token holds for sealkeep: master-key generations and "
                                     "attributes, anchor (never key bytes)");
  AddTokenOptions(status);
  status->callback(RunStatus);

  auto* rotate = hsm->add_subcommand(
      "rotate",
      "Generate the next master-key generation in the token and make it current; older generations keep "
      "unwrapping until retired (run with the agent stopped)");
  AddTokenOptions(rotate);
  AddSyncDirOption(rotate);
  rotate->callback(RunRotate);

  auto* retire = hsm->add_subcommand("retire",
                                     "Destroy a non-current generation's key: blobs wrapped under it stop "
                                     "unwrapping (run with the agent stopped)");
  AddTokenOptions(retire);
  AddSyncDirOption(retire);
  retire->add_option("--generation", Flags().generation, "Generation to retire")
      ->required()
      ->check(CLI::Range(1u, 0xFFFFFFFFu));
  retire->callback(RunRetire);
}

const Registrar kRegistrar(Add, 200);

}  // namespace
}  // namespace sk::cli
