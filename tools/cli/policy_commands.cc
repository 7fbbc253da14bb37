// `sealkeep policy check [FILE]` and `sealkeep policy explain [FILE] OP PATH ...`:
// offline tools over a policy file (docs/policy.md). Neither talks to the agent. Without
// FILE they read the policy the agent runs with: the [policy] file of the agent's config
// (--config F; default $SEALKEEP_STATE/sealkeep.toml when SEALKEEP_STATE is set, else
// /etc/sealkeep/sealkeep.toml).
//
// Exit codes: check: 0 valid, 2 invalid (each error "<file>:<line>: <what>"), 6 unreadable.
//             explain: 0 allowed, 5 denied, 2 bad arguments or policy.
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/config/config.h"
#include "agent/policy/peer_identity.h"
#include "agent/policy/policy.h"
#include "agent/policy/policy_holder.h"
#include "tools/cli/command.h"

namespace sk::cli {
namespace {

using nlohmann::json;
using policy::Capability;

struct ExplainFlags {
  std::vector<std::string> args;  // [FILE] OP PATH
  std::string config;
  std::string file;
  std::uint32_t uid = 0;
  std::optional<std::uint32_t> gid;
  std::vector<std::string> groups;
  std::string unit;
  std::string user_unit;
  std::string exe;
  std::vector<std::string> labels;
  std::string at;
  std::string op;
  std::string path;
};

ExplainFlags& Explain() {
  static ExplainFlags flags;
  return flags;
}

std::string& CheckFile() {
  static std::string file;
  return file;
}

std::string& CheckConfig() {
  static std::string config;
  return config;
}

// The policy file the agent runs with, from its config file.
std::string PolicyFromConfig(std::string config_path) {
  if (config_path.empty()) {
    const char* state = std::getenv("SEALKEEP_STATE");
    config_path = state != nullptr && *state != '\0' ? std::string(state) + "/sealkeep.toml"
                                                     : std::string(config::kDefaultConfigPath);
  }
  auto cfg = config::LoadConfig(config_path);
  if (!cfg.ok()) Fail(cfg.status().WithContext("finding the agent's policy (or pass FILE)"));
  if (cfg->policy_file.empty()) {
    Fail(NotFound(config_path + " turns the policy file off ([policy] file = \"\"): the agent runs with the "
                                "built-in rule (root and its own user); pass FILE",
                  "no_policy_file"));
  }
  return cfg->policy_file;
}

std::shared_ptr<const policy::Policy> LoadOrFail(const std::string& file) {
  Result<std::string> text = policy::ReadPolicyFile(file);
  if (!text.ok()) Fail(text.status());
  Result<std::shared_ptr<const policy::Policy>> parsed = policy::ParsePolicy(*text, file);
  if (!parsed.ok()) Fail(parsed.status());
  return *parsed;
}

void RunCheck() {
  if (CheckFile().empty()) CheckFile() = PolicyFromConfig(CheckConfig());
  auto p = LoadOrFail(CheckFile());
  if (Globals().json) {
    json j = {{"file", CheckFile()},
              {"valid", true},
              {"roles", p->roles().size()},
              {"bindings", p->bindings().size()},
              {"credentials", p->credentials().size()}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s: ok: %zu roles, %zu bindings", CheckFile().c_str(), p->roles().size(),
                p->bindings().size());
    if (!p->credentials().empty()) std::printf(", %zu credentials", p->credentials().size());
    std::printf("\n");
  }
}

// "2025-06-01T14:30:00Z" (UTC) or without the Z (local time); seconds optional.
std::optional<std::chrono::system_clock::time_point> ParseAt(const std::string& s) {
  std::tm tm{};
  int sec = 0;
  char z = 0;
  int n = std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                      &tm.tm_hour, &tm.tm_min, &sec, &z);
  if (n < 5) return std::nullopt;
  if (n == 5) {
    n = std::sscanf(s.c_str(), "%*4d-%*2d-%*2dT%*2d:%*2d%c", &z);
    if (n != 1) z = 0;
  }
  tm.tm_sec = sec;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  tm.tm_isdst = -1;
  std::time_t t = z == 'Z' ? ::timegm(&tm) : std::mktime(&tm);
  if (t == -1) return std::nullopt;
  return std::chrono::system_clock::from_time_t(t);
}

std::string SubjectText(const policy::Subject& s) {
  std::string out = "uid=" + std::to_string(s.uid);
  if (!s.user.empty()) out += "(" + s.user + ")";
  out += " gid=" + std::to_string(s.gid) + " groups=";
  for (std::size_t i = 0; i < s.groups.size(); ++i) out += (i ? "," : "") + s.groups[i];
  if (s.groups.empty()) out += "-";
  out += " unit=" + (s.unit.empty() ? std::string("-") : s.unit);
  if (!s.user_unit.empty()) out += " user_unit=" + s.user_unit;
  out += " exe=" + (s.exe.empty() ? std::string("-") : s.exe);
  return out;
}

void RunExplain() {
  ExplainFlags& f = Explain();
  if (f.args.size() == 3) {
    f.file = f.args[0];
    f.op = f.args[1];
    f.path = f.args[2];
  } else if (f.args.size() == 2) {
    f.file = PolicyFromConfig(f.config);
    f.op = f.args[0];
    f.path = f.args[1];
  } else {
    Fail(InvalidArgument("explain wants [FILE] OP PATH", "bad_arguments"));
  }
  auto p = LoadOrFail(f.file);
  std::optional<Capability> cap = policy::ParseCapability(f.op);
  if (!cap) {
    Fail(
        InvalidArgument("unknown operation '" + f.op + "' (" + std::string(policy::CapabilityNames()) + ")"));
  }
  policy::Subject subject = policy::SubjectForUser(f.uid, f.gid);
  for (const std::string& g : f.groups) {
    if (!subject.HasGroup(g)) subject.groups.push_back(g);
  }
  subject.unit = f.unit;
  subject.user_unit = f.user_unit;
  subject.exe = f.exe;
  policy::Labels labels;
  for (const std::string& kv : f.labels) {
    std::size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      Fail(InvalidArgument("--label wants key=value, got '" + kv + "'"));
    labels[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  auto when = std::chrono::system_clock::now();
  if (!f.at.empty()) {
    auto parsed = ParseAt(f.at);
    if (!parsed) Fail(InvalidArgument("--at wants YYYY-MM-DDTHH:MM[:SS][Z], got '" + f.at + "'"));
    when = *parsed;
  }
  const policy::Labels* label_ptr = f.labels.empty() ? nullptr : &labels;
  policy::Request req{subject, *cap, f.path, label_ptr, when};
  policy::Decision d = p->Evaluate(req);
  bool visible = p->MayLearnExists(subject, f.path, label_ptr, when);
  std::vector<std::string> trace = p->Trace(req);
  std::string explanation = d.Explanation(*cap, f.path);
  if (Globals().json) {
    json j = {{"decision", d.allowed ? "allow" : "deny"},
              {"reason", std::string(d.Reason())},
              {"explanation", explanation},
              {"subject", SubjectText(subject)},
              {"may_learn_exists", visible},
              {"trace", trace}};
    if (d.allowed) {
      j["rule"] = {{"binding", d.binding->name},
                   {"binding_line", d.binding->line},
                   {"role", d.role->name},
                   {"glob", d.glob->pattern()},
                   {"grant_line", d.grant->line}};
    }
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("decision: %s\n", d.allowed ? "allow" : "deny");
    std::printf("why: %s\n", explanation.c_str());
    std::printf("subject: %s\n", SubjectText(subject).c_str());
    std::printf("may learn that it exists (list): %s\n", visible ? "yes" : "no (403 and 404 look alike)");
    std::printf("bindings:\n");
    for (const std::string& line : trace) std::printf("  %s\n", line.c_str());
  }
  if (!d.allowed) throw ExitRequest{kExitForbidden};
}

void Add(CLI::App& app) {
  auto* cmd = app.add_subcommand("policy", "Check a policy file, or explain a decision it makes (offline)");
  cmd->require_subcommand(1);

  auto* check = cmd->add_subcommand("check", "Validate a policy file; every error names its line");
  auto* check_file = check->add_option(
      "FILE", CheckFile(), "Policy file (TOML, see docs/policy.md); default: the agent's, from its config");
  check->add_option("--config", CheckConfig(), "Without FILE: the agent's config file that names the policy")
      ->excludes(check_file);
  check->callback(RunCheck);

  auto& f = Explain();
  auto* explain = cmd->add_subcommand(
      "explain",
      "Say whether a caller may do OP on PATH under a policy file (default: the agent's), and which rule "
      "decides");
  explain
      ->add_option(
          "[FILE] OP PATH", f.args,
          "Policy file (default: the agent's, from its config); OP: a capability (read, list, write, "
          "delete, destroy, rollback, snapshot, admin, sys.read, rotate, reseal, recover, seal); PATH: a "
          "secret path such as apps/web/db, or sys for the /v1/sys capabilities")
      ->expected(2, 3)
      ->required();
  explain->add_option("--config", f.config,
                      "Without FILE: the agent's config file that names the policy (default "
                      "$SEALKEEP_STATE/sealkeep.toml, else /etc/sealkeep/sealkeep.toml)");
  explain->add_option("--uid", f.uid, "Caller's uid (its name and groups come from the user database)")
      ->required();
  explain->add_option("--gid", f.gid, "Caller's primary gid (default: from the user database)");
  // One value per occurrence, so OP and PATH after them stay positionals.
  explain->add_option("--group", f.groups, "An extra group name the caller is in (repeatable)")
      ->allow_extra_args(false);
  explain->add_option("--unit", f.unit, "Caller's systemd unit, such as web.service");
  explain->add_option("--user-unit", f.user_unit,
                      "Caller's unit in its own user manager (with --unit user@UID.service)");
  explain->add_option("--exe", f.exe, "Caller's executable path");
  explain->add_option("--label", f.labels, "A label of the secret, key=value (repeatable)")
      ->allow_extra_args(false);
  explain->add_option("--at", f.at, "Time of the request: YYYY-MM-DDTHH:MM[:SS]Z (UTC) or without Z (local)");
  explain->footer("Exit codes: 0 allowed, 5 denied, 2 bad arguments or an invalid policy.");
  explain->callback(RunExplain);
}

const Registrar kRegistrar(Add, 600);

}  // namespace
}  // namespace sk::cli
