#include "agent/fleet/fleet_db.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cstring>

namespace sk::fleet {
namespace {

Status Unavailable(const std::string& what, pg_conn* conn) {
  std::string why = conn != nullptr ? PQerrorMessage(conn) : "";
  while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
  return Status(Code::kUnavailable, "fleet_unavailable", what + (why.empty() ? "" : ": " + why));
}

// Statements, each with its parameters as $n (binary), results in binary.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS sk_fleet_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS sk_fleet_head (
  id integer PRIMARY KEY CHECK (id = 1), seq bigint NOT NULL, hash bytea NOT NULL);
CREATE TABLE IF NOT EXISTS sk_fleet_entries (
  seq bigint PRIMARY KEY CHECK (seq > 0), hash bytea NOT NULL, entry bytea NOT NULL,
  written_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS sk_fleet_wraps (
  host_id text NOT NULL, seq bigint NOT NULL REFERENCES sk_fleet_entries (seq),
  path text NOT NULL, version bigint NOT NULL, wrap bytea NOT NULL,
  PRIMARY KEY (host_id, seq, path));
CREATE TABLE IF NOT EXISTS sk_fleet_pending (
  host_id text PRIMARY KEY, key_kind smallint NOT NULL, public_key bytea NOT NULL,
  groups text NOT NULL, asked_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS sk_fleet_applied (
  host_id text PRIMARY KEY, seq bigint NOT NULL, refusal text NOT NULL,
  reported_at timestamptz NOT NULL DEFAULT now());
INSERT INTO sk_fleet_head VALUES (1, 0, '\x') ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS sk_fleet_snapshots (
  name text PRIMARY KEY, body bytea NOT NULL, signature bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO sk_fleet_meta VALUES ('schema_version', '2') ON CONFLICT (key) DO NOTHING;
)sql";

Bytes BigEndian(std::uint64_t v) {
  Bytes b(8);
  for (int i = 7; i >= 0; --i, v >>= 8) b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v);
  return b;
}

std::string JoinGroups(const std::vector<std::string>& groups) {
  std::string out;
  for (const std::string& g : groups) out += (out.empty() ? "" : ",") + g;
  return out;
}

std::vector<std::string> SplitGroups(const std::string& text) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t comma = text.find(',', at);
    if (comma == std::string::npos) comma = text.size();
    out.push_back(text.substr(at, comma - at));
    at = comma + 1;
  }
  return out;
}

}  // namespace

struct FleetDb::Rows {
  std::unique_ptr<PGresult, decltype(&PQclear)> res{nullptr, &PQclear};
  int size() const { return PQntuples(res.get()); }
  ByteView Raw(int row, int col) const {
    return {reinterpret_cast<const std::uint8_t*>(PQgetvalue(res.get(), row, col)),
            static_cast<std::size_t>(PQgetlength(res.get(), row, col))};
  }
  std::uint64_t Int(int row, int col) const {
    std::uint64_t v = 0;
    for (std::uint8_t b : Raw(row, col)) v = (v << 8) | b;
    return v;
  }
  std::string Text(int row, int col) const { return std::string(AsChars(Raw(row, col))); }
  Bytes Blob(int row, int col) const {
    ByteView b = Raw(row, col);
    return Bytes(b.begin(), b.end());
  }
};

Result<std::unique_ptr<FleetDb>> FleetDb::Connect(const std::string& url, const SecretBytes* password) {
  // libpq wants a C string: a NUL-terminated copy in locked memory, wiped when this returns
  // (libpq keeps its own copy for the connection's life, out of our hands).
  SecretBytes pw(password != nullptr ? password->size() + 1 : 1);
  if (password != nullptr)
    std::copy(password->Expose().begin(), password->Expose().end(), pw.Expose().begin());
  pw.Expose().back() = 0;
  // connect_timeout first: a URL that sets its own overrides it (libpq takes the later one).
  // Without it a host would wait on an unreachable server for as long as TCP does.
  const char* keys[] = {"connect_timeout", "dbname", password != nullptr ? "password" : nullptr, nullptr};
  const char* values[] = {"10", url.c_str(), reinterpret_cast<const char*>(pw.Expose().data()), nullptr};
  pg_conn* conn = PQconnectdbParams(keys, values, 1);
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
    Status st = Unavailable("cannot connect to the fleet database", conn);
    if (conn != nullptr) PQfinish(conn);
    return st;
  }
  return std::unique_ptr<FleetDb>(new FleetDb(conn));
}

