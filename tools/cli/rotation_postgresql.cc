// The postgresql rotation target (rotation_target.h): libpq's entry points, loaded with
// dlopen so the CLI does not link it, and the target that sets a role's password with a
// client-side SCRAM verifier in ALTER ROLE and tests it by logging in as the role.
#include <dlfcn.h>
#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "crypto/locked_pool.h"
#include "tools/cli/lease_database.h"
#include "tools/cli/rotation_target_internal.h"

namespace sk::cli::internal {
namespace {

namespace tr = target_reason;

constexpr auto kConnectTimeout = std::chrono::seconds(10);

// libpq's entry points, resolved with dlsym. The library stays loaded for the life of the
// process: libpq and the TLS library it pulls in are not made to be unloaded.
struct Libpq {
  decltype(&::PQconnectStartParams) connect_start = nullptr;
  decltype(&::PQconnectPoll) connect_poll = nullptr;
  decltype(&::PQsetErrorVerbosity) set_verbosity = nullptr;
  decltype(&::PQstatus) status = nullptr;
  decltype(&::PQsocket) socket = nullptr;
  decltype(&::PQerrorMessage) error_message = nullptr;
  decltype(&::PQconnectionUsedPassword) used_password = nullptr;
  decltype(&::PQfinish) finish = nullptr;
  decltype(&::PQencryptPasswordConn) encrypt_password = nullptr;
  decltype(&::PQescapeIdentifier) escape_identifier = nullptr;
  decltype(&::PQescapeLiteral) escape_literal = nullptr;
  decltype(&::PQfreemem) freemem = nullptr;
  decltype(&::PQexec) exec = nullptr;
  decltype(&::PQresultStatus) result_status = nullptr;
  decltype(&::PQresultErrorMessage) result_error = nullptr;
  decltype(&::PQresultErrorField) result_field = nullptr;
  decltype(&::PQclear) clear = nullptr;
  decltype(&::PQntuples) ntuples = nullptr;
  decltype(&::PQgetvalue) get_value = nullptr;
};

template <typename F>
bool Resolve(void* lib, const char* name, F& fn) {
  void* sym = ::dlsym(lib, name);
  if (sym == nullptr) return false;
  fn = reinterpret_cast<F>(sym);
  return true;
}

Result<Libpq> LoadLibpq(const char* soname) {
  void* lib = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = ::dlerror();
    return Status(Code::kFailedPrecondition, std::string(tr::kLibpqMissing),
                  std::string("the postgresql target needs ") + soname +
                      " (install the package libpq5): " + (why != nullptr ? why : "dlopen failed"));
  }
  Libpq pq;
  const bool ok =
      Resolve(lib, "PQconnectStartParams", pq.connect_start) &&
      Resolve(lib, "PQconnectPoll", pq.connect_poll) &&
      Resolve(lib, "PQsetErrorVerbosity", pq.set_verbosity) && Resolve(lib, "PQstatus", pq.status) &&
      Resolve(lib, "PQsocket", pq.socket) && Resolve(lib, "PQerrorMessage", pq.error_message) &&
      Resolve(lib, "PQconnectionUsedPassword", pq.used_password) && Resolve(lib, "PQfinish", pq.finish) &&
      Resolve(lib, "PQencryptPasswordConn", pq.encrypt_password) &&
      Resolve(lib, "PQescapeIdentifier", pq.escape_identifier) &&
      Resolve(lib, "PQescapeLiteral", pq.escape_literal) && Resolve(lib, "PQfreemem", pq.freemem) &&
      Resolve(lib, "PQexec", pq.exec) && Resolve(lib, "PQresultStatus", pq.result_status) &&
      Resolve(lib, "PQresultErrorMessage", pq.result_error) &&
      Resolve(lib, "PQresultErrorField", pq.result_field) && Resolve(lib, "PQclear", pq.clear) &&
      Resolve(lib, "PQntuples", pq.ntuples) && Resolve(lib, "PQgetvalue", pq.get_value);
  if (!ok) {
    return Status(
        Code::kFailedPrecondition, std::string(tr::kLibpqMissing),
        std::string(soname) + " lacks functions sealkeep needs (libpq5 from PostgreSQL 10 or later)");
  }
  return pq;
}

// A NUL-terminated copy of `v` in locked memory, for libpq. Refuses a NUL inside (a C
// string would cut the value short) and an empty value (PostgreSQL clears the password).
Result<SecretBytes> CString(ByteView v, std::string_view what) {
  if (v.empty()) return InvalidArgument(std::string(what) + " is empty", std::string(tr::kBadValue));
  if (std::find(v.begin(), v.end(), std::uint8_t{0}) != v.end()) {
    return InvalidArgument(std::string(what) + " holds a NUL byte, which PostgreSQL cannot take",
                           std::string(tr::kBadValue));
  }
  SecretBytes out(v.size() + 1);
  std::copy(v.begin(), v.end(), out.Expose().begin());
  return out;
}

const char* Chars(const SecretBytes& s) { return reinterpret_cast<const char*>(s.Expose().data()); }

// libpq's message on one line, without its LOCATION lines (source file names).
std::string OneLine(const char* message) {
  std::string out;
  std::string_view rest = message != nullptr ? message : "";
  while (!rest.empty()) {
    std::size_t end = std::min(rest.find('\n'), rest.size());
    std::string_view line = rest.substr(0, end);
    rest.remove_prefix(std::min(end + 1, rest.size()));
    if (line.empty() || line.rfind("LOCATION:", 0) == 0) continue;
    out += (out.empty() ? "" : " ") + std::string(line);
  }
  return out;
}

// The SQLSTATE of a server error in a verbose libpq message ("FATAL:  28P01: password
// authentication failed..."), or "" when the message has none (libpq's own errors: no
// such socket, refused, timed out).
std::string SqlState(std::string_view msg) {
  for (std::size_t at = msg.find(":  "); at != std::string_view::npos; at = msg.find(":  ", at + 1)) {
    std::string_view s = msg.substr(at + 3);
    if (s.size() >= 7 && s.substr(5, 2) == ": " && std::all_of(s.begin(), s.begin() + 5, [](char c) {
          return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
        }))
      return std::string(s.substr(0, 5));
  }
  return "";
}

// A failed statement's SQLSTATE and primary message (`ok`: "" unless the server said
// something), never libpq's full text: it may quote the statement (LINE 1: ...), which can
// hold a verifier.
std::string ServerError(const Libpq& pq, PGresult* result, PGconn* c, bool ok) {
  const char* state = result != nullptr ? pq.result_field(result, PG_DIAG_SQLSTATE) : nullptr;
  const char* primary = result != nullptr ? pq.result_field(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  if (state != nullptr && primary != nullptr) return std::string(state) + ": " + primary;
  if (ok) return "";
  return OneLine(result != nullptr ? pq.result_error(result) : pq.error_message(c));
}

// One libpq connection, finished when it goes.
class PgConn {
 public:
  PgConn(const Libpq& pq, PGconn* conn) : pq_(&pq), conn_(conn) {}
  ~PgConn() {
    if (conn_ != nullptr) pq_->finish(conn_);
  }
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;
  PGconn* get() const { return conn_; }

 private:
  const Libpq* pq_;
  PGconn* conn_;
};

// Text libpq allocated that may be secret-adjacent (a verifier and its quoting): wiped,
// then PQfreemem'd.
class PqText {
 public:
  PqText(const Libpq& pq, char* text) : pq_(&pq), text_(text) {}
  ~PqText() {
    if (text_ == nullptr) return;
    SecureWipe(text_, std::strlen(text_));
    pq_->freemem(text_);
  }
  PqText(const PqText&) = delete;
  PqText& operator=(const PqText&) = delete;
  const char* get() const { return text_; }
  std::string_view view() const { return text_ != nullptr ? text_ : ""; }

 private:
  const Libpq* pq_;
  char* text_;
};

enum class LoginFailure { kNone, kPasswordRefused, kUnreachable, kOther };

// Logs in to spec's server as `user`; *failure says how it failed (its message in *error).
std::unique_ptr<PgConn> ConnectAs(const Libpq& pq_, const PostgresqlTargetSpec& spec_,
                                  const std::string& user, const SecretBytes& password, LoginFailure* failure,
                                  std::string* error) {
  const std::string port = std::to_string(spec_.port);
  const std::string timeout = std::to_string(kConnectTimeout.count());
  const char* keys[] = {"host", "port", "dbname", "user", "password", "connect_timeout", "application_name",
                        nullptr};
  const char* values[] = {spec_.host.c_str(), port.c_str(),    spec_.dbname.c_str(), user.c_str(),
                          Chars(password),    timeout.c_str(), "sealkeep-rotator",   nullptr};
  auto conn = std::make_unique<PgConn>(pq_, pq_.connect_start(keys, values, 0));
  *failure = LoginFailure::kUnreachable;
  if (conn->get() == nullptr) {
    *error = "libpq could not allocate a connection";
    return conn;
  }
  // Verbose before the handshake: a server error then carries its SQLSTATE, and 28P01 tells
  // a refused password from anything else in every server language.
  pq_.set_verbosity(conn->get(), PQERRORS_VERBOSE);
  // PQconnectPoll ignores connect_timeout: the deadline is kept here.
  const Clock::time_point deadline = Clock::now() + kConnectTimeout;
  PostgresPollingStatusType st =
      pq_.status(conn->get()) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
    pollfd p{pq_.socket(conn->get()), static_cast<short>(st == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0};
    const int ms = MillisLeft(deadline);
    if (p.fd < 0 || ms == 0) {
      *error = p.fd < 0 ? "libpq has no socket" : "no answer within 10 s";
      return conn;
    }
    const int n = ::poll(&p, 1, ms);
    if (n < 0 && errno != EINTR) {
      *error = std::string("poll: ") + std::strerror(errno);
      return conn;
    }
    if (n > 0) st = pq_.connect_poll(conn->get());
  }
  if (st == PGRES_POLLING_OK) {
    *failure = LoginFailure::kNone;
    return conn;
  }
  const char* message = pq_.error_message(conn->get());
  *error = OneLine(message);
  const std::string state = SqlState(message != nullptr ? message : "");
  if (state == "28P01") {
    *failure = LoginFailure::kPasswordRefused;
  } else if (!state.empty() && state.rfind("08", 0) != 0 && state.rfind("57P0", 0) != 0 &&
             state.rfind("53", 0) != 0) {
    *failure = LoginFailure::kOther;  // reached: no such database, role may not log in...
  }
  return conn;
}

// What a failed admin login means, as a Status (OK for kNone). `admin` names the login and
// the target, `where` the target alone.
Status AdminLoginStatus(LoginFailure failure, const std::string& admin, const std::string& where,
                        const std::string& error) {
  switch (failure) {
    case LoginFailure::kNone:
      return OkStatus();
    case LoginFailure::kPasswordRefused:
      return Status(Code::kUnauthenticated, std::string(tr::kAdminRefused),
                    "the server refused the password of " + admin + ": " + error);
    case LoginFailure::kUnreachable:
      return Unreachable("cannot reach " + where + ": " + error);
    case LoginFailure::kOther:
      break;
  }
  return StepFailed("cannot log in as " + admin + ": " + error);
}

class PostgresqlTarget final : public RotationTarget {
 public:
  PostgresqlTarget(Libpq pq, PostgresqlTargetSpec spec, SecretBytes admin_password)
      : pq_(pq), spec_(std::move(spec)), admin_password_(std::move(admin_password)) {}

  std::string Describe() const override {
    return "postgresql role " + spec_.role + " on " + spec_.host + ":" + std::to_string(spec_.port);
  }
  Status Set(ByteView new_value, ByteView) override { return SetPassword(new_value); }
  Status Revert(ByteView old_value, ByteView) override { return SetPassword(old_value); }
  Status Test(ByteView value) override;

 private:
  std::unique_ptr<PgConn> Connect(const std::string& user, const SecretBytes& password, LoginFailure* failure,
                                  std::string* error) const {
    return ConnectAs(pq_, spec_, user, password, failure, error);
  }
  Status SetPassword(ByteView value);

  Libpq pq_;
  PostgresqlTargetSpec spec_;
  SecretBytes admin_password_;  // NUL-terminated
};

Status PostgresqlTarget::Test(ByteView value) {
  SK_ASSIGN_OR_RETURN(SecretBytes password, CString(value, "the value"));
  LoginFailure failure = LoginFailure::kUnreachable;
  std::string error;
  auto conn = Connect(spec_.role, password, &failure, &error);
  switch (failure) {
    case LoginFailure::kNone:
      break;
    case LoginFailure::kPasswordRefused:
      return Refused(Describe() + " does not accept the value: " + error);
    case LoginFailure::kUnreachable:
      return Unreachable("cannot reach " + Describe() + ": " + error);
    case LoginFailure::kOther:
      return StepFailed("cannot log in as " + Describe() + ": " + error);
  }
  if (pq_.used_password(conn->get()) == 0) {
    return StepFailed(Describe() + " let the role in without asking for a password (trust or peer in " +
                      "pg_hba.conf), so the test proves nothing");
  }
  return OkStatus();
}

Status PostgresqlTarget::SetPassword(ByteView value) {
  SK_ASSIGN_OR_RETURN(SecretBytes password, CString(value, "the value"));
  LoginFailure failure = LoginFailure::kUnreachable;
  std::string error;
  auto conn = Connect(spec_.admin_user, admin_password_, &failure, &error);
  SK_RETURN_IF_ERROR(
      AdminLoginStatus(failure, "admin_user " + spec_.admin_user + " for " + Describe(), Describe(), error));
  PGconn* c = conn->get();
  // The verifier is computed here; the statement (and so the server's log) holds only it.
  PqText verifier(pq_, pq_.encrypt_password(c, Chars(password), spec_.role.c_str(), "scram-sha-256"));
  if (verifier.get() == nullptr) {
    return StepFailed("cannot compute a SCRAM verifier for " + Describe() + ": " +
                      OneLine(pq_.error_message(c)));
  }
  PqText role(pq_, pq_.escape_identifier(c, spec_.role.data(), spec_.role.size()));
  PqText literal(pq_, pq_.escape_literal(c, verifier.get(), verifier.view().size()));
  if (role.get() == nullptr || literal.get() == nullptr) {
    return StepFailed("cannot quote the statement for " + Describe() + ": " + OneLine(pq_.error_message(c)));
  }
  const std::string_view parts[] = {"ALTER ROLE ", role.view(), " PASSWORD ", literal.view()};
  std::size_t size = 1;  // the NUL
  for (std::string_view p : parts) size += p.size();
  SecretBytes sql(size);
  auto at = sql.Expose().begin();
  for (std::string_view p : parts) at = std::copy(p.begin(), p.end(), at);
  PGresult* result = pq_.exec(c, Chars(sql));
  const bool ok = result != nullptr && pq_.result_status(result) == PGRES_COMMAND_OK;
  const std::string why = ServerError(pq_, result, c, ok);
  if (result != nullptr) pq_.clear(result);
  if (ok) return OkStatus();
  if (pq_.status(c) == CONNECTION_BAD) {
    return Unreachable("lost " + Describe() + " during ALTER ROLE (it may or may not have run): " + why);
  }
  return StepFailed("ALTER ROLE failed on " + Describe() + ": " + why);
}

// Leased users (lease_database.h): the operator's statements with the placeholders filled.
class PostgresqlLeases final : public LeaseDatabase {
 public:
  PostgresqlLeases(Libpq pq, LeaseDatabaseSpec spec, SecretBytes admin_password)
      : pq_(pq), spec_(std::move(spec)), admin_password_(std::move(admin_password)) {}

  std::string Describe() const override {
    return "postgresql " + spec_.db.dbname + " on " + spec_.db.host + ":" + std::to_string(spec_.db.port);
  }
  Status Create(const std::string& role, ByteView password, std::int64_t valid_until_unix) override;
  Status Drop(const std::string& role) override;
  Result<int> Reap(std::int64_t grace_s) override;

 private:
  Result<std::unique_ptr<PgConn>> Admin() const;
  // Runs `sql`; `what` names it in errors (never the statement: it may hold a verifier).
  Status Exec(PGconn* c, const char* sql, const std::string& what, int* rows = nullptr) const;
  // `sql` with {{role}}, {{password}} and {{valid_until}} replaced, in locked memory.
  Result<SecretBytes> Fill(PGconn* c, const std::string& sql, const std::string& role, const char* verifier,
                           std::int64_t valid_until_unix) const;

  Libpq pq_;
  LeaseDatabaseSpec spec_;
  SecretBytes admin_password_;  // NUL-terminated
};

Result<std::unique_ptr<PgConn>> PostgresqlLeases::Admin() const {
  LoginFailure failure = LoginFailure::kUnreachable;
  std::string error;
  auto conn = ConnectAs(pq_, spec_.db, spec_.db.admin_user, admin_password_, &failure, &error);
  SK_RETURN_IF_ERROR(AdminLoginStatus(failure, "admin_user " + spec_.db.admin_user + " for " + Describe(),
                                      Describe(), error));
  // A statement stuck behind a lock must not hold the (one-at-a-time) lease server past the
  // agent's 30 s wait.
  SK_RETURN_IF_ERROR(Exec(conn->get(), "SET statement_timeout = '20s'", "SET statement_timeout"));
  SK_RETURN_IF_ERROR(Exec(conn->get(), "SET lock_timeout = '10s'", "SET lock_timeout"));
  return conn;
}

Status PostgresqlLeases::Exec(PGconn* c, const char* sql, const std::string& what, int* rows) const {
  PGresult* result = pq_.exec(c, sql);
  const ExecStatusType st = result != nullptr ? pq_.result_status(result) : PGRES_FATAL_ERROR;
  const bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  const std::string why = ServerError(pq_, result, c, ok);
  if (ok && rows != nullptr) *rows = pq_.ntuples(result);
  if (result != nullptr) pq_.clear(result);
  if (ok) return OkStatus();
  if (pq_.status(c) == CONNECTION_BAD)
    return Unreachable("lost " + Describe() + " during " + what + ": " + why);
  return StepFailed(what + " failed on " + Describe() + ": " + why);
}

Result<SecretBytes> PostgresqlLeases::Fill(PGconn* c, const std::string& sql, const std::string& role,
                                           const char* verifier, std::int64_t valid_until_unix) const {
  PqText ident(pq_, pq_.escape_identifier(c, role.data(), role.size()));
  std::time_t t = static_cast<std::time_t>(valid_until_unix);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char when[64];
  const std::size_t n = std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S+00", &tm);
  PqText until(pq_, pq_.escape_literal(c, when, n));
  std::unique_ptr<PqText> secret;
  if (verifier != nullptr) {
    secret = std::make_unique<PqText>(pq_, pq_.escape_literal(c, verifier, std::strlen(verifier)));
  }
  if (ident.get() == nullptr || until.get() == nullptr || (secret && secret->get() == nullptr))
    return StepFailed("cannot quote a statement for " + Describe() + ": " + OneLine(pq_.error_message(c)));
  std::string out;
  struct Wipe {
    std::string& s;
    ~Wipe() { SecureWipe(s.data(), s.size()); }
  } wipe{out};
  // Reserved at its final size: a reallocation would free a copy of the verifier unwiped.
  std::size_t size = sql.size();
  for (std::size_t at = sql.find("{{"); at != std::string::npos; at = sql.find("{{", at + 2)) {
    size += std::max({ident.view().size(), until.view().size(), secret ? secret->view().size() : 0});
  }
  out.reserve(size + 1);
  for (std::size_t at = 0; at < sql.size();) {
    if (sql.compare(at, 8, "{{role}}") == 0) {
      out += ident.view();
      at += 8;
    } else if (sql.compare(at, 12, "{{password}}") == 0) {
      if (!secret) return StepFailed("{{password}} is only for the create statements");
      out += secret->view();
      at += 12;
    } else if (sql.compare(at, 15, "{{valid_until}}") == 0) {
      out += until.view();
      at += 15;
    } else {
      out += sql[at++];
    }
  }
  SecretBytes filled(out.size() + 1);
  std::copy(out.begin(), out.end(), filled.Expose().begin());
  return filled;
}

Status PostgresqlLeases::Create(const std::string& role, ByteView password, std::int64_t valid_until_unix) {
  SK_ASSIGN_OR_RETURN(SecretBytes pw, CString(password, "the password"));
  SK_ASSIGN_OR_RETURN(std::unique_ptr<PgConn> conn, Admin());
  PGconn* c = conn->get();
  PqText verifier(pq_, pq_.encrypt_password(c, Chars(pw), role.c_str(), "scram-sha-256"));
  if (verifier.get() == nullptr)
    return StepFailed("cannot compute a SCRAM verifier for " + Describe() + ": " +
                      OneLine(pq_.error_message(c)));
  SK_RETURN_IF_ERROR(Exec(c, "BEGIN", "BEGIN"));
  for (std::size_t i = 0; i < spec_.create.size(); ++i) {
    auto sql = Fill(c, spec_.create[i], role, verifier.get(), valid_until_unix);
    Status st = sql.ok() ? Exec(c, Chars(*sql), "create statement " + std::to_string(i + 1)) : sql.status();
    if (!st.ok()) {
      (void)Exec(c, "ROLLBACK", "ROLLBACK");
      return st;
    }
  }
  // The admin becomes a member of the role it made, so it may later end the role's sessions
  // and DROP OWNED BY it (PostgreSQL 15 does not make a CREATEROLE creator one).
  auto grant = Fill(c, "GRANT {{role}} TO CURRENT_USER", role, nullptr, 0);
  Status granted = grant.ok() ? Exec(c, Chars(*grant), "GRANT the role to the admin") : grant.status();
  if (!granted.ok()) {
    (void)Exec(c, "ROLLBACK", "ROLLBACK");
    return granted;
  }
  return Exec(c, "COMMIT", "COMMIT");
}

Status PostgresqlLeases::Drop(const std::string& role) {
  SK_ASSIGN_OR_RETURN(std::unique_ptr<PgConn> conn, Admin());
  PGconn* c = conn->get();
  PqText literal(pq_, pq_.escape_literal(c, role.data(), role.size()));
  PqText ident(pq_, pq_.escape_identifier(c, role.data(), role.size()));
  if (literal.get() == nullptr || ident.get() == nullptr)
    return StepFailed("cannot quote the role for " + Describe() + ": " + OneLine(pq_.error_message(c)));
  int rows = 0;
  SK_RETURN_IF_ERROR(Exec(c,
                          ("SELECT 1 FROM pg_roles WHERE rolname = " + std::string(literal.view())).c_str(),
                          "looking the role up", &rows));
  if (rows == 0) return OkStatus();  // never made, or already gone
  // No new session from here on, then end the ones it has.
  SK_RETURN_IF_ERROR(
      Exec(c, ("ALTER ROLE " + std::string(ident.view()) + " NOLOGIN").c_str(), "ALTER ROLE NOLOGIN"));
  SK_RETURN_IF_ERROR(Exec(c,
                          ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = " +
                           std::string(literal.view()))
                              .c_str(),
                          "terminating its sessions"));
  SK_RETURN_IF_ERROR(Exec(c, "BEGIN", "BEGIN"));
  const std::vector<std::string>& revoke = spec_.revoke.empty() ? kDefaultLeaseRevoke : spec_.revoke;
  for (std::size_t i = 0; i < revoke.size(); ++i) {
    auto sql = Fill(c, revoke[i], role, nullptr, 0);
    Status st = sql.ok() ? Exec(c, Chars(*sql), "revoke statement " + std::to_string(i + 1)) : sql.status();
    if (!st.ok()) {
      (void)Exec(c, "ROLLBACK", "ROLLBACK");
      return st;
    }
  }
  SK_RETURN_IF_ERROR(Exec(c, "COMMIT", "COMMIT"));
  // Dropped means gone: revoke statements that leave the role are a failure, retried.
  SK_RETURN_IF_ERROR(Exec(c,
                          ("SELECT 1 FROM pg_roles WHERE rolname = " + std::string(literal.view())).c_str(),
                          "checking the role is gone", &rows));
  if (rows != 0)
    return StepFailed("the revoke statements left role " + role + " in place (they must DROP ROLE it)");
  return OkStatus();
}
Result<int> PostgresqlLeases::Reap(std::int64_t grace_s) {
  std::vector<std::string> roles;
  {
    SK_ASSIGN_OR_RETURN(std::unique_ptr<PgConn> conn, Admin());
    PGconn* c = conn->get();
    const std::string sql =
        "SELECT rolname FROM pg_roles WHERE rolname ~ '^sk_lease_[0-9a-f]{16}$' AND rolvaliduntil IS NOT "
        "NULL "
        "AND rolvaliduntil < now() - interval '" +
        std::to_string(grace_s) + " seconds'";
    PGresult* result = pq_.exec(c, sql.c_str());
    const bool ok = result != nullptr && pq_.result_status(result) == PGRES_TUPLES_OK;
    if (ok) {
      for (int i = 0; i < pq_.ntuples(result); ++i) roles.emplace_back(pq_.get_value(result, i, 0));
    }
    std::string why = ok ? "" : OneLine(result != nullptr ? pq_.result_error(result) : pq_.error_message(c));
    if (result != nullptr) pq_.clear(result);
    if (!ok) return StepFailed("listing expired lease roles on " + Describe() + " failed: " + why);
  }
  int dropped = 0;
  for (const std::string& role : roles) {
    SK_RETURN_IF_ERROR(Drop(role));
    ++dropped;
  }
  return dropped;
}

}  // namespace

