// Leased database users end to end (docs/rotation.md "Leases"): the built `sealkeep lease`
// against a real sealkeepd (SoftHSM2 token), which asks a real `sealkeep rotator
// --serve-leases` to make and drop roles in a real PostgreSQL 15 (as nobody, on a private
// Unix socket). The sweep runs every second here ([leases] sweep_seconds = 1); every wait
// is on an observed state (the lease's, a file's), with a deadline, never a bare sleep.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/postgres.h"
#include "tests/fixtures/temp_dir.h"

namespace sk::testing {
namespace {

using json = nlohmann::json;

// Polls `done` every 20 ms until it holds or `seconds` pass; whether it held.
bool WaitFor(const std::function<bool()>& done, int seconds = 30) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

AgentProcess::Options LeaseAgent(const std::string& dir) {
  AgentProcess::Options o;
  o.extra_config = "[leases]\nsocket = \"" + dir + "/leases.sock\"\nsweep_seconds = 1\n";
  return o;
}

class LeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    agent_.Start();
    // The lease server's login: not a superuser, only CREATEROLE (what docs/rotation.md asks).
    ASSERT_TRUE(pg_.Exec("CREATE ROLE lease_admin LOGIN CREATEROLE PASSWORD 'lease-admin-pw'"));
    HttpResponse r = agent_.Call("PUT", "/v1/secrets/db/admin", json{{"value", "lease-admin-pw"}}.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    WriteFile(
        config_,
        R"([[lease]]
name = "pg/readonly"
max_ttl = "2h"
database = { host = ")" +
            pg_.socket_dir() +
            R"(", port = 5432, dbname = "postgres", admin_user = "lease_admin", admin_secret = "db/admin" }
create = ["CREATE ROLE {{role}} LOGIN PASSWORD {{password}} VALID UNTIL {{valid_until}}",
          "GRANT pg_read_all_data TO {{role}}"]
)");
    StartServer();
  }
  void TearDown() override { StopServer(); }

