// ParsePolicy: the TOML policy file (docs/policy.md) into a Policy. Debian's toml++ is a
// shared library built with exceptions on; its parse_error is caught right here, so
// nothing but a Result leaves this file.
#include "agent/config/toml.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "agent/policy/policy.h"

namespace sk::policy {
namespace {

constexpr std::size_t kMaxErrors = 50;
constexpr std::int64_t kMaxId = 0xFFFFFFFE;  // (uid_t)-1 means "no id" to the kernel

bool IsName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// A path a secret can have: the path grammar, and no "." or ".." segment (the store
// refuses those; a credential naming one could never be served).
bool IsSecretPath(std::string_view path) {
  PathSegments segs(path);
  if (!segs.valid()) return false;
  for (std::size_t i = 0; i < segs.size(); ++i) {
    if (segs[i] == "." || segs[i] == "..") return false;
  }
  return true;
}

int LineOf(const toml::node& n) { return static_cast<int>(n.source().begin.line); }
int LineOf(const toml::key& k) { return static_cast<int>(k.source().begin.line); }

class Parser {
 public:
  explicit Parser(std::string_view source) : source_(source) {}

  void Error(int line, std::string message) {
    if (errors_.size() < kMaxErrors) {
      errors_.push_back(source_ + ":" + std::to_string(line) + ": " + std::move(message));
    }
  }
  bool failed() const { return !errors_.empty(); }
  Status ToStatus() const {
    std::string msg;
    for (const std::string& e : errors_) msg += (msg.empty() ? "" : "\n") + e;
    return InvalidArgument(std::move(msg), "policy_invalid");
  }

  // Reports every key of `t` not in `allowed`.
  void CheckKeys(const toml::table& t, std::initializer_list<std::string_view> allowed,
                 std::string_view where) {
    for (auto&& [key, node] : t) {
      (void)node;
      if (std::find(allowed.begin(), allowed.end(), key.str()) == allowed.end()) {
        Error(LineOf(key), "unknown key '" + std::string(key.str()) + "' in " + std::string(where));
      }
    }
  }

  // A string, or an array of strings (non-empty), into `out`.
  bool Strings(const toml::node& n, std::string_view what, std::vector<std::string>& out) {
    if (const auto* s = n.as_string()) {
      out.push_back(s->get());
      return true;
    }
    const auto* arr = n.as_array();
    if (arr == nullptr || arr->empty()) {
      Error(LineOf(n), std::string(what) + " must be a string or a non-empty array of strings");
      return false;
    }
    for (const toml::node& e : *arr) {
      const auto* s = e.as_string();
      if (s == nullptr) {
        Error(LineOf(e), std::string(what) + " must hold strings");
        return false;
      }
      out.push_back(s->get());
    }
    return true;
  }

  // An id (0..2^32-2), or an array of them.
  bool Ids(const toml::node& n, std::string_view what, std::vector<std::uint32_t>& out) {
    auto one = [&](const toml::node& e) {
      const auto* i = e.as_integer();
      if (i == nullptr || i->get() < 0 || i->get() > kMaxId) {
        Error(LineOf(e), std::string(what) + " must be an integer id from 0 to 4294967294");
        return false;
      }
      out.push_back(static_cast<std::uint32_t>(i->get()));
      return true;
    };
    if (const auto* arr = n.as_array()) {
      if (arr->empty()) {
        Error(LineOf(n), std::string(what) + " must not be an empty array");
        return false;
      }
      for (const toml::node& e : *arr) {
        if (!one(e)) return false;
      }
      return true;
    }
    return one(n);
  }

  void ParseRoles(const toml::table& roles) {
    for (auto&& [key, node] : roles) {
      const std::string name(key.str());
      const auto* t = node.as_table();
      if (!IsName(name)) Error(LineOf(key), "role name '" + name + "' must be 1-64 of [A-Za-z0-9._-]");
      if (t == nullptr) {
        Error(LineOf(key), "role '" + name + "' must be a table");
        continue;
      }
      Role role;
      role.name = name;
      role.line = LineOf(key);
      CheckKeys(*t, {"description", "grants"}, "role '" + name + "'");
      if (const auto* d = t->get("description")) {
        if (const auto* s = d->as_string()) {
          role.description = s->get();
        } else {
          Error(LineOf(*d), "description must be a string");
        }
      }
      const toml::node* grants = t->get("grants");
      const toml::array* arr = grants != nullptr ? grants->as_array() : nullptr;
      if (arr == nullptr || arr->empty()) {
        Error(grants != nullptr ? LineOf(*grants) : role.line,
              "role '" + name + "' needs grants = [ { capabilities = [...], paths = [...] }, ... ]");
        continue;
      }
      for (const toml::node& g : *arr) ParseGrant(g, role);
      role_index_.emplace(name, roles_.size());
      roles_.push_back(std::move(role));
    }
  }