Result<std::unique_ptr<RotationTarget>> MakePostgresqlTarget(const PostgresqlTargetSpec& spec,
                                                             SecretBytes admin_password, const char* libpq) {
  if (admin_password.empty()) return BadTarget("a postgresql target needs admin_user's password");
  SK_ASSIGN_OR_RETURN(SecretBytes admin, CString(admin_password.Expose(), "the admin password"));
  SK_ASSIGN_OR_RETURN(Libpq pq, LoadLibpq(libpq));
  std::unique_ptr<RotationTarget> t = std::make_unique<PostgresqlTarget>(pq, spec, std::move(admin));
  return t;
}

}  // namespace sk::cli::internal

namespace sk::cli {

Result<std::unique_ptr<LeaseDatabase>> MakeLeaseDatabase(const LeaseDatabaseSpec& spec,
                                                         SecretBytes admin_password, const char* libpq) {
  if (admin_password.empty()) return internal::BadTarget("a lease database needs admin_user's password");
  if (spec.create.empty()) return internal::BadTarget("a lease database needs create statements");
  SK_ASSIGN_OR_RETURN(SecretBytes admin, internal::CString(admin_password.Expose(), "the admin password"));
  SK_ASSIGN_OR_RETURN(internal::Libpq pq, internal::LoadLibpq(libpq));
  std::unique_ptr<LeaseDatabase> db =
      std::make_unique<internal::PostgresqlLeases>(pq, spec, std::move(admin));
  return db;
}

std::string UnknownPlaceholder(const std::string& sql) {
  for (std::size_t at = sql.find("{{"); at != std::string::npos; at = sql.find("{{", at + 2)) {
    const std::size_t end = sql.find("}}", at);
    const std::string token = sql.substr(at, end == std::string::npos ? std::string::npos : end + 2 - at);
    if (token != "{{role}}" && token != "{{password}}" && token != "{{valid_until}}")
      return token.substr(0, 64);
  }
  return "";
}

}  // namespace sk::cli
