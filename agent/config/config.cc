#include "agent/config/config.h"

#include <fstream>
#include <set>
#include <sstream>

#include "agent/config/toml.h"
#include "agent/secrets/path.h"

namespace sk::config {
namespace {

Status Bad(const std::string& source, const toml::source_region& where, const std::string& why) {
  std::string at = source;
  if (where.begin.line > 0) at += ":" + std::to_string(where.begin.line);
  return InvalidArgument(at + ": " + why, "bad_config");
}

// Reads one table's keys into fields, refusing keys nobody reads.
class TableReader {
 public:
  TableReader(const toml::table& t, std::string name, const std::string& source)
      : t_(t), name_(std::move(name)), source_(source) {}

  Status Str(const char* key, std::string& out) {
    const toml::node* n = Take(key);
    if (n == nullptr) return OkStatus();
    if (!n->is_string()) return Bad(source_, n->source(), name_ + "." + key + " must be a string");
    out = **n->as_string();
    return OkStatus();
  }
  Status Bool(const char* key, bool& out) {
    const toml::node* n = Take(key);
    if (n == nullptr) return OkStatus();
    if (!n->is_boolean()) return Bad(source_, n->source(), name_ + "." + key + " must be true or false");
    out = **n->as_boolean();
    return OkStatus();
  }
  template <typename T>
  Status Int(const char* key, T& out, std::int64_t lo, std::int64_t hi) {
    const toml::node* n = Take(key);
    if (n == nullptr) return OkStatus();
    if (!n->is_integer()) return Bad(source_, n->source(), name_ + "." + key + " must be an integer");
    std::int64_t v = **n->as_integer();
    if (v < lo || v > hi) {
      return Bad(source_, n->source(),
                 name_ + "." + key + " must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    }
    out = static_cast<T>(v);
    return OkStatus();
  }
  Status IntList(const char* key, std::vector<int>& out, int lo, int hi) {
    const toml::node* n = Take(key);
    if (n == nullptr) return OkStatus();
    const toml::array* a = n->as_array();
    if (a == nullptr) return Bad(source_, n->source(), name_ + "." + key + " must be a list of integers");
    out.clear();
    for (const toml::node& e : *a) {
      if (!e.is_integer() || **e.as_integer() < lo || **e.as_integer() > hi) {
        return Bad(
            source_, e.source(),
            name_ + "." + key + " holds integers from " + std::to_string(lo) + " to " + std::to_string(hi));
      }
      out.push_back(static_cast<int>(**e.as_integer()));
    }
    return OkStatus();
  }
  // Call last: any key not read is an error.
  Status Finish() {
    for (const auto& [k, v] : t_) {
      if (read_.count(std::string(k.str())) == 0) {
        return Bad(source_, v.source(), "unknown key " + name_ + "." + std::string(k.str()));
      }
    }
    return OkStatus();
  }

 private:
  const toml::node* Take(const char* key) {
    read_.insert(key);
    return t_.get(key);
  }
  const toml::table& t_;
  std::string name_;
  const std::string& source_;
  std::set<std::string> read_;
};

std::string Under(const std::string& dir, const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  return dir + "/" + path;
}

// [name] of the file, or an empty table when it has none.
Result<const toml::table*> Table(const toml::table& root, const char* name, const std::string& source) {
  static const toml::table kEmpty;
  const toml::node* n = root.get(name);
  if (n == nullptr) return &kEmpty;
  if (!n->is_table()) return Bad(source, n->source(), std::string("[") + name + "] must be a table");
  return n->as_table();
}

// agent.kv_mount: one path segment that no native route begins with (those would win).
Status CheckKvMount(const AgentConfig& c) {
  const std::string& m = c.kv_mount;
  if (m.empty()) return OkStatus();
  const bool segment =
      m.size() <= 64 && m != "." && m != ".." &&
      m.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
          std::string::npos;
  if (!segment) {
    return InvalidArgument(c.source + ": agent.kv_mount is one path segment of [A-Za-z0-9._-] (\"\" = none)",
                           "bad_config");
  }
  for (const char* native : {"sys", "secrets", "snapshots", "txn", "health", "watch", "deploys", "leases"}) {
    if (m == native) {
      return InvalidArgument(c.source + ": agent.kv_mount \"" + m + "\" is taken by sealkeep's own /v1/" + m,
                             "bad_config");
    }
  }
  return OkStatus();
}

// [agent]: the state folder, the sockets, the threads.
Status ApplyAgent(const toml::table& root, AgentConfig& c) {
  SK_ASSIGN_OR_RETURN(const toml::table* agent, Table(root, "agent", c.source));
  TableReader a(*agent, "agent", c.source);
  std::string mode = "0660";
  SK_RETURN_IF_ERROR(a.Str("state_dir", c.state_dir));
  SK_RETURN_IF_ERROR(a.Str("socket", c.socket));
  SK_RETURN_IF_ERROR(a.Str("socket_group", c.socket_group));
  SK_RETURN_IF_ERROR(a.Str("socket_mode", mode));
  SK_RETURN_IF_ERROR(a.Int("io_threads", c.io_threads, 1, 64));
  SK_RETURN_IF_ERROR(a.Int("worker_threads", c.worker_threads, 1, 256));
  SK_RETURN_IF_ERROR(a.Int("io_spin_us", c.io_spin_us, 0, 1000));
  SK_RETURN_IF_ERROR(a.Str("creds_socket", c.creds_socket));
  SK_RETURN_IF_ERROR(a.Bool("metrics_require_auth", c.metrics_require_auth));
  SK_RETURN_IF_ERROR(a.Str("kv_mount", c.kv_mount));
  SK_RETURN_IF_ERROR(a.Finish());
  SK_RETURN_IF_ERROR(CheckKvMount(c));
  if (mode.size() != 4 || mode[0] != '0' || mode.find_first_not_of("01234567") != std::string::npos) {
    return InvalidArgument(c.source + ": agent.socket_mode must be octal like \"0660\"", "bad_config");
  }
  c.socket_mode = static_cast<unsigned>(std::stoul(mode, nullptr, 8));
  if ((c.socket_mode & 0007) != 0) {
    return InvalidArgument(c.source + ": agent.socket_mode must not grant anything to others", "bad_config");
  }
  if (c.state_dir.empty() || c.state_dir[0] != '/') {
    return InvalidArgument(c.source + ": agent.state_dir must be an absolute path", "bad_config");
  }
  c.creds_socket = Under(c.state_dir, c.creds_socket);
  if (!c.creds_socket.empty() && c.creds_socket == Under(c.state_dir, c.socket)) {
    return InvalidArgument(c.source + ": agent.creds_socket must differ from agent.socket", "bad_config");
  }

  return OkStatus();
}

// [store]: the file, the anchor mode, retention and value limits.
Status ApplyStore(const toml::table& root, AgentConfig& c) {
  SK_ASSIGN_OR_RETURN(const toml::table* store, Table(root, "store", c.source));
  TableReader s(*store, "store", c.source);
  std::string anchor = "epoch";
  std::uint64_t epoch_seconds = 60;
  SK_RETURN_IF_ERROR(s.Str("path", c.store.store_path));
  SK_RETURN_IF_ERROR(s.Str("anchor_mode", anchor));
  SK_RETURN_IF_ERROR(s.Int("epoch_seconds", epoch_seconds, 1, 86400));
  SK_RETURN_IF_ERROR(s.Int("max_versions", c.store.default_max_versions, 0, 1'000'000));
  SK_RETURN_IF_ERROR(s.Int("max_value_bytes", c.store.max_value_bytes, 1, 16 * 1024 * 1024));
  SK_RETURN_IF_ERROR(s.Int("verify_threads", c.store.verify_threads, 1, 64));
  SK_RETURN_IF_ERROR(s.Finish());
  if (anchor != "epoch" && anchor != "strict") {
    return InvalidArgument(c.source + ": store.anchor_mode is \"epoch\" or \"strict\"", "bad_config");
  }
  c.store.anchor_mode = anchor == "strict" ? secrets::AnchorMode::kStrict : secrets::AnchorMode::kEpoch;
  c.store.epoch_interval = std::chrono::milliseconds(epoch_seconds * 1000);
  c.store.store_path = Under(c.state_dir, c.store.store_path.empty() ? "store.db" : c.store.store_path);

  return OkStatus();
}

// [backend], [pkcs11], [tpm]: which hardware holds the master key, and how to reach it.
Status ApplyBackend(const toml::table& root, AgentConfig& c) {
  SK_ASSIGN_OR_RETURN(const toml::table* backend, Table(root, "backend", c.source));
  TableReader b(*backend, "backend", c.source);
  SK_RETURN_IF_ERROR(b.Str("kind", c.backend.kind));
  SK_RETURN_IF_ERROR(b.Finish());
  if (c.backend.kind != "pkcs11" && c.backend.kind != "tpm") {
    return InvalidArgument(c.source + ": backend.kind is \"pkcs11\" or \"tpm\"", "bad_config");
  }

  SK_ASSIGN_OR_RETURN(const toml::table* pkcs11, Table(root, "pkcs11", c.source));
  TableReader p(*pkcs11, "pkcs11", c.source);
  SK_RETURN_IF_ERROR(p.Str("module", c.backend.pkcs11.module));
  SK_RETURN_IF_ERROR(p.Str("token", c.backend.pkcs11.token_label));
  SK_RETURN_IF_ERROR(p.Str("pin_file", c.backend.pkcs11.pin_file));
  SK_RETURN_IF_ERROR(p.Int("max_sessions", c.backend.pkcs11.max_sessions, 1, 256));
  SK_RETURN_IF_ERROR(p.Str("sync_dir", c.backend.pkcs11.sync_dir));
  SK_RETURN_IF_ERROR(p.Finish());
  c.backend.pkcs11.pin_file = Under(c.state_dir, c.backend.pkcs11.pin_file);
  c.backend.pkcs11.sync_dir = Under(c.state_dir, c.backend.pkcs11.sync_dir);

  SK_ASSIGN_OR_RETURN(const toml::table* tpm, Table(root, "tpm", c.source));
  TableReader t(*tpm, "tpm", c.source);
  SK_RETURN_IF_ERROR(t.Str("tcti", c.backend.tpm.tcti));
  SK_RETURN_IF_ERROR(t.Str("state_dir", c.backend.tpm.state_dir));
  SK_RETURN_IF_ERROR(t.Str("auth_file", c.backend.tpm.auth_file));
  SK_RETURN_IF_ERROR(t.IntList("pcrs", c.backend.tpm.pcrs, 0, 23));
  SK_RETURN_IF_ERROR(t.Int("nv_counter_index", c.backend.tpm.nv_counter_index, 0x01000000, 0x01FFFFFF));
  SK_RETURN_IF_ERROR(t.Int("nv_anchor_index", c.backend.tpm.nv_anchor_index, 0x01000000, 0x01FFFFFF));
  SK_RETURN_IF_ERROR(t.Int("primary_handle", c.backend.tpm.primary_handle, 0, 0x81FFFFFF));
  SK_RETURN_IF_ERROR(t.Finish());
  c.backend.tpm.state_dir =
      Under(c.state_dir, c.backend.tpm.state_dir.empty() ? "tpm" : c.backend.tpm.state_dir);
  c.backend.tpm.auth_file = Under(c.state_dir, c.backend.tpm.auth_file);

  return OkStatus();
}

// [limits] and [cache]: what one client may ask of the server, and the data-key cache.
Status ApplyLimits(const toml::table& root, AgentConfig& c) {
  SK_ASSIGN_OR_RETURN(const toml::table* limits, Table(root, "limits", c.source));
  TableReader l(*limits, "limits", c.source);
  SK_RETURN_IF_ERROR(l.Int("max_header_bytes", c.limits.max_header_bytes, 1024, 1024 * 1024));
  SK_RETURN_IF_ERROR(l.Int("max_body_bytes", c.limits.max_body_bytes, 1024, 64 * 1024 * 1024));
  SK_RETURN_IF_ERROR(l.Int("max_connections", c.limits.max_connections, 1, 1'000'000));
  SK_RETURN_IF_ERROR(l.Int("max_connections_per_uid", c.limits.max_connections_per_uid, 1, 1'000'000));
  SK_RETURN_IF_ERROR(l.Int("idle_timeout_ms", c.limits.idle_timeout_ms, 10, 3'600'000));
  SK_RETURN_IF_ERROR(l.Int("request_timeout_ms", c.limits.request_timeout_ms, 10, 3'600'000));
  SK_RETURN_IF_ERROR(l.Finish());

  SK_ASSIGN_OR_RETURN(const toml::table* cache, Table(root, "cache", c.source));
  TableReader k(*cache, "cache", c.source);
  std::uint64_t ttl = 300;
  SK_RETURN_IF_ERROR(k.Int("dek_entries", c.store.dek_cache_entries, 0, 10'000'000));
  SK_RETURN_IF_ERROR(k.Int("dek_ttl_seconds", ttl, 1, 86400));
  SK_RETURN_IF_ERROR(k.Finish());
  c.store.dek_cache_ttl = std::chrono::milliseconds(ttl * 1000);

  return OkStatus();
}

// [policy] and [audit]: the policy file and the audit log, on unless set to "" explicitly.
Status ApplyFiles(const toml::table& root, AgentConfig& c) {
  SK_ASSIGN_OR_RETURN(const toml::table* policy, Table(root, "policy", c.source));
  TableReader po(*policy, "policy", c.source);
  // The safe defaults (docs/config.md): a policy file and an audit log, each turned off
  // only by an explicit "".
  c.policy_file = "policy.toml";
  SK_RETURN_IF_ERROR(po.Str("file", c.policy_file));
  SK_RETURN_IF_ERROR(po.Finish());
  c.policy_file = Under(c.state_dir, c.policy_file);

  SK_ASSIGN_OR_RETURN(const toml::table* audit, Table(root, "audit", c.source));
  TableReader au(*audit, "audit", c.source);
  c.audit_dir = "audit";
  SK_RETURN_IF_ERROR(au.Str("dir", c.audit_dir));
  SK_RETURN_IF_ERROR(au.Int("segment_bytes", c.audit_segment_bytes, 4096, std::int64_t{1} << 40));
  SK_RETURN_IF_ERROR(au.Finish());
  c.audit_dir = Under(c.state_dir, c.audit_dir);
  return OkStatus();
}

// [leases]: where the lease server listens, and how often expired leases are swept.
Status ApplyLeases(const toml::table& root, AgentConfig& c) {
  SK_ASSIGN_OR_RETURN(const toml::table* leases, Table(root, "leases", c.source));
  TableReader le(*leases, "leases", c.source);
  SK_RETURN_IF_ERROR(le.Str("socket", c.leases_socket));
  SK_RETURN_IF_ERROR(le.Int("sweep_seconds", c.lease_sweep_seconds, 1, 3600));
  SK_RETURN_IF_ERROR(le.Finish());
  if (!c.leases_socket.empty() && c.leases_socket.front() != '/') {
    return InvalidArgument(c.source + ": leases.socket is an absolute path (\"\" = no leases)", "bad_config");
  }
  return OkStatus();
}

// [fleet]: the fleet database, this host's id and the fleet's signing key (docs/fleet.md).
Status ApplyFleet(const toml::table& root, AgentConfig& c) {
  if (root.get("fleet") == nullptr) return OkStatus();
  SK_ASSIGN_OR_RETURN(const toml::table* fleet, Table(root, "fleet", c.source));
  TableReader f(*fleet, "fleet", c.source);
  FleetConfig& fc = c.fleet;
  fc.enabled = true;
  std::string signer;
  SK_RETURN_IF_ERROR(f.Str("db", fc.db));
  SK_RETURN_IF_ERROR(f.Str("password_file", fc.password_file));
  SK_RETURN_IF_ERROR(f.Str("host_id", fc.host_id));
  SK_RETURN_IF_ERROR(f.Str("signer_key", signer));
  SK_RETURN_IF_ERROR(f.Str("prefix", fc.prefix));
  SK_RETURN_IF_ERROR(f.Int("poll_seconds", fc.poll_seconds, 1, 3600));
  SK_RETURN_IF_ERROR(f.Int("lag_alert_seconds", fc.lag_alert_seconds, 10, 7 * 86400));
  SK_RETURN_IF_ERROR(f.Finish());
  auto bad = [&c](const std::string& why) {
    return InvalidArgument(c.source + ": fleet." + why, "bad_config");
  };
  if (fc.db.empty()) return bad("db is the fleet database's libpq URL (docs/fleet.md)");
  if (DbUrlHasPassword(fc.db)) {
    return bad("db must not hold a password: put it in fleet.password_file");
  }
  if (fc.host_id.empty() || fc.host_id.size() > 64 ||
      fc.host_id.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789._-") != std::string::npos) {
    return bad("host_id is 1-64 characters of [a-z0-9._-]");
  }
  std::optional<Bytes> key = HexDecode(signer);
  if (!key || key->size() != 65 || (*key)[0] != 0x04) {
    return bad(
        "signer_key is the fleet signing key's public half: 130 hex digits, as `sealkeep fleet init` "
        "prints it");
  }
  fc.signer_key = std::move(*key);
  if (Status st = secrets::ValidatePath(fc.prefix); !st.ok()) {
    return bad("prefix is a sealkeep path, like \"fleet\": " + std::string(st.message()));
  }
  fc.password_file = Under(c.state_dir, fc.password_file);
  c.store.fleet_prefix = fc.prefix;
  return OkStatus();
}

Status Apply(const toml::table& root, AgentConfig& c) {
  for (const auto& [k, v] : root) {
    static const std::set<std::string> known = {"agent", "store",  "backend", "pkcs11", "tpm",  "limits",
                                                "cache", "policy", "audit",   "leases", "fleet"};
    if (known.count(std::string(k.str())) == 0)
      return Bad(c.source, v.source(), "unknown table [" + std::string(k.str()) + "]");
  }
  SK_RETURN_IF_ERROR(ApplyAgent(root, c));  // first: the others resolve paths under state_dir
  SK_RETURN_IF_ERROR(ApplyStore(root, c));
  SK_RETURN_IF_ERROR(ApplyBackend(root, c));
  SK_RETURN_IF_ERROR(ApplyLimits(root, c));
  SK_RETURN_IF_ERROR(ApplyLeases(root, c));
  SK_RETURN_IF_ERROR(ApplyFleet(root, c));
  return ApplyFiles(root, c);
}

}  // namespace

bool DbUrlHasPassword(std::string_view url) {
  if (url.find("password") != std::string_view::npos) return true;
  const std::size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return false;
  const std::string_view rest = url.substr(scheme + 3);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
  const std::size_t at = authority.rfind('@');
  return at != std::string_view::npos && authority.substr(0, at).find(':') != std::string_view::npos;
}

Result<AgentConfig> ParseConfig(std::string_view text, const std::string& source) {
  AgentConfig c;
  c.source = source;
  try {
    toml::table root = toml::parse(text, source);
    SK_RETURN_IF_ERROR(Apply(root, c));
  } catch (const toml::parse_error& e) {
    return InvalidArgument(
        source + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()),
        "bad_config");
  }
  return c;
}

std::vector<std::string> StartupWarnings(const AgentConfig& c) {
  std::vector<std::string> out;
  if (c.audit_dir.empty()) {
    out.push_back("no audit log: " + (c.source.empty() ? std::string("the config") : c.source) +
                  " sets [audit] dir = \"\", so requests, denials and changes are not recorded "
                  "(docs/audit.md); remove the key to log under " +
                  c.state_dir + "/audit");
  }
  return out;
}

Result<AgentConfig> LoadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(Code::kNotFound, "config_missing", "cannot read the config file " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.size() > 1024 * 1024) return InvalidArgument(path + " is larger than 1 MiB", "bad_config");
  return ParseConfig(text, path);
}

}  // namespace sk::config