  void ParseGrant(const toml::node& n, Role& role) {
    const auto* t = n.as_table();
    if (t == nullptr) {
      Error(LineOf(n), "a grant must be a table { capabilities = [...], paths = [...] }");
      return;
    }
    Grant grant;
    grant.line = LineOf(n);
    CheckKeys(*t, {"capabilities", "paths"}, "grant");
    std::vector<std::string> caps;
    std::vector<std::string> paths;
    const toml::node* c = t->get("capabilities");
    const toml::node* p = t->get("paths");
    if (c == nullptr) Error(grant.line, "grant needs capabilities");
    if (p == nullptr) Error(grant.line, "grant needs paths");
    if (c == nullptr || p == nullptr) return;
    if (!Strings(*c, "capabilities", caps) || !Strings(*p, "paths", paths)) return;
    for (const std::string& cap : caps) {
      if (auto parsed = ParseCapability(cap)) {
        grant.capabilities.Add(*parsed);
      } else {
        Error(LineOf(*c), "unknown capability '" + cap + "' (" + std::string(CapabilityNames()) + ")");
      }
    }
    for (const std::string& path : paths) {
      Result<PathGlob> glob = PathGlob::Compile(path);
      if (!glob.ok()) {
        Error(LineOf(*p), std::string(glob.status().message()));
        continue;
      }
      grant.paths.push_back(std::move(glob).value());
    }
    role.grants.push_back(std::move(grant));
  }

  void ParseSelector(const toml::node& n, SubjectSelector& sel) {
    const auto* t = n.as_table();
    if (t == nullptr) {
      Error(LineOf(n), "match must be a table such as { unit = \"web.service\" }");
      return;
    }
    CheckKeys(*t, {"uid", "user", "gid", "group", "unit", "user_unit", "exe"}, "match");
    if (t->empty())
      Error(LineOf(n), "match needs at least one of uid, user, gid, group, unit, user_unit, exe");
    if (const auto* v = t->get("uid")) Ids(*v, "uid", sel.uids);
    if (const auto* v = t->get("gid")) Ids(*v, "gid", sel.gids);
    if (const auto* v = t->get("user")) Strings(*v, "user", sel.users);
    if (const auto* v = t->get("group")) Strings(*v, "group", sel.groups);
    for (const auto* list : {&sel.users, &sel.groups}) {
      if (std::find(list->begin(), list->end(), "") != list->end()) {
        Error(LineOf(n), "user and group names in match must not be empty");
      }
    }
    auto units = [&](const char* key, std::vector<std::string>& out) {
      const toml::node* v = t->get(key);
      if (v == nullptr || !Strings(*v, key, out)) return;
      for (const std::string& u : out) {
        if (!IsProcessUnitName(u)) {
          Error(LineOf(*v), std::string(key) + " '" + u +
                                "' is not a unit name (.service, .scope, .socket, .mount, .swap)");
        }
      }
    };
    units("unit", sel.units);
    units("user_unit", sel.user_units);
    // Any user may name a unit of their own manager as they like: a user unit says who
    // it is only together with whose it is.
    if (t->get("user_unit") != nullptr && t->get("uid") == nullptr && t->get("user") == nullptr) {
      Error(LineOf(*t->get("user_unit")),
            "user_unit names a unit of a user's own service manager, which any user may name as they like: "
            "give the user too (uid or user)");
    }
    if (const auto* v = t->get("exe")) {
      if (Strings(*v, "exe", sel.exes)) {
        for (const std::string& e : sel.exes) {
          if (e.empty() || e.front() != '/') Error(LineOf(*v), "exe '" + e + "' must be an absolute path");
        }
      }
    }
  }