FleetDb::~FleetDb() { PQfinish(conn_); }

Result<FleetDb::Rows> FleetDb::Run(const char* sql, const std::vector<ByteView>& params) {
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats(params.size(), 1);
  for (ByteView p : params) {
    values.push_back(reinterpret_cast<const char*>(p.data()));
    lengths.push_back(static_cast<int>(p.size()));
  }
  Rows rows;
  rows.res.reset(PQexecParams(conn_, sql, static_cast<int>(params.size()), nullptr, values.data(),
                              lengths.data(), formats.data(), 1));
  return Check(std::move(rows));
}

Result<FleetDb::Rows> FleetDb::Check(Rows rows) {
  const ExecStatusType st = rows.res ? PQresultStatus(rows.res.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    const char* state = rows.res ? PQresultErrorField(rows.res.get(), PG_DIAG_SQLSTATE) : nullptr;
    std::string why = rows.res ? PQresultErrorMessage(rows.res.get()) : PQerrorMessage(conn_);
    while (!why.empty() && why.back() == '\n') why.pop_back();
    if (state != nullptr && (std::strcmp(state, "23505") == 0 || std::strcmp(state, "40001") == 0)) {
      return Status(Code::kConflict, "fleet_conflict", "the fleet journal moved: " + why);
    }
    return Status(Code::kUnavailable, "fleet_unavailable", "fleet database: " + why);
  }
  return rows;
}

Status FleetDb::Exec(const char* sql) {
  Rows rows;
  rows.res.reset(PQexec(conn_, sql));  // several statements, no parameters, no rows wanted
  return Check(std::move(rows)).status();
}

Status FleetDb::Migrate() {
  SK_RETURN_IF_ERROR(Exec("BEGIN"));
  Status st = Exec(kSchema);
  if (st.ok()) {
    Result<Rows> version = Run("SELECT value FROM sk_fleet_meta WHERE key = 'schema_version'", {});
    if (!version.ok()) {
      (void)Exec("ROLLBACK");  // else the connection stays in an aborted transaction
      return version.status();
    }
    Rows& rows = *version;
    const std::string have = rows.size() == 1 ? rows.Text(0, 0) : "?";
    if (have == "1") {
      // Version 2 added sk_fleet_snapshots, which the schema above has just created.
      st = Exec("UPDATE sk_fleet_meta SET value = '2' WHERE key = 'schema_version'");
    } else if (have != std::to_string(kFleetSchemaVersion)) {
      st = FailedPrecondition("the fleet database has schema version " + have +
                                  ", this sealkeep knows 1 and " + std::to_string(kFleetSchemaVersion),
                              "fleet_schema_unknown");
    }
  }
  if (!st.ok()) {
    (void)Exec("ROLLBACK");
    return st;
  }
  return Exec("COMMIT");
}

Result<ChainHead> FleetDb::Head() {
  SK_ASSIGN_OR_RETURN(Rows rows, Run("SELECT seq, hash FROM sk_fleet_head WHERE id = 1", {}));
  if (rows.size() != 1) return Unavailable("the fleet database has no head (run migrate)", nullptr);
  ChainHead head;
  head.seq = rows.Int(0, 0);
  ByteView hash = rows.Raw(0, 1);
  if (head.seq > 0) {
    if (hash.size() != head.hash.size())
      return Corruption("the fleet head's hash is not 32 bytes", "malformed_fleet_entry");
    std::memcpy(head.hash.data(), hash.data(), hash.size());
  }
  return head;
}

Result<std::vector<Bytes>> FleetDb::EntriesAfter(std::uint64_t after, std::size_t limit) {
  const Bytes a = BigEndian(after);
  const Bytes l = BigEndian(limit);
  // An entry longer than the format allows comes back empty (and is refused as malformed):
  // whoever can write the table must not make a host allocate what they like.
  const Bytes cap = BigEndian(kMaxEntryBytes);
  SK_ASSIGN_OR_RETURN(Rows rows,
                      Run("SELECT CASE WHEN octet_length(entry) <= $3::bigint THEN entry ELSE ''::bytea END "
                          "FROM sk_fleet_entries WHERE seq > $1::bigint ORDER BY seq LIMIT $2::bigint",
                          {a, l, cap}));
  std::vector<Bytes> out;
  for (int i = 0; i < rows.size(); ++i) out.push_back(rows.Blob(i, 0));
  return out;
}

