// `sealkeep tpm provision|status`: a TPM seal's state folder and NV anchor.
//
// These commands talk to the TPM directly (through --tcti), not to the agent. Both are
// safe at any time. Re-sealing to a new boot state needs the unsealed key and therefore
// goes through the running agent (`sealkeep tpm reseal`, wired with the agent).
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "crypto/bytes.h"
#include "hsm/backend_config.h"
#include "hsm/tpm/inspect.h"
#include "hsm/tpm/nv_anchor.h"
#include "hsm/tpm/pcr.h"
#include "hsm/tpm/provision.h"
#include "tools/cli/command.h"

namespace sk::cli {
namespace {

using hsm::tpm::HandleHex;
using nlohmann::json;

struct TpmFlags {
  hsm::TpmConfig config;
  std::string pcrs;
  std::string owner_auth_file;
  std::string nv_counter = "0x01500100";
  std::string nv_anchor = "0x01500101";
  std::string primary = "0";
};

TpmFlags& Flags() {
  static TpmFlags flags;
  return flags;
}

std::uint32_t ParseHandle(const std::string& text, const char* flag) {
  char* end = nullptr;
  errno = 0;
  unsigned long v = std::strtoul(text.c_str(), &end, 0);
  if (text.empty() || *end != '\0' || errno != 0 || v > 0xFFFFFFFFul) {
    Fail(InvalidArgument(std::string(flag) + ": '" + text + "' is not a TPM handle (e.g. 0x01500100)",
                         "bad_config"));
  }
  return static_cast<std::uint32_t>(v);
}

// tpm2-tss logs every failed command to stderr, including ones sealkeep expects (probing
// for an NV index); its errors reach the user through sealkeep's own messages instead.
void QuietTss() { ::setenv("TSS2_LOG", "all+none", /*overwrite=*/0); }

void AddCommonOptions(CLI::App* cmd) {
  auto& f = Flags();
  cmd->add_option(
         "--tcti", f.config.tcti,
         "TCTI to reach the TPM: device:/dev/tpmrm0 on a host, swtpm:host=127.0.0.1,port=P for swtpm")
      ->capture_default_str();
  cmd->add_option(
         "--state", f.config.state_dir,
         "State folder holding the record and the sealed master-key files (the agent's [tpm] state_dir)")
      ->required();
  cmd->add_option("--owner-auth-file", f.owner_auth_file,
                  "File holding the owner hierarchy auth, if one is set (default: empty owner auth)");
}

void RunProvision() {
  QuietTss();
  TpmFlags& f = Flags();
  auto mask = hsm::tpm::ParsePcrList(f.pcrs);
  if (!mask.ok()) Fail(mask.status());
  f.config.pcrs = hsm::tpm::PcrListFromMask(*mask);
  f.config.nv_counter_index = ParseHandle(f.nv_counter, "--nv-counter");
  f.config.nv_anchor_index = ParseHandle(f.nv_anchor, "--nv-anchor");
  f.config.primary_handle = ParseHandle(f.primary, "--primary-handle");
  hsm::tpm::ProvisionOptions options;
  options.owner_auth_file = f.owner_auth_file;
  auto report = hsm::tpm::ProvisionTpm(f.config, options);
  if (!report.ok()) Fail(report.status());
  const bool created = report->created_anything();
  if (Globals().json) {
    json steps = json::array();
    for (const auto& s : report->steps)
      steps.push_back({{"item", s.item}, {"state", s.state}, {"detail", s.detail}});
    json j = {{"tpm", report->tpm},
              {"tcti", f.config.tcti},
              {"state_dir", f.config.state_dir},
              {"keyset_id", report->keyset_id},
              {"created", created},
              {"steps", steps},
              {"notes", report->notes}};
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("TPM: %s via %s\n", report->tpm.c_str(), f.config.tcti.c_str());
  for (const auto& s : report->steps) {
    std::printf("  %-20s %-12s %s\n", s.item.c_str(), s.state.c_str(), s.detail.c_str());
  }
  for (const auto& n : report->notes) std::printf("note: %s\n", n.c_str());
  std::printf("keyset %s: %s\n", report->keyset_id.c_str(),
              created ? "provisioned" : "already provisioned; nothing changed");
}

std::string PcrText(const std::vector<int>& pcrs) {
  std::string s;
  for (int p : pcrs) s += (s.empty() ? "" : ",") + std::to_string(p);
  return s.empty() ? "none" : s;
}

void RunStatus() {
  QuietTss();
  TpmFlags& f = Flags();
  auto st = hsm::tpm::InspectTpm(f.config, f.owner_auth_file);
  if (!st.ok()) Fail(st.status());
  const auto& r = *st;
  std::string primary = r.primary_handle == 0 ? "template" : HandleHex(r.primary_handle);
  if (Globals().json) {
    json gens = json::array();
    for (std::size_t i = 0; i < r.generations.size(); ++i) {
      const auto& g = r.generations[i];
      gens.push_back({{"generation", g.generation},
                      {"current", i + 1 == r.generations.size()},
                      {"pcrs", g.pcrs},
                      {"pcr_bank", "sha256"},
                      {"pcr_digest", g.pcr_digest_hex},
                      {"auth_required", g.auth_required},
                      {"pcrs_match", g.pcrs_match},
                      {"differing_pcrs", g.differing_pcrs}});
    }
    json counter = {{"handle", HandleHex(r.counter.handle)}, {"defined", r.counter.defined}};
    json anchor = {{"handle", HandleHex(r.anchor.handle)}, {"defined", r.anchor.defined}};
    if (r.anchored) {
      counter["value"] = r.anchored->counter;
      anchor["seq"] = r.anchored->seq;
      anchor["head_hash"] = HexEncode(r.anchored->head_hash);
      anchor["stored_counter"] = r.stored_counter;
      anchor["keyset_matches"] = r.anchor_keyset_matches;
    }
    json j = {{"tpm", r.tpm},
              {"tcti", r.tcti},
              {"state_dir", r.state_dir},
              {"keyset_id", r.keyset_id},
              {"primary", primary},
              {"generations", gens},
              {"nv_counter", counter},
              {"nv_anchor", anchor},
              {"problems", r.problems}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("TPM:           %s via %s\n", r.tpm.c_str(), r.tcti.c_str());
    std::printf("state folder:  %s\n", r.state_dir.c_str());
    std::printf("keyset:        %s\n", r.keyset_id.c_str());
    std::printf("primary key:   %s\n",
                r.primary_handle == 0 ? "created from the fixed template (TCG SRK, ECC P-256) at each start"
                                      : ("persistent " + primary).c_str());
    for (std::size_t i = 0; i < r.generations.size(); ++i) {
      const auto& g = r.generations[i];
      std::string now = g.pcrs.empty() ? "no PCR policy"
                        : g.pcrs_match
                            ? "PCRs now match"
                            : "PCRs now differ: " + PcrText(g.differing_pcrs) + " (will not unseal)";
      std::printf("generation %u%s: sealed to sha256 PCRs %s, auth value %s; %s\n", g.generation,
                  i + 1 == r.generations.size() ? " (current)" : "", PcrText(g.pcrs).c_str(),
                  g.auth_required ? "required" : "none", now.c_str());
    }
    std::printf("NV counter:    %s, %s", HandleHex(r.counter.handle).c_str(),
                r.counter.defined ? "defined" : "not defined");
    if (r.anchored) std::printf(", value %llu", static_cast<unsigned long long>(r.anchored->counter));
    std::printf("\nNV anchor:     %s, %s", HandleHex(r.anchor.handle).c_str(),
                r.anchor.defined ? "defined" : "not defined");
    if (r.anchored) {
      std::printf(", anchored seq %llu, head %s (stored with counter %llu)",
                  static_cast<unsigned long long>(r.anchored->seq), HexEncode(r.anchored->head_hash).c_str(),
                  static_cast<unsigned long long>(r.stored_counter));
    }
    std::printf("\n");
    if (r.problems.empty()) std::printf("problems:      none\n");
    for (const auto& p : r.problems) std::printf("problem:       %s\n", p.c_str());
  }
  if (!r.problems.empty()) throw ExitRequest{kExitSealed};
}

void Add(CLI::App& app) {
  auto* tpm = app.add_subcommand(
      "tpm", "Provision and inspect a TPM seal (talks to the TPM; `reseal` goes through the running agent)");
  tpm->require_subcommand(1);

  auto* provision = tpm->add_subcommand(
      "provision",
      "Seal a new master key (generation 1) to the TPM, define the NV anchor indices, write the state "
      "folder's record; safe to run again: it creates only what is missing and reports what exists "
      "(an existing seal is never replaced)");
  AddCommonOptions(provision);
  auto& f = Flags();
  provision->add_option(
      "--pcrs", f.pcrs,
      "PCRs of the sha256 bank to seal to, at their current values, e.g. 7 or 7,11 (default: "
      "none)");
  provision->add_option(
      "--auth-file", f.config.auth_file,
      "File holding an auth value the seal also requires (default: "
      "$CREDENTIALS_DIRECTORY/tpm-auth if it exists, else none; never on the command line)");
  provision->add_option("--nv-counter", f.nv_counter, "NV counter index handle")->capture_default_str();
  provision->add_option("--nv-anchor", f.nv_anchor, "NV anchor index handle")->capture_default_str();
  provision
      ->add_option("--primary-handle", f.primary,
                   "Persistent primary key handle to seal under (default 0: create the primary from the "
                   "fixed template at each start)")
      ->capture_default_str();
  provision->callback(RunProvision);

  auto* status = tpm->add_subcommand(
      "status",
      "Show what the master key is sealed to (PCRs, whether they match now, auth value), the generations, "
      "and the NV anchor; never key bytes, needs no auth value. Exits 6 when something would keep the agent "
      "sealed");
  AddCommonOptions(status);
  status->callback(RunStatus);
}

const Registrar kRegistrar(Add, 210);

}  // namespace
}  // namespace sk::cli