  void ParseTime(const toml::node& n, Conditions& when) {
    const auto* t = n.as_table();
    if (t == nullptr) {
      Error(LineOf(n), "when.time must be a table { from = \"08:00\", to = \"18:00\", zone = \"utc\" }");
      return;
    }
    CheckKeys(*t, {"from", "to", "zone", "days"}, "when.time");
    TimeWindow w;
    auto clock = [&](const char* key, int& out) {
      const toml::node* v = t->get(key);
      const auto* s = v != nullptr ? v->as_string() : nullptr;
      std::optional<int> m = s != nullptr ? ParseClock(s->get()) : std::nullopt;
      if (!m) {
        Error(v != nullptr ? LineOf(*v) : LineOf(n), std::string("when.time.") + key + " must be \"HH:MM\"");
        return false;
      }
      out = *m;
      return true;
    };
    bool ok = clock("from", w.from_minute) & clock("to", w.to_minute);
    if (ok && w.from_minute == w.to_minute) Error(LineOf(n), "when.time window is empty (from == to)");
    if (ok && w.from_minute == 24 * 60) Error(LineOf(n), "when.time.from cannot be 24:00");
    const toml::node* z = t->get("zone");
    const auto* zs = z != nullptr ? z->as_string() : nullptr;
    if (zs == nullptr || (zs->get() != "utc" && zs->get() != "local")) {
      Error(z != nullptr ? LineOf(*z) : LineOf(n), "when.time.zone must be \"utc\" or \"local\"");
    } else {
      w.zone = zs->get() == "utc" ? TimeWindow::Zone::kUtc : TimeWindow::Zone::kLocal;
    }
    if (const auto* d = t->get("days")) {
      std::vector<std::string> days;
      if (Strings(*d, "when.time.days", days)) {
        static constexpr std::string_view kDays[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
        w.days = 0;
        for (const std::string& day : days) {
          auto it = std::find(std::begin(kDays), std::end(kDays), day);
          if (it == std::end(kDays)) {
            Error(LineOf(*d), "unknown day '" + day + "' (mon, tue, wed, thu, fri, sat, sun)");
          } else {
            w.days =
                static_cast<std::uint8_t>(w.days | (1U << static_cast<unsigned>(it - std::begin(kDays))));
          }
        }
      }
    }
    when.time = w;
  }

  void ParseWhen(const toml::node& n, Conditions& when) {
    const auto* t = n.as_table();
    if (t == nullptr) {
      Error(LineOf(n), "when must be a table");
      return;
    }
    CheckKeys(*t, {"labels", "time", "subject"}, "when");
    if (const auto* l = t->get("labels")) {
      const auto* lt = l->as_table();
      if (lt == nullptr || lt->empty()) {
        Error(LineOf(*l), "when.labels must be a non-empty table such as { env = \"prod\" }");
      } else {
        LabelCondition cond;
        for (auto&& [key, value] : *lt) {
          std::vector<std::string> values;
          if (Strings(value, "label '" + std::string(key.str()) + "'", values)) {
            cond.required.emplace_back(std::string(key.str()), std::move(values));
          }
        }
        when.labels = std::move(cond);
      }
    }
    if (const auto* tm = t->get("time")) ParseTime(*tm, when);
    if (const auto* s = t->get("subject")) {
      const auto* st = s->as_table();
      if (st == nullptr || st->empty()) {
        Error(LineOf(*s), "when.subject must be a non-empty table { groups = [...], exe_prefix = [...] }");
      } else {
        CheckKeys(*st, {"groups", "exe_prefix"}, "when.subject");
        SubjectCondition cond;
        if (const auto* g = st->get("groups")) Strings(*g, "when.subject.groups", cond.groups);
        if (const auto* e = st->get("exe_prefix")) {
          if (Strings(*e, "when.subject.exe_prefix", cond.exe_prefixes)) {
            for (const std::string& p : cond.exe_prefixes) {
              if (p.empty() || p.front() != '/')
                Error(LineOf(*e), "exe_prefix '" + p + "' must start with '/'");
            }
          }
        }
        when.subject = std::move(cond);
      }
    }
  }

  void ParseBinding(const toml::node& n) {
    const auto* t = n.as_table();
    if (t == nullptr) {
      Error(LineOf(n), "each [[bindings]] entry must be a table");
      return;
    }
    Binding b;
    b.line = LineOf(n);
    CheckKeys(*t, {"name", "roles", "match", "when"}, "binding");
    const toml::node* name = t->get("name");
    const auto* ns = name != nullptr ? name->as_string() : nullptr;
    if (ns == nullptr || !IsName(ns->get())) {
      Error(name != nullptr ? LineOf(*name) : b.line,
            "binding needs name = \"...\" (1-64 of [A-Za-z0-9._-])");
    } else {
      b.name = ns->get();
      if (!binding_names_.insert(b.name).second)
        Error(LineOf(*name), "duplicate binding name '" + b.name + "'");
    }
    const toml::node* roles = t->get("roles");
    std::vector<std::string> role_names;
    if (roles == nullptr) {
      Error(b.line, "binding needs roles = [\"...\"]");
    } else if (Strings(*roles, "roles", role_names)) {
      for (const std::string& r : role_names) {
        auto it = role_index_.find(r);
        if (it == role_index_.end()) {
          Error(LineOf(*roles), "unknown role '" + r + "'");
        } else {
          b.roles.push_back(it->second);
        }
      }
    }
    if (const auto* m = t->get("match")) {
      ParseSelector(*m, b.match);
    } else {
      Error(b.line, "binding needs match = { uid/user/gid/group/unit/user_unit/exe = ... }");
    }
    if (const auto* w = t->get("when")) ParseWhen(*w, b.when);
    bindings_.push_back(std::move(b));
  }

  void ParseCredential(const toml::node& n) {
    const auto* t = n.as_table();
    if (t == nullptr) {
      Error(LineOf(n), "each [[credentials]] entry must be a table");
      return;
    }
    CredentialGrant c;
    c.line = LineOf(n);
    CheckKeys(*t, {"unit", "id", "path"}, "credential");
    auto text = [&](const char* key, std::string& out, bool (*valid)(std::string_view), const char* what) {
      const toml::node* v = t->get(key);
      const auto* vs = v != nullptr ? v->as_string() : nullptr;
      if (vs == nullptr || !valid(vs->get())) {
        Error(v != nullptr ? LineOf(*v) : c.line, std::string("credential needs ") + key + " = " + what);
        return;
      }
      out = vs->get();
    };
    text("unit", c.unit, IsValidUnitName, "\"<name>.service\" (or .socket, .mount, .swap)");
    text("id", c.id, IsValidCredentialId, "\"...\" (1-255 printable bytes, no '/')");
    text("path", c.path, IsSecretPath,
         "a secret path (segments of [A-Za-z0-9._-] joined by '/', no '.' or '..')");
    if (!c.unit.empty() && !c.id.empty() && !credential_keys_.insert(c.unit + "/" + c.id).second) {
      Error(c.line, "duplicate credential '" + c.id + "' for unit '" + c.unit + "'");
    }
    credentials_.push_back(std::move(c));
  }

  void ParseDocument(const toml::table& doc) {
    CheckKeys(doc, {"version", "roles", "bindings", "credentials"}, "the policy");
    const toml::node* version = doc.get("version");
    const auto* vi = version != nullptr ? version->as_integer() : nullptr;
    if (vi == nullptr || vi->get() != 1) {
      Error(version != nullptr ? LineOf(*version) : 1, "the policy needs version = 1");
    }
    if (const auto* roles = doc.get("roles")) {
      if (const auto* t = roles->as_table()) {
        ParseRoles(*t);
      } else {
        Error(LineOf(*roles), "roles must be a table of [roles.<name>]");
      }
    }
    if (const auto* bindings = doc.get("bindings")) {
      if (const auto* arr = bindings->as_array()) {
        for (const toml::node& b : *arr) ParseBinding(b);
      } else {
        Error(LineOf(*bindings), "bindings must be an array of [[bindings]] tables");
      }
    }
    if (const auto* creds = doc.get("credentials")) {
      if (const auto* arr = creds->as_array()) {
        for (const toml::node& c : *arr) ParseCredential(c);
      } else {
        Error(LineOf(*creds), "credentials must be an array of [[credentials]] tables");
      }
    }
  }

  std::vector<Role> roles_;
  std::vector<Binding> bindings_;
  std::vector<CredentialGrant> credentials_;

 private:
  std::string source_;
  std::vector<std::string> errors_;
  std::map<std::string, std::size_t, std::less<>> role_index_;
  std::set<std::string, std::less<>> binding_names_;
  std::set<std::string, std::less<>> credential_keys_;
};

}  // namespace

Result<std::shared_ptr<const Policy>> ParsePolicy(std::string_view toml_text, std::string_view source_name) {
  Parser parser(source_name);
  toml::table doc;
  try {
    doc = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& err) {
    parser.Error(static_cast<int>(err.source().begin.line), std::string(err.description()));
    return parser.ToStatus();
  }
  parser.ParseDocument(doc);
  if (parser.failed()) return parser.ToStatus();
  return std::shared_ptr<const Policy>(
      std::make_shared<Policy>(std::string(source_name), std::move(parser.roles_),
                               std::move(parser.bindings_), std::move(parser.credentials_)));
}

}  // namespace sk::policy
