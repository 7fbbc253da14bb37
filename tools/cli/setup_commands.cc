// `sealkeep setup pkcs11|tpm`: one command from a freshly installed package to a unit that
// unseals at boot with no human (docs/deploy.md). As root it:
//   pkcs11 (default: the agent's own SoftHSM2 under /var/lib/sealkeep/softhsm): writes
//     that SoftHSM2's config, makes the token with random user and SO PINs held in locked
//     memory only, provisions the master key and anchor, and stores both PINs as encrypted
//     systemd credentials (/etc/sealkeep/hsm-pin.cred, hsm-so-pin.cred; TPM-bound where a
//     TPM exists). With --module and --pin-file: a token that exists (a hardware HSM) is
//     provisioned and that PIN encrypted instead;
//   tpm: seals a master key to the PCRs (--pcrs, default 7) in /var/lib/sealkeep/tpm and
//     defines the NV anchor;
// then writes /etc/sealkeep/sealkeep.toml, a policy where root is admin, and a unit drop-in
// with what this host needs (the PIN credential and SOFTHSM2_CONF, or the TPM device's
// group), gives the agent's user what it must own, and enables and starts the units.
// Every step is done only when missing: a second run changes nothing and says so. It
// refuses to replace an existing store or an admin's differing file.
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "crypto/random.h"
#include "hsm/credential.h"
#include "hsm/pkcs11/provision.h"
#include "hsm/tpm/provision.h"
#include "tools/cli/agent_client.h"
#include "tools/cli/command.h"
#include "tools/cli/setup_host.h"

namespace sk::cli {
namespace {

using setup::Step;

struct SetupFlags {
  std::string config = "/etc/sealkeep/sealkeep.toml";
  std::string policy = "/etc/sealkeep/policy.toml";
  std::string state = "/var/lib/sealkeep";
  std::string user = "sealkeep";
  std::string dropin = "/etc/systemd/system/sealkeepd.service.d/50-setup.conf";
  bool no_start = false;
  int wait_s = 120;
  // pkcs11
  std::string token = "sealkeep";
  std::string module;  // empty: the agent's own SoftHSM2
  std::string pin_file;
  // tpm
  std::string tcti = "device:/dev/tpmrm0";
  std::vector<int> pcrs = {7};
  std::string group;  // empty: the group of the TPM device (or swtpm socket)
};

SetupFlags& Flags() {
  static SetupFlags flags;
  return flags;
}

constexpr char kSoftHsmModule[] = "/usr/lib/softhsm/libsofthsm2.so";

std::string EtcDir() { return std::filesystem::path(Flags().config).parent_path().string(); }
std::string PinCredential() { return EtcDir() + "/hsm-pin.cred"; }
std::string SoPinCredential() { return EtcDir() + "/hsm-so-pin.cred"; }

void Check(const Status& st) {
  if (!st.ok()) Fail(st);
}

template <typename T>
T Check(Result<T> r) {
  if (!r.ok()) Fail(r.status());
  return std::move(r).value();
}

// 32 random characters [0-9a-f], generated and kept in locked memory.
SecretBytes NewPin() {
  SecretBytes raw = Check(RandomSecret(16));
  SecretBytes pin(32);
  static constexpr char kHex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < 16; ++i) {
    pin.Expose()[2 * i] = static_cast<std::uint8_t>(kHex[raw.Expose()[i] >> 4]);
    pin.Expose()[2 * i + 1] = static_cast<std::uint8_t>(kHex[raw.Expose()[i] & 0xF]);
  }
  return pin;
}

std::string PolicyText() {
  return R"(# sealkeep policy, written by `sealkeep setup`. Format: /usr/share/doc/sealkeep/policy.md.
# Check an edit with `sealkeep policy check`, apply it with `systemctl reload sealkeepd`
# (a file the agent rejects fails the reload and the running policy stays).
# Default deny: only the bindings below grant anything.
version = 1

[roles.admin]
description = "Every capability on every path"
grants = [
  { capabilities = ["read", "list", "write", "delete", "destroy", "rollback", "snapshot", "admin"], paths = ["**"] },
]

[[bindings]]
name = "root"
roles = ["admin"]
match = { uid = 0 }

# A unit's LoadCredential=ID:/run/sealkeep/creds.sock gets the secret an entry names:
# [[credentials]]
# unit = "web.service"
# id = "db-password"
# path = "apps/web/db-password"
)";
}

