// Policy: who may do what to which secret paths (docs/design.md). The file format is in
// docs/policy.md; ParsePolicy() turns a file into an immutable Policy.
//
// Model. A role grants capabilities on path globs. A binding gives roles to callers that
// match its subject selector (uid, user, gid, group, unit, user_unit, exe: every key given must match,
// any listed value of a key will do), under optional conditions (conditions.h). A request
// is allowed when some binding matches the caller, one of its roles grants the
// capability on a glob matching the path, and the binding's conditions hold. Nothing else
// allows anything: the default is deny, and there are no deny rules (so the order of
// roles and bindings never changes a decision; it only picks which rule is reported).
//
// Thread safety: a Policy is immutable; share it as shared_ptr<const Policy> across
// threads. A Decision points into its Policy: keep the Policy alive while using it.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/policy/capability.h"
#include "agent/policy/conditions.h"
#include "agent/policy/path_glob.h"
#include "agent/policy/subject.h"
#include "crypto/status.h"

namespace sk::policy {

struct Grant {
  CapabilitySet capabilities;
  std::vector<PathGlob> paths;
  int line = 0;
};

struct Role {
  std::string name;
  std::string description;
  std::vector<Grant> grants;
  int line = 0;
};

// Who a binding is about. Empty lists are unconstrained; at least one is not empty. A
// selector with user_units also has uids or users (the parser refuses it otherwise).
struct SubjectSelector {
  std::vector<std::uint32_t> uids;
  std::vector<std::string> users;
  std::vector<std::uint32_t> gids;      // primary or supplementary
  std::vector<std::string> groups;      // primary or supplementary, by name
  std::vector<std::string> units;       // the caller's system unit (Subject::unit)
  std::vector<std::string> user_units;  // a unit of the caller's own user manager (Subject::user_unit)
  std::vector<std::string> exes;
  bool Matches(const Subject& s) const;
  // The first key that does not match, for explanations ("unit 'web.service'"); "" if all do.
  std::string FirstMismatch(const Subject& s) const;
};

struct Binding {
  std::string name;
  std::vector<std::size_t> roles;  // indices into Policy::roles()
  SubjectSelector match;
  Conditions when;
  int line = 0;
};

// One credential that creds.sock hands to systemd (LoadCredential=ID:/run/sealkeep/creds.sock
// in the unit): when the service manager asks for credential `id` of unit `unit`, the
// agent answers with the value of the secret at `path`. Nothing else is served there: an
// entry is the whole grant, naming exactly one unit, one id and one secret.
struct CredentialGrant {
  std::string unit;  // "web.service"
  std::string id;    // "db-password"
  std::string path;  // "apps/web/db-password"
  int line = 0;
};

// What a systemd unit name and a credential id may be: 1-255 bytes of printable ASCII
// with no '/' (and for ids, not "." or ".."). A unit name also ends in a unit suffix.
bool IsValidUnitName(std::string_view unit);
bool IsValidCredentialId(std::string_view id);

// The path the daemon evaluates `admin` on for /v1/sys/* routes (they name no secret):
// a grant of admin on `**` or on `sys` covers them.
inline constexpr std::string_view kAdminPath = "sys";

// One request to decide. Borrows everything; valid for the duration of Evaluate().
struct Request {
  const Subject& subject;
  Capability capability;
  std::string_view path;
  const Labels* labels = nullptr;  // the secret's labels; nullptr when unknown
  std::chrono::system_clock::time_point time = std::chrono::system_clock::now();
};

struct Decision {
  enum class Why : std::uint8_t {
    kAllowed,          // binding/role/grant/glob say which rule allowed it
    kInvalidPath,      // the path breaks the path grammar
    kNoBinding,        // no binding matches the caller
    kNoGrant,          // bindings match, but none grants this capability on this path
    kConditionFailed,  // a binding would grant it, but its `failed` condition does not hold
  };
  bool allowed = false;
  Why why = Why::kNoBinding;
  // For kAllowed and kConditionFailed: the rule; for kNoGrant: the first matching binding.
  const Binding* binding = nullptr;
  const Role* role = nullptr;
  const Grant* grant = nullptr;
  const PathGlob* glob = nullptr;
  std::string_view failed;  // "labels", "time" or "subject" for kConditionFailed

  // Stable snake_case for audit records and logs: "allowed", "invalid_path",
  // "no_binding", "no_grant", "condition_failed".
  std::string_view Reason() const;
  // One line for humans ("allowed by binding 'web' (line 31): role 'web-reader' grants
  // read on 'apps/web/**' (line 12)").
  std::string Explanation(Capability cap, std::string_view path) const;
};

class Policy {
 public:
  Policy(std::string source, std::vector<Role> roles, std::vector<Binding> bindings,
         std::vector<CredentialGrant> credentials = {});

  Decision Evaluate(const Request& req) const;

  // Whether the caller may learn that `path` exists: it holds `list` on it (a glob such
  // as `apps/**` covers every path below `apps`). The daemon answers a denied request
  // from a caller without it exactly as it answers a missing path, so 403 and 404 look
  // alike to it; listings show only the paths this allows.
  bool MayLearnExists(const Subject& subject, std::string_view path, const Labels* labels,
                      std::chrono::system_clock::time_point time) const;

  // Every binding's verdict on `req`, one line each, for `sealkeep policy explain`.
  std::vector<std::string> Trace(const Request& req) const;

  // The [[credentials]] entry for (unit, id), or nullptr.
  const CredentialGrant* FindCredential(std::string_view unit, std::string_view id) const;
  const std::vector<CredentialGrant>& credentials() const { return credentials_; }

  const std::string& source() const { return source_; }
  const std::vector<Role>& roles() const { return roles_; }
  const std::vector<Binding>& bindings() const { return bindings_; }

 private:
  // The first grant of `b`'s roles covering (cap, path), or false.
  bool FindGrant(const Binding& b, Capability cap, const PathSegments& path, Decision& d) const;

  std::string source_;
  std::vector<Role> roles_;
  std::vector<Binding> bindings_;
  std::vector<CredentialGrant> credentials_;
};

// Parses a policy file. Errors (invalid_argument, reason "policy_invalid") carry every
// problem found, one per line, each "<source_name>:<line>: <what>"
// ("policy.toml:12: unknown capability 'reed'"), up to 50.
Result<std::shared_ptr<const Policy>> ParsePolicy(std::string_view toml_text, std::string_view source_name);

}  // namespace sk::policy
