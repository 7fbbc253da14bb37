#include "tools/cli/rotation_config.h"

#include "agent/config/toml.h"

#include <charconv>
#include <fstream>
#include <map>
#include <set>

#include "agent/secrets/path.h"
#include "agent/secrets/service.h"
#include "tools/cli/lease_database.h"

namespace sk::cli {
namespace {

using nlohmann::json;

// The longest duration, as the agent's rotation schedules have it.
constexpr std::chrono::seconds kCentury{100LL * 365 * 86400};

Status Bad(std::string_view file, const toml::source_region& where, const std::string& why) {
  std::string at(file);
  if (where.begin.line > 0) at += ":" + std::to_string(where.begin.line);
  return InvalidArgument(at + ": " + why, "bad_config");
}

// Reads one table's keys, refusing keys nobody reads (as agent/config/config.cc does).
class Keys {
 public:
  Keys(const toml::table& t, std::string name, std::string_view file)
      : t_(t), name_(std::move(name)), file_(file) {}

  // The key's node, or nullptr; the key counts as read.
  const toml::node* Take(const char* key) {
    read_.insert(key);
    return t_.get(key);
  }
  // "rotation[1].target.port must be ..." at the key's line (the table's when it is absent).
  Status Error(const char* key, const std::string& why) const {
    const toml::node* n = t_.get(key);
    return Bad(file_, n != nullptr ? n->source() : t_.source(), name_ + "." + key + " " + why);
  }