Result<Bytes> FleetDb::EntryAt(std::uint64_t seq) {
  if (seq == 0) return NotFound("there is no fleet entry 0", "not_found");
  SK_ASSIGN_OR_RETURN(std::vector<Bytes> one, EntriesAfter(seq - 1, 1));
  if (one.empty()) return NotFound("the fleet database has no entry " + std::to_string(seq), "not_found");
  return std::move(one.front());
}

Status FleetDb::PutSnapshot(const std::string& name, ByteView body, ByteView signature) {
  SK_ASSIGN_OR_RETURN(Rows rows,
                      Run("INSERT INTO sk_fleet_snapshots (name, body, signature) VALUES ($1::text, "
                          "$2::bytea, $3::bytea) ON CONFLICT (name) DO NOTHING RETURNING name",
                          {AsBytes(name), body, signature}));
  if (rows.size() != 1) {
    return Status(Code::kAlreadyExists, "snapshot_exists",
                  "the fleet has a snapshot named " + name + " already: snapshots are never replaced");
  }
  return OkStatus();
}

Result<std::optional<FleetDb::StoredSnapshot>> FleetDb::GetSnapshot(const std::string& name) {
  const Bytes cap = BigEndian(kMaxSnapshotBytes);
  SK_ASSIGN_OR_RETURN(Rows rows, Run("SELECT CASE WHEN octet_length(body) <= $2::bigint THEN body ELSE "
                                     "''::bytea END, signature FROM sk_fleet_snapshots WHERE name = $1::text",
                                     {AsBytes(name), cap}));
  if (rows.size() == 0) return std::optional<StoredSnapshot>();
  return std::optional<StoredSnapshot>(StoredSnapshot{rows.Blob(0, 0), rows.Blob(0, 1)});
}

Result<std::vector<WrapRow>> FleetDb::WrapsFor(std::uint64_t seq, const std::string& host_id) {
  const Bytes s = BigEndian(seq);
  // At most one wrap per op, each of a 32-byte key, paths of a valid length: rows beyond are
  // not read (a wrap that is missing then is refused as such).
  const Bytes ops = BigEndian(kMaxOps);
  const Bytes wrap_size = BigEndian(kRecoveryBlobOverhead + 32);
  SK_ASSIGN_OR_RETURN(Rows rows,
                      Run("SELECT path, version, wrap FROM sk_fleet_wraps WHERE host_id = $1::text AND "
                          "seq = $2::bigint AND octet_length(wrap) = $4::bigint AND "
                          "octet_length(path) <= 256 ORDER BY path LIMIT $3::bigint",
                          {AsBytes(host_id), s, ops, wrap_size}));
  std::vector<WrapRow> out;
  for (int i = 0; i < rows.size(); ++i)
    out.push_back(WrapRow{host_id, rows.Text(i, 0), rows.Int(i, 1), rows.Blob(i, 2)});
  return out;
}

Status FleetDb::AppendLocked(const std::function<Result<Append>(const ChainHead&)>& build) {
  SK_RETURN_IF_ERROR(Exec("BEGIN"));
  auto fail = [&](Status st) {
    (void)Exec("ROLLBACK");
    return st;
  };
  Result<Rows> locked = Run("SELECT seq FROM sk_fleet_head WHERE id = 1 FOR UPDATE", {});
  if (!locked.ok()) return fail(locked.status());
  Result<ChainHead> head = Head();
  if (!head.ok()) return fail(head.status());
  Result<Append> a = build(*head);
  if (!a.ok()) return fail(a.status());
  if (a->seq != head->seq + 1) return fail(Internal("an append must extend the head"));
  const Bytes seq = BigEndian(a->seq);
  const char* insert =
      "INSERT INTO sk_fleet_entries (seq, hash, entry) VALUES ($1::bigint, $2::bytea, $3::bytea)";
  if (Status st = Run(insert, {seq, a->hash, a->entry}).status(); !st.ok()) return fail(st);
  // The wraps in statements of up to 1,000 rows each: one round trip per thousand hosts.
  constexpr std::size_t kRowsPerStatement = 1000;
  for (std::size_t from = 0; from < a->wraps.size(); from += kRowsPerStatement) {
    const std::size_t to = std::min(a->wraps.size(), from + kRowsPerStatement);
    std::string sql = "INSERT INTO sk_fleet_wraps (host_id, seq, path, version, wrap) VALUES ";
    std::vector<Bytes> versions;
    versions.reserve(to - from);  // no reallocation: params points into it
    std::vector<ByteView> params = {seq};
    for (std::size_t i = from; i < to; ++i) {
      const WrapRow& w = a->wraps[i];
      versions.push_back(BigEndian(w.version));
      const std::size_t n = params.size();
      sql += std::string(i == from ? "" : ", ") + "($" + std::to_string(n + 1) + "::text, $1::bigint, $" +
             std::to_string(n + 2) + "::text, $" + std::to_string(n + 3) + "::bigint, $" +
             std::to_string(n + 4) + "::bytea)";
      params.push_back(AsBytes(w.host_id));
      params.push_back(AsBytes(w.path));
      params.push_back(versions.back());
      params.push_back(w.wrap);
    }
    if (Status st = Run(sql.c_str(), params).status(); !st.ok()) return fail(st);
  }
  const std::string seq_text = std::to_string(a->seq);
  if (Status st =
          Run("UPDATE sk_fleet_head SET seq = $1::bigint, hash = $2::bytea WHERE id = 1", {seq, a->hash})
              .status();
      !st.ok()) {
    return fail(st);
  }
  if (Status st = Run("SELECT pg_notify('sk_fleet', $1::text)", {AsBytes(seq_text)}).status(); !st.ok())
    return fail(st);
  return Exec("COMMIT");
}