std::string ConfigText(const std::string& backend) {
  return "# Written by `sealkeep setup`. Format: /usr/share/doc/sealkeep/config.md.\n[agent]\nstate_dir = "
         "\"" +
         Flags().state +
         "\"\nsocket = \"/run/sealkeep/api.sock\"\ncreds_socket = \"/run/sealkeep/creds.sock\"\n\n" +
         backend + "\n[policy]\nfile = \"" + Flags().policy + "\"\n\n[audit]\ndir = \"audit\"\n";
}

std::string DropIn(const std::string& lines) {
  return "# Written by `sealkeep setup`: what this host's agent needs beyond the shipped unit.\n[Service]\n" +
         lines;
}

// A store that a config other than ours describes is never replaced.
void RefuseForeignStore(const std::string& config_text) {
  const std::string store = Flags().state + "/store.db";
  if (!setup::Exists(store) || setup::Exists(Flags().config)) return;  // WriteOnce compares the config
  (void)config_text;
  Fail(Status(Code::kConflict, "store_exists",
              "a store exists at " + store + " but " + Flags().config +
                  " does not: setup never replaces a store (back it up, or restore its config)"));
}

// The common tail: config, policy, drop-in, ownership, units. `steps` so far.
void Finish(std::vector<Step>& steps, const setup::Account& acct, const std::string& backend_toml,
            const std::string& dropin_lines) {
  gid_t agent_gid = acct.gid;
  Check(setup::MakeDirs(EtcDir(), 0750, 0, agent_gid));
  steps.push_back(
      Check(setup::WriteOnce("config", Flags().config, ConfigText(backend_toml), 0640, 0, agent_gid)));
  steps.push_back(Check(
      setup::WriteOnce("policy", Flags().policy, PolicyText(), 0640, 0, agent_gid, /*keep_existing=*/true)));
  Check(setup::MakeDirs(std::filesystem::path(Flags().dropin).parent_path().string(), 0755, 0, 0));
  steps.push_back(Check(setup::WriteOnce("unit drop-in", Flags().dropin, DropIn(dropin_lines), 0644, 0, 0)));

  bool changed = false;
  for (const Step& s : steps) {
    if (s.state == "created") changed = true;
  }
  for (const Step& s : steps) std::printf("%-16s %-9s %s\n", s.what.c_str(), s.state.c_str(), s.path.c_str());
  if (!changed) std::printf("nothing changed: this host is set up already\n");

  if (!setup::SystemdRunning()) {
    std::printf(
        "systemd is not running here: at the next boot `systemctl enable --now sealkeepd.service` starts the "
        "agent\n");
    return;
  }
  Check(setup::Run({"/usr/bin/systemctl", "daemon-reload"}));
  Check(setup::Run({"/usr/bin/systemctl", "enable", "--quiet", "sealkeepd.socket", "sealkeepd.service"}));
  if (Flags().no_start) {
    std::printf(
        "enabled sealkeepd.socket and sealkeepd.service; start them with systemctl start sealkeepd\n");
    return;
  }
  // READY=1 waits for the unseal: start without blocking, then ask the agent itself.
  Check(setup::Run({"/usr/bin/systemctl", "start", "--no-block", "sealkeepd.socket", "sealkeepd.service"}));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(Flags().wait_s);
  std::string last = "no answer on " + Globals().socket;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r =
        HttpCall(Globals().socket, HttpRequest("GET", "/v1/health", {}, std::chrono::milliseconds(5000)));
    if (r.ok() && r->status == 200) {
      std::printf("sealkeepd is unsealed and serving on %s; it unseals by itself at every boot\n",
                  Globals().socket.c_str());
      return;
    }
    if (r.ok()) {
      Json j = Json::parse(r->body, nullptr, false);
      if (j.is_object()) last = "sealed: " + j.value("reason", "?") + ": " + j.value("message", "");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  Fail(Status(Code::kSealed, "not_ready",
              "sealkeepd did not unseal within " + std::to_string(Flags().wait_s) + " s (" + last +
                  "); see journalctl -u sealkeepd"));
}

setup::Account Prepare() {
  if (::geteuid() != 0) {
    Fail(Status(Code::kForbidden, "not_root", "sealkeep setup changes /etc and /var/lib: run it as root"));
  }
  setup::Account acct = Check(setup::LookUpAccount(Flags().user));
  Check(setup::MakeDirs(Flags().state, 0700, acct.uid, acct.gid));
  return acct;
}

void RunPkcs11() {
  SetupFlags& f = Flags();
  setup::Account acct = Prepare();
  const bool own_softhsm = f.module.empty();
  if (!own_softhsm && f.pin_file.empty()) {
    Fail(InvalidArgument("with --module (an HSM of your own) give its user PIN with --pin-file", "usage"));
  }
  const std::string module = own_softhsm ? kSoftHsmModule : f.module;
  const std::string softhsm = f.state + "/softhsm";
  std::string backend = "[backend]\nkind = \"pkcs11\"\n\n[pkcs11]\nmodule = \"" + module + "\"\ntoken = \"" +
                        f.token + "\"\n" + (own_softhsm ? "sync_dir = \"softhsm/tokens\"\n" : "");
  std::string dropin = "LoadCredentialEncrypted=hsm-pin:" + PinCredential() + "\n";
  if (own_softhsm) dropin = "Environment=SOFTHSM2_CONF=" + softhsm + "/softhsm2.conf\n" + dropin;
  RefuseForeignStore(ConfigText(backend));

  std::vector<Step> steps;
  hsm::pkcs11::ProvisionOptions o;
  o.config.module = module;
  o.config.token_label = f.token;
  if (own_softhsm) {
    Check(setup::MakeDirs(softhsm + "/tokens", 0700, acct.uid, acct.gid));
    steps.push_back(Check(setup::WriteOnce(
        "softhsm config", softhsm + "/softhsm2.conf",
        "directories.tokendir = " + softhsm + "/tokens\nobjectstore.backend = file\nlog.level = ERROR\n",
        0600, acct.uid, acct.gid)));
    ::setenv("SOFTHSM2_CONF", (softhsm + "/softhsm2.conf").c_str(), 1);
    o.config.sync_dir = softhsm + "/tokens";
    const bool token_exists = Check(hsm::pkcs11::TokenExists(o.config));
    const bool cred_exists = setup::Exists(PinCredential());
    if (token_exists != cred_exists) {
      Fail(Status(Code::kConflict, "setup_inconsistent",
                  token_exists
                      ? "token '" + f.token + "' exists but " + PinCredential() +
                            " does not: its PIN is unknown to setup (restore the credential, or remove "
                            "the token folder " +
                            softhsm + "/tokens to start over)"
                      : PinCredential() + " exists but token '" + f.token +
                            "' does not (restore the token folder, or remove the credential to start "
                            "over)"));
    }
    if (!token_exists) {
      SecretBytes user_pin = NewPin();
      SecretBytes so_pin = NewPin();
      o.init = true;
      o.user_pin = &user_pin;
      o.so_pin = &so_pin;
      Check(hsm::pkcs11::Provision(o));
      Check(setup::EncryptCredential("hsm-so-pin", so_pin, SoPinCredential()));
      Check(setup::EncryptCredential("hsm-pin", user_pin, PinCredential()));
      steps.push_back({"token", f.token + " in " + softhsm + "/tokens (master key g1, anchor)", "created"});
      steps.push_back({"PIN credential", PinCredential(), "created"});
      steps.push_back({"SO PIN credential", SoPinCredential(), "created"});
    } else {
      steps.push_back({"token", f.token + " in " + softhsm + "/tokens", "unchanged"});
      steps.push_back({"PIN credential", PinCredential(), "unchanged"});
    }
    Check(setup::ChownTree(softhsm, acct.uid, acct.gid));
  } else {
    o.config.pin_file = f.pin_file;
    hsm::pkcs11::ProvisionReport r = Check(hsm::pkcs11::Provision(o));
    const bool created = r.master_key_created || r.anchor_created;
    steps.push_back({"token", f.token + " (" + module + ")", created ? "created" : "unchanged"});
    if (setup::Exists(PinCredential())) {
      steps.push_back({"PIN credential", PinCredential(), "kept"});
    } else {
      SecretBytes pin = Check(hsm::ReadCredentialFile(f.pin_file));
      Check(setup::EncryptCredential("hsm-pin", pin, PinCredential()));
      steps.push_back({"PIN credential", PinCredential(), "created"});
    }
  }
  Finish(steps, acct, backend, dropin);
}

// The group that may open the TPM: of the device for device:PATH, of the socket for
// swtpm:path=PATH; "" when it cannot be told.
std::string TpmGroup(const std::string& tcti) {
  std::string path;
  if (tcti.rfind("device:", 0) == 0) path = tcti.substr(7);
  if (std::size_t at = tcti.find("path="); tcti.rfind("swtpm:", 0) == 0 && at != std::string::npos) {
    path = tcti.substr(at + 5);
    path = path.substr(0, path.find(','));
  }
  struct stat st {};
  if (path.empty() || ::stat(path.c_str(), &st) != 0 || st.st_gid == 0) return "";
  group* g = ::getgrgid(st.st_gid);
  return g != nullptr ? g->gr_name : "";
}

void RunTpm() {
  SetupFlags& f = Flags();
  setup::Account acct = Prepare();
  std::string pcrs;
  for (int p : f.pcrs) pcrs += (pcrs.empty() ? "" : ", ") + std::to_string(p);
  std::string backend = "[backend]\nkind = \"tpm\"\n\n[tpm]\ntcti = \"" + f.tcti +
                        "\"\nstate_dir = \"tpm\"\npcrs = [" + pcrs + "]\n";
  const std::string group = f.group.empty() ? TpmGroup(f.tcti) : f.group;
  std::string dropin = group.empty() ? "" : "SupplementaryGroups=" + group + "\n";
  RefuseForeignStore(ConfigText(backend));

  std::vector<Step> steps;
  hsm::TpmConfig tpm;
  tpm.tcti = f.tcti;
  tpm.state_dir = f.state + "/tpm";
  tpm.pcrs = f.pcrs;
  Check(setup::MakeDirs(tpm.state_dir, 0700, acct.uid, acct.gid));
  hsm::tpm::ProvisionReport r = Check(hsm::tpm::ProvisionTpm(tpm));
  steps.push_back({"TPM seal", tpm.state_dir + " (PCRs " + (pcrs.empty() ? "none" : pcrs) + ", NV anchor)",
                   r.created_anything() ? "created" : "unchanged"});
  for (const std::string& note : r.notes) std::printf("note: %s\n", note.c_str());
  Check(setup::ChownTree(tpm.state_dir, acct.uid, acct.gid));
  if (group.empty()) {
    std::printf(
        "note: the TPM (%s) belongs to no group of its own; the agent's user must be able to open it\n",
        f.tcti.c_str());
  }
  Finish(steps, acct, backend, dropin);
}

void Common(CLI::App* cmd) {
  SetupFlags& f = Flags();
  cmd->add_option("--config", f.config,
                  "The agent's config file to write (default /etc/sealkeep/sealkeep.toml)");
  cmd->add_option("--policy", f.policy,
                  "The policy file to write if missing (default /etc/sealkeep/policy.toml)");
  cmd->add_option("--state", f.state, "The agent's state folder (default /var/lib/sealkeep)");
  cmd->add_option("--user", f.user, "The agent's system user (default sealkeep)");
  cmd->add_option(
      "--drop-in", f.dropin,
      "The unit drop-in to write (default /etc/systemd/system/sealkeepd.service.d/50-setup.conf)");
  cmd->add_flag("--no-start", f.no_start, "Enable the units but do not start them");
  cmd->add_option("--wait", f.wait_s, "Seconds to wait for the started agent to unseal (default 120)")
      ->check(CLI::Range(1, 3600));
}

void Add(CLI::App& app) {
  SetupFlags& f = Flags();
  auto* setup = app.add_subcommand(
      "setup",
      "As root, take a freshly installed host to a sealkeepd that unseals at boot with no human: the "
      "backend, encrypted credentials, config, policy, unit drop-in, ownership, enabled units. Running it "
      "again changes nothing and says so; it never replaces a store or an admin's file");
  setup->require_subcommand(1, 1);
  auto* p11 = setup->add_subcommand(
      "pkcs11",
      "PKCS#11: by default the agent's own SoftHSM2 token under /var/lib/sealkeep/softhsm, with random PINs "
      "kept only as encrypted systemd credentials; with --module and --pin-file, an HSM of your own");
  p11->add_option("--token", f.token, "Token label (default sealkeep)");
  p11->add_option("--module", f.module, "PKCS#11 module of your own HSM (default: the agent's own SoftHSM2)");
  p11->add_option("--pin-file", f.pin_file, "With --module: a file (0600) holding the token's user PIN");
  Common(p11);
  p11->callback(RunPkcs11);
  auto* tpm = setup->add_subcommand("tpm", "TPM 2.0: a master key sealed to the PCRs, an NV anchor");
  tpm->add_option("--tcti", f.tcti, "TPM access (default device:/dev/tpmrm0; swtpm:path=SOCKET for swtpm)");
  tpm->add_option("--pcrs", f.pcrs, "PCRs (sha256) to seal to (default 7)")
      ->delimiter(',')
      ->check(CLI::Range(0, 23));
  tpm->add_option("--group", f.group,
                  "A group the agent joins to open the TPM (default: the group of the device or socket)");
  Common(tpm);
  tpm->callback(RunTpm);
}

const Registrar kRegistrar(Add, 5);

}  // namespace
}  // namespace sk::cli