  void StartServer() {
    server_ = ::fork();
    ASSERT_GE(server_, 0);
    if (server_ == 0) {
      int log = ::open(server_log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      ::dup2(log, 1);
      ::dup2(log, 2);
      ::setenv("SEALKEEP_SOCKET", agent_.socket().c_str(), 1);
      const std::string bin = SealkeepBinary();
      ::execl(bin.c_str(), bin.c_str(), "rotator", "--serve-leases", "--config", config_.c_str(), "--listen",
              lease_socket_.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ASSERT_TRUE(WaitFor([&] {
      struct stat st {};
      return ::stat(lease_socket_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
    })) << ReadAll(server_log_);
  }
  void StopServer() {
    if (server_ <= 0) return;
    ::kill(server_, SIGKILL);
    ::waitpid(server_, nullptr, 0);
    server_ = -1;
    ::unlink(lease_socket_.c_str());
  }

  std::string Cli(const std::string& args, int* st) { return agent_.Cli(args, st, "", true); }
  json Lease(const std::string& id) {
    int st = 0;
    json all = json::parse(Cli("--json lease list --all", &st), nullptr, false);
    if (all.is_object()) {
      for (const json& l : all.value("leases", json::array()))
        if (l.value("id", "") == id) return l;
    }
    return json::object();
  }
  bool RoleExists(const std::string& role) {
    return !pg_.Query("SELECT 1 FROM pg_roles WHERE rolname = " + Postgres::Literal(role)).empty();
  }
  json Create(const std::string& ttl) {
    int st = 0;
    std::string out = Cli("--json lease create pg/readonly --ttl " + ttl, &st);
    EXPECT_EQ(st, 0) << out << ReadAll(server_log_);
    return json::parse(out, nullptr, false);
  }

  TempDir dir_{"lease"};
  AgentProcess agent_{dir_.path(), LeaseAgent(dir_.path())};
  Postgres pg_{Postgres::Options{true, {}, {}}};
  std::string config_ = dir_.Join("rotation.toml");
  std::string lease_socket_ = dir_.Join("leases.sock");
  std::string server_log_ = dir_.Join("lease-server.log");
  pid_t server_ = -1;
};

TEST_F(LeaseTest, ALeasesRoleLogsInThenNotAfterItsTtlAndIsGoneFromPgRoles) {
  json lease = Create("3s");
  ASSERT_TRUE(lease.is_object());
  const std::string id = lease.value("id", ""), user = lease.value("username", ""),
                    password = lease.value("password", "");
  ASSERT_EQ(password.size(), 32u);
  EXPECT_EQ(user, "sk_lease_" + id);
  EXPECT_TRUE(pg_.CanLogin(user, password));
  EXPECT_TRUE(RoleExists(user));
  EXPECT_EQ(Lease(id).value("state", ""), "active");
  // Ended by the sweep once its TTL is past: revoked in the journal, gone from the server.
  ASSERT_TRUE(WaitFor([&] { return Lease(id).value("state", "") == "revoked"; })) << Lease(id).dump();
  EXPECT_FALSE(RoleExists(user));
  EXPECT_FALSE(pg_.CanLogin(user, password));
  // The password is stored nowhere: not in the journal (the store file), the agent's log,
  // the lease server's log, nor the database's statement log (only a SCRAM verifier went there).
  for (const std::string& file : {agent_.state_dir() + "/store.db", server_log_, pg_.log_file()}) {
    EXPECT_EQ(ReadAll(file).find(password), std::string::npos) << file;
  }
  EXPECT_EQ(agent_.Log().find(password), std::string::npos);
  // Not listed by default once revoked.
  int st = 0;
  EXPECT_EQ(Cli("lease list", &st).find(id), std::string::npos);
}

TEST_F(LeaseTest, ARevokeWhilePostgresqlIsDownIsRetriedAndLandsWhenItReturns) {
  json lease = Create("1h");
  const std::string id = lease.value("id", ""), user = lease.value("username", "");
  ASSERT_TRUE(pg_.CanLogin(user, lease.value("password", "")));
  pg_.Stop();
  int st = 0;
  std::string out = Cli("lease revoke " + id, &st);
  EXPECT_EQ(st, 6) << out;  // not dropped yet: retried
  EXPECT_NE(out.find("revoking"), std::string::npos) << out;
  json l = Lease(id);
  EXPECT_EQ(l.value("state", ""), "revoking") << l.dump();
  EXPECT_GE(l.value("failed_attempts", 0), 1) << l.dump();
  EXPECT_NE(l.value("last_error", "").find("target_unavailable"), std::string::npos) << l.dump();
  // The alert fires once for the lease, however many sweeps fail.
  ASSERT_TRUE(WaitFor([&] { return Lease(id).value("failed_attempts", 0) >= 3; })) << Lease(id).dump();
  const std::string metrics = agent_.Call("GET", "/metrics").body;
  EXPECT_NE(metrics.find("sealkeep_alerts_total{event=\"lease_revoke_failed\"} 1"), std::string::npos);
  EXPECT_NE(metrics.find("sealkeep_leases{state=\"revoking\"} 1"), std::string::npos) << metrics;
  pg_.Start();
  ASSERT_TRUE(WaitFor([&] { return Lease(id).value("state", "") == "revoked"; })) << Lease(id).dump();
  EXPECT_FALSE(RoleExists(user));
}

TEST_F(LeaseTest, LeasesSurviveRestartsOfTheAgentAndTheLeaseServer) {
  json lease = Create("1h");
  const std::string id = lease.value("id", ""), user = lease.value("username", "");
  ASSERT_EQ(agent_.Stop(9), 128 + 9);
  StopServer();
  agent_.Start();
  StartServer();
  json l = Lease(id);
  EXPECT_EQ(l.value("state", ""), "active") << l.dump();
  EXPECT_EQ(l.value("role", ""), user);
  EXPECT_TRUE(pg_.CanLogin(user, lease.value("password", "")));
  int st = 0;
  std::string out = Cli("lease revoke " + id, &st);
  EXPECT_EQ(st, 0) << out;
  EXPECT_EQ(Lease(id).value("state", ""), "revoked");
  EXPECT_FALSE(RoleExists(user));
}

TEST_F(LeaseTest, ARevokeEndsTheRolesOpenSessions) {
  json lease = Create("1h");
  const std::string id = lease.value("id", ""), user = lease.value("username", "");
  // A session of the lease's role that would run for a minute.
  pid_t psql = ::fork();
  ASSERT_GE(psql, 0);
  if (psql == 0) {
    int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::setenv("PGPASSWORD", lease.value("password", "").c_str(), 1);
    ::execlp("psql", "psql", "-h", pg_.socket_dir().c_str(), "-U", user.c_str(), "-d", "postgres", "-c",
             "SELECT pg_sleep(60)", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ASSERT_TRUE(WaitFor([&] {
    return !pg_.Query("SELECT 1 FROM pg_stat_activity WHERE usename = " + Postgres::Literal(user)).empty();
  })) << "the lease's session did not start";
  int st = 0;
  std::string out = Cli("lease revoke " + id, &st);
  EXPECT_EQ(st, 0) << out;
  // The session was terminated: psql ends (with an error) long before its minute.
  int status = 0;
  ASSERT_TRUE(WaitFor([&] { return ::waitpid(psql, &status, WNOHANG) == psql; }))
      << "the session outlived the revoke";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0);
  EXPECT_FALSE(RoleExists(user));
}

TEST_F(LeaseTest, TheReapDropsLeaseRolesLongExpiredThatNoRecordNames) {
  // Roles of leases whose records are gone (a store put back from an old copy): one long
  // past its end, one still valid, and a role that is not a lease's.
  const std::string old_role = "sk_lease_00000000000000aa", live_role = "sk_lease_00000000000000bb";
  ASSERT_TRUE(
      pg_.Exec("CREATE ROLE " + old_role + " LOGIN PASSWORD 'x' VALID UNTIL '2020-01-01 00:00:00+00'"));
  ASSERT_TRUE(pg_.Exec("CREATE ROLE " + live_role + " LOGIN PASSWORD 'x' VALID UNTIL 'infinity'"));
  ASSERT_TRUE(pg_.Exec("CREATE ROLE sk_lease_other LOGIN PASSWORD 'x' VALID UNTIL '2020-01-01 00:00:00+00'"));
  // The lease server's admin must be a member to drop them, as it is of the roles it makes.
  ASSERT_TRUE(pg_.Exec("GRANT " + old_role + ", " + live_role + " TO lease_admin"));
  // The agent's first sweep after a start asks for a reap.
  ASSERT_EQ(agent_.Stop(), 0);
  agent_.Start();
  ASSERT_TRUE(WaitFor([&] { return !RoleExists(old_role); })) << ReadAll(server_log_);
  EXPECT_TRUE(RoleExists(live_role));
  EXPECT_TRUE(RoleExists("sk_lease_other"));
  EXPECT_NE(ReadAll(server_log_).find("reap: 1 expired lease role(s) without a record dropped"),
            std::string::npos)
      << ReadAll(server_log_);
}

TEST_F(LeaseTest, RefusalsLeaveNoRoleBehind) {
  int st = 0;
  std::string out = Cli("lease create pg/other --ttl 1h", &st);
  EXPECT_EQ(st, 3) << out;
  EXPECT_NE(out.find("unknown_lease"), std::string::npos) << out;
  out = Cli("lease create pg/readonly --ttl 3h", &st);  // max_ttl is 2h
  EXPECT_EQ(st, 2) << out;
  EXPECT_NE(out.find("ttl_too_long"), std::string::npos) << out;
  out = Cli("lease create pg/readonly --ttl soon", &st);
  EXPECT_EQ(st, 2) << out;
  EXPECT_NE(out.find("bad_ttl"), std::string::npos) << out;
  // The refused creates were journaled as failed, then swept: revoked, nothing in pg_roles.
  ASSERT_TRUE(WaitFor([&] {
    json all = json::parse(Cli("--json lease list --all", &st), nullptr, false);
    if (!all.is_object() || all["leases"].size() != 2) return false;
    for (const json& l : all["leases"])
      if (l.value("state", "") != "revoked") return false;
    return true;
  })) << Cli("--json lease list --all", &st);
  EXPECT_TRUE(pg_.Query("SELECT rolname FROM pg_roles WHERE rolname LIKE 'sk_lease_%'").empty());
  // A revoke of a lease that does not exist.
  out = Cli("lease revoke 0123456789abcdef", &st);
  EXPECT_EQ(st, 3) << out;
}

TEST_F(LeaseTest, WithoutTheLeaseServerACreateFailsClearlyAndLeavesNothing) {
  StopServer();
  int st = 0;
  std::string out = Cli("lease create pg/readonly --ttl 1h", &st);
  EXPECT_EQ(st, 6) << out;
  EXPECT_NE(out.find("lease_server_unavailable"), std::string::npos) << out;
  EXPECT_NE(out.find("sealkeep-leases.service"), std::string::npos) << out;
}

TEST_F(LeaseTest, ThePolicyGrantsLeasesByNameAndAdminAloneIsNotEnough) {
  // A second agent, with a policy: root is admin everywhere, and may lease pg/readonly only.
  // It asks the same lease server (which reads its admin password from the first agent).
  AgentProcess::Options o = LeaseAgent(dir_.path());
  o.policy = true;
  AgentProcess guarded(dir_.Join("guarded"), o);
  WriteFile(guarded.state_dir() + "/policy.toml", std::string(kRootIsAdminPolicy) + R"(
[roles.leaser]
grants = [{ capabilities = ["lease"], paths = ["pg/readonly"] }]

[[bindings]]
name = "root-leases"
roles = ["leaser"]
match = { uid = 0 }
)");
  guarded.Start();
  WriteFile(config_, ReadAll(config_) + R"([[lease]]
name = "pg/admin"
database = { host = ")" + pg_.socket_dir() +
                         R"(", admin_user = ")" + pg_.superuser() + R"(", admin_secret = "db/admin" }
create = ["CREATE ROLE {{role}} LOGIN SUPERUSER PASSWORD {{password}} VALID UNTIL {{valid_until}}"]
)");
  StopServer();
  StartServer();
  int st = 0;
  std::string out = guarded.Cli("lease create pg/admin --ttl 1h", &st, "", true);
  EXPECT_EQ(st, 5) << out;  // admin on ** does not grant `lease`
  EXPECT_NE(out.find("forbidden"), std::string::npos) << out;
  out = guarded.Cli("--json lease create pg/readonly --ttl 1h", &st, "", true);
  ASSERT_EQ(st, 0) << out;
  json lease = json::parse(out, nullptr, false);
  EXPECT_TRUE(pg_.CanLogin(lease.value("username", ""), lease.value("password", "")));
  // The refused create journaled nothing and made nothing: one lease in all.
  out = guarded.Cli("--json lease list --all", &st, "", true);
  EXPECT_EQ(st, 0) << out;
  EXPECT_EQ(json::parse(out, nullptr, false)["leases"].size(), 1u) << out;
  EXPECT_EQ(pg_.Query("SELECT rolname FROM pg_roles WHERE rolname LIKE 'sk_lease_%' AND rolsuper").size(),
            0u);
}

}  // namespace
}  // namespace sk::testing