Status FleetDb::PublishPending(const PendingHost& host) {
  const Bytes kind = {0, static_cast<std::uint8_t>(host.key_kind)};
  const std::string groups = JoinGroups(host.groups);
  return Run("INSERT INTO sk_fleet_pending (host_id, key_kind, public_key, groups) VALUES ($1::text, "
             "$2::smallint, "
             "$3::bytea, $4::text) ON CONFLICT (host_id) DO UPDATE SET key_kind = EXCLUDED.key_kind, "
             "public_key = "
             "EXCLUDED.public_key, groups = EXCLUDED.groups, asked_at = now()",
             {AsBytes(host.host_id), kind, host.public_key, AsBytes(groups)})
      .status();
}

Result<std::vector<PendingHost>> FleetDb::Pending() {
  SK_ASSIGN_OR_RETURN(
      Rows rows,
      Run("SELECT host_id, key_kind, public_key, groups FROM sk_fleet_pending ORDER BY host_id", {}));
  std::vector<PendingHost> out;
  for (int i = 0; i < rows.size(); ++i) {
    const std::uint64_t kind = rows.Int(i, 1);
    if (kind < 1 || kind > 3) continue;  // not a request this sealkeep could sign; shown nowhere
    out.push_back(PendingHost{rows.Text(i, 0), static_cast<KeyKind>(kind), rows.Blob(i, 2),
                              SplitGroups(rows.Text(i, 3))});
  }
  return out;
}

Status FleetDb::ReportApplied(const AppliedReport& report) {
  const Bytes seq = BigEndian(report.seq);
  return Run("INSERT INTO sk_fleet_applied (host_id, seq, refusal) VALUES ($1::text, $2::bigint, $3::text) "
             "ON CONFLICT "
             "(host_id) DO UPDATE SET seq = EXCLUDED.seq, refusal = EXCLUDED.refusal, reported_at = now()",
             {AsBytes(report.host_id), seq, AsBytes(report.refusal)})
      .status();
}

Result<std::vector<AppliedReport>> FleetDb::Applied() {
  SK_ASSIGN_OR_RETURN(Rows rows,
                      Run("SELECT host_id, seq, refusal FROM sk_fleet_applied ORDER BY host_id", {}));
  std::vector<AppliedReport> out;
  for (int i = 0; i < rows.size(); ++i)
    out.push_back(AppliedReport{rows.Text(i, 0), rows.Int(i, 1), rows.Text(i, 2)});
  return out;
}

Status FleetDb::Listen() { return Exec("LISTEN sk_fleet"); }

Result<bool> FleetDb::WaitForNotify(std::chrono::milliseconds timeout) {
  auto take = [&]() {
    bool any = false;
    while (PGnotify* n = PQnotifies(conn_)) {
      any = true;
      PQfreemem(n);
    }
    return any;
  };
  if (!PQconsumeInput(conn_)) return Unavailable("the fleet database went away", conn_);
  if (take()) return true;
  pollfd pfd{PQsocket(conn_), POLLIN, 0};
  int n = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  if (n <= 0) return false;
  if (!PQconsumeInput(conn_)) return Unavailable("the fleet database went away", conn_);
  return take();
}

}  // namespace sk::fleet