  Status Str(const char* key, std::string& out, bool required) {
    const toml::node* n = Take(key);
    if (n == nullptr) return required ? Error(key, "is required") : OkStatus();
    if (!n->is_string()) return Error(key, "must be a string");
    out = **n->as_string();
    if (out.empty() || out.find('\0') != std::string::npos) {
      return Error(key, "must be a non-empty string without NUL bytes");
    }
    return OkStatus();
  }
  Status Int(const char* key, std::int64_t& out, std::int64_t lo, std::int64_t hi) {
    const toml::node* n = Take(key);
    if (n == nullptr) return OkStatus();
    if (!n->is_integer() || **n->as_integer() < lo || **n->as_integer() > hi) {
      return Error(key, "must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    }
    out = **n->as_integer();
    return OkStatus();
  }
  Status StrList(const char* key, std::vector<std::string>& out) {
    const toml::node* n = Take(key);
    if (n == nullptr) return OkStatus();
    const toml::array* a = n->as_array();
    if (a == nullptr) return Error(key, "must be a list of strings");
    for (const toml::node& e : *a) {
      if (!e.is_string() || e.as_string()->get().find('\0') != std::string::npos) {
        return Bad(file_, e.source(), name_ + "." + key + " must be a list of strings without NUL bytes");
      }
      out.push_back(**e.as_string());
    }
    return OkStatus();
  }
  Status Duration(const char* key, std::chrono::seconds& out, bool required, std::chrono::seconds lo,
                  std::chrono::seconds hi, const char* range) {
    std::string text;
    SK_RETURN_IF_ERROR(Str(key, text, required));
    if (text.empty()) return OkStatus();  // absent and optional
    Result<std::chrono::seconds> d = ParseDuration(text);
    if (!d.ok()) return Error(key, std::string(d.status().message()));
    if (*d < lo || *d > hi) return Error(key, std::string("must be ") + range);
    out = *d;
    return OkStatus();
  }
  // A sub-table, or an error when the key holds something else.
  Result<const toml::table*> Table(const char* key, bool required) {
    const toml::node* n = Take(key);
    if (n == nullptr && required) return Error(key, "is required");
    if (n == nullptr) return static_cast<const toml::table*>(nullptr);
    if (!n->is_table()) return Error(key, "must be a table ({ type = ... })");
    return n->as_table();
  }
  // Call last: any key not read is an error.
  Status Finish() const {
    for (const auto& [k, v] : t_) {
      if (read_.count(std::string(k.str())) == 0) {
        return Bad(file_, v.source(), "unknown key " + name_ + "." + std::string(k.str()));
      }
    }
    return OkStatus();
  }
  const std::string& name() const { return name_; }

 private:
  const toml::table& t_;
  std::string name_;
  std::string_view file_;
  std::set<std::string> read_;
};

// The generator, checked for keys and types only: the agent owns its limits.
Result<json> ParseGenerator(const toml::table& t, const std::string& name, std::string_view file) {
  Keys g(t, name, file);
  std::string type;
  SK_RETURN_IF_ERROR(g.Str("type", type, true));
  json out = {{"type", type}};
  std::int64_t length = 0;
  SK_RETURN_IF_ERROR(g.Int("length", length, 1, std::int64_t{1} << 31));
  if (length != 0) out["length"] = length;
  if (type == "password") {
    std::vector<std::string> classes;
    SK_RETURN_IF_ERROR(g.StrList("classes", classes));
    std::set<std::string> seen;
    for (const std::string& c : classes) {
      if (c != "lower" && c != "upper" && c != "digit" && c != "symbol") {
        return g.Error("classes", "holds \"lower\", \"upper\", \"digit\" and \"symbol\", not \"" + c + "\"");
      }
      if (!seen.insert(c).second) return g.Error("classes", "names \"" + c + "\" twice");
    }
    if (t.contains("classes")) {
      if (classes.empty()) return g.Error("classes", "must name at least one class");
      out["classes"] = classes;
    }
    if (const toml::node* n = g.Take("exclude"); n != nullptr) {
      if (!n->is_string()) return g.Error("exclude", "must be a string");
      out["exclude"] = **n->as_string();
    }
  } else if (type == "bytes") {
    std::string encoding;
    SK_RETURN_IF_ERROR(g.Str("encoding", encoding, false));
    if (!encoding.empty() && encoding != "hex" && encoding != "base64") {
      return g.Error("encoding", "is \"hex\" or \"base64\"");
    }
    if (!encoding.empty()) out["encoding"] = encoding;
  } else {
    return g.Error("type", "is \"password\" or \"bytes\"");
  }
  SK_RETURN_IF_ERROR(g.Finish());
  return out;
}

Status CheckPath(Keys& keys, const char* key, const std::string& path) {
  Status st = secrets::ValidatePath(path);
  return st.ok() ? st : keys.Error(key, "is not a sealkeep path: " + std::string(st.message()));
}

// `entry` is the entry's name ("rotation[1]").
Result<TargetSpec> ParseTarget(const toml::table& t, const std::string& entry, std::string_view file,
                               std::string& admin_secret) {
  Keys k(t, entry + ".target", file);
  std::string type;
  SK_RETURN_IF_ERROR(k.Str("type", type, true));
  TargetSpec spec;
  if (type == "postgresql") {
    PostgresqlTargetSpec pg;
    std::int64_t port = pg.port;
    SK_RETURN_IF_ERROR(k.Str("host", pg.host, true));
    SK_RETURN_IF_ERROR(k.Int("port", port, 1, 65535));
    SK_RETURN_IF_ERROR(k.Str("dbname", pg.dbname, false));
    SK_RETURN_IF_ERROR(k.Str("role", pg.role, true));
    SK_RETURN_IF_ERROR(k.Str("admin_user", pg.admin_user, true));
    SK_RETURN_IF_ERROR(k.Str("admin_secret", admin_secret, true));
    SK_RETURN_IF_ERROR(CheckPath(k, "admin_secret", admin_secret));
    pg.port = static_cast<std::uint16_t>(port);
    spec = std::move(pg);
  } else if (type == "exec") {
    ExecTargetSpec ex;
    SK_RETURN_IF_ERROR(k.Str("program", ex.program, true));
    SK_RETURN_IF_ERROR(k.StrList("args", ex.args));
    SK_RETURN_IF_ERROR(k.Duration("timeout", ex.timeout_s, false, std::chrono::seconds(1),
                                  std::chrono::hours(1), "from 1s to 1h"));
    spec = std::move(ex);
  } else {
    return k.Error("type", "is \"postgresql\" or \"exec\"");
  }
  SK_RETURN_IF_ERROR(k.Finish());
  if (Status st = ValidateTargetSpec(spec); !st.ok()) {
    // Its message names the field ("target.role is ..."): quoted after the entry's name.
    return Bad(file, t.source(), entry + "." + std::string(st.message()));
  }
  return spec;
}

Result<RotationEntry> ParseEntry(const toml::table& t, const std::string& name, std::string_view file) {
  Keys e(t, name, file);
  RotationEntry entry;
  SK_RETURN_IF_ERROR(e.Str("path", entry.path, true));
  SK_RETURN_IF_ERROR(CheckPath(e, "path", entry.path));
  SK_RETURN_IF_ERROR(
      e.Duration("every", entry.every, true, std::chrono::minutes(1), kCentury, "at least 1m"));
  SK_ASSIGN_OR_RETURN(const toml::table* generator, e.Table("generator", false));
  if (generator != nullptr) {
    SK_ASSIGN_OR_RETURN(entry.generator, ParseGenerator(*generator, name + ".generator", file));
  }
  SK_ASSIGN_OR_RETURN(const toml::table* target, e.Table("target", true));
  SK_ASSIGN_OR_RETURN(entry.target, ParseTarget(*target, name, file, entry.admin_secret));
  SK_RETURN_IF_ERROR(e.Finish());
  return entry;
}

Result<LeaseEntry> ParseLease(const toml::table& t, const std::string& name, std::string_view file) {
  Keys e(t, name, file);
  LeaseEntry entry;
  SK_RETURN_IF_ERROR(e.Str("name", entry.name, true));
  SK_RETURN_IF_ERROR(CheckPath(e, "name", entry.name));
  SK_RETURN_IF_ERROR(e.Duration("max_ttl", entry.max_ttl, false, std::chrono::seconds(1),
                                std::chrono::hours(365 * 24), "from 1s to 365d"));
  SK_ASSIGN_OR_RETURN(const toml::table* db, e.Table("database", true));
  {
    Keys k(*db, name + ".database", file);
    std::int64_t port = entry.db.port;
    SK_RETURN_IF_ERROR(k.Str("host", entry.db.host, true));
    SK_RETURN_IF_ERROR(k.Int("port", port, 1, 65535));
    SK_RETURN_IF_ERROR(k.Str("dbname", entry.db.dbname, false));
    SK_RETURN_IF_ERROR(k.Str("admin_user", entry.db.admin_user, true));
    SK_RETURN_IF_ERROR(k.Str("admin_secret", entry.admin_secret, true));
    SK_RETURN_IF_ERROR(CheckPath(k, "admin_secret", entry.admin_secret));
    SK_RETURN_IF_ERROR(k.Finish());
    entry.db.port = static_cast<std::uint16_t>(port);
  }
  SK_RETURN_IF_ERROR(e.StrList("create", entry.create));
  SK_RETURN_IF_ERROR(e.StrList("revoke", entry.revoke));
  if (entry.create.empty()) return e.Error("create", "is required: the statements that make the role");
  std::string all;
  for (const std::string& sql : entry.create) all += sql + "\n";
  for (const char* needed : {"{{role}}", "{{password}}", "{{valid_until}}"}) {
    if (all.find(needed) == std::string::npos) {
      return e.Error("create",
                     std::string("must use ") + needed +
                         " (the role, its password and VALID UNTIL, so the database ends the lease too)");
    }
  }
  for (const auto* list : {&entry.create, &entry.revoke}) {
    for (const std::string& sql : *list) {
      if (std::string bad = UnknownPlaceholder(sql); !bad.empty()) {
        return e.Error(list == &entry.create ? "create" : "revoke",
                       "holds " + bad + ": the placeholders are {{role}}, {{password}} and {{valid_until}}");
      }
      if (list == &entry.revoke && sql.find("{{password}}") != std::string::npos)
        return e.Error("revoke", "cannot use {{password}}");
    }
  }
  SK_RETURN_IF_ERROR(e.Finish());
  return entry;
}

struct ParsedFile {
  std::vector<RotationEntry> rotations;
  std::vector<LeaseEntry> leases;
};

Result<ParsedFile> ParseFile(std::string_view text, std::string_view name) {
  if (text.size() > kMaxRotationConfig) {
    return InvalidArgument(std::string(name) + " is larger than 1 MiB", "bad_config");
  }
  toml::table root;
  try {
    root = toml::parse(text, std::string(name));
  } catch (const toml::parse_error& e) {
    return Bad(name, e.source(), std::string(e.description()));
  }
  for (const auto& [k, v] : root) {
    if (k.str() != "rotation" && k.str() != "lease")
      return Bad(name, v.source(), "unknown key " + std::string(k.str()));
  }
  ParsedFile out;
  if (const toml::node* list = root.get("rotation"); list != nullptr) {
    if (!list->is_array_of_tables()) return Bad(name, list->source(), "rotation must be [[rotation]] tables");
    std::map<std::string, std::size_t> lines;  // path -> where it was first given
    for (const toml::node& n : *list->as_array()) {
      std::string entry_name = "rotation[" + std::to_string(out.rotations.size() + 1) + "]";
      SK_ASSIGN_OR_RETURN(RotationEntry e, ParseEntry(*n.as_table(), entry_name, name));
      const toml::node* path = n.as_table()->get("path");
      auto [it, fresh] = lines.emplace(e.path, path->source().begin.line);
      if (!fresh) {
        return Bad(
            name, path->source(),
            entry_name + ".path " + e.path + " is already rotated at line " + std::to_string(it->second));
      }
      out.rotations.push_back(std::move(e));
    }
  }
  if (const toml::node* list = root.get("lease"); list != nullptr) {
    if (!list->is_array_of_tables()) return Bad(name, list->source(), "lease must be [[lease]] tables");
    std::map<std::string, std::size_t> lines;
    for (const toml::node& n : *list->as_array()) {
      std::string entry_name = "lease[" + std::to_string(out.leases.size() + 1) + "]";
      SK_ASSIGN_OR_RETURN(LeaseEntry e, ParseLease(*n.as_table(), entry_name, name));
      const toml::node* lease_name = n.as_table()->get("name");
      auto [it, fresh] = lines.emplace(e.name, lease_name->source().begin.line);
      if (!fresh) {
        return Bad(
            name, lease_name->source(),
            entry_name + ".name " + e.name + " is already a lease at line " + std::to_string(it->second));
      }
      out.leases.push_back(std::move(e));
    }
  }
  return out;
}

Result<std::string> ReadConfigFile(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status(Code::kNotFound, "config_missing", "cannot read the rotation config " + file);
  std::string text(kMaxRotationConfig + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (in.bad())
    return Status(Code::kUnavailable, "config_unreadable", "cannot read the rotation config " + file);
  return text;
}

}  // namespace

Result<std::chrono::seconds> ParseDuration(std::string_view text) {
  // The agent's own rule (the schedule a rotated path's label carries), so the two agree.
  std::optional<std::uint64_t> s = secrets::ParseRotationEvery(text);
  if (!s) {
    return InvalidArgument(
        "\"" + std::string(text.substr(0, 64)) +
            "\" is not a duration: a whole positive number then s, m, h or d (\"90s\", \"15m\", "
            "\"12h\", \"30d\"), at most 100 years",
        "bad_duration");
  }
  return std::chrono::seconds(static_cast<std::int64_t>(*s));
}

Result<std::vector<RotationEntry>> ParseRotationConfig(std::string_view text, std::string_view name) {
  SK_ASSIGN_OR_RETURN(ParsedFile f, ParseFile(text, name));
  return std::move(f.rotations);
}

Result<std::vector<LeaseEntry>> ParseLeaseConfig(std::string_view text, std::string_view name) {
  SK_ASSIGN_OR_RETURN(ParsedFile f, ParseFile(text, name));
  return std::move(f.leases);
}

Result<std::vector<RotationEntry>> LoadRotationConfig(const std::string& file) {
  SK_ASSIGN_OR_RETURN(std::string text, ReadConfigFile(file));
  return ParseRotationConfig(text, file);
}

Result<std::vector<LeaseEntry>> LoadLeaseConfig(const std::string& file) {
  SK_ASSIGN_OR_RETURN(std::string text, ReadConfigFile(file));
  return ParseLeaseConfig(text, file);
}

}  // namespace sk::cli
