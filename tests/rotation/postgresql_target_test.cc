// The postgresql rotation target against a real PostgreSQL 15 (tests/fixtures/postgres.h):
// a role's password changes, is tested and reverted through an admin login with
// CREATEROLE only, and neither the value nor a password reaches a message or the server's
// statement log.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "crypto/bytes.h"
#include "tests/fixtures/postgres.h"
#include "tests/fixtures/temp_dir.h"
#include "tools/cli/rotation_target.h"

namespace sk::testing {
namespace {

using cli::PostgresqlTargetSpec;
using cli::RotationTarget;
namespace tr = cli::target_reason;

constexpr const char* kAdmin = "sk_rotator";
constexpr const char* kAdminPassword = "admin-Pa55-for-the-rotator";
constexpr const char* kOld = "old-app-password-1b7c";
// Quotes, a backslash, a dollar and non-ASCII: SASLprep and the quoting both see it.
constexpr const char* kNew = "n3w'app\"pass\\word$-é-9f2d";

SecretBytes Secret(std::string_view s) { return SecretBytes::CopyFrom(AsBytes(s)); }

// A status that says nothing of the values the test used.
void ExpectNoSecrets(const Status& st) {
  for (const char* v : {kAdminPassword, kOld, kNew}) {
    EXPECT_EQ(st.ToString().find(v), std::string::npos) << st.ToString();
  }
}

class PostgresqlTargetTest : public ::testing::Test {
 protected:
  explicit PostgresqlTargetTest(Postgres::Options options = {}) : pg_(std::move(options)) {}

  void SetUp() override {
    // The least the rotator needs: CREATEROLE may set another (non-superuser) role's password.
    ASSERT_TRUE(pg_.Exec(std::string("CREATE ROLE ") + kAdmin + " LOGIN CREATEROLE PASSWORD " +
                         Postgres::Literal(kAdminPassword)));
    ASSERT_TRUE(pg_.Exec("CREATE ROLE app LOGIN PASSWORD " + Postgres::Literal(kOld)));
  }

  PostgresqlTargetSpec Spec(const std::string& role = "app") const {
    PostgresqlTargetSpec s;
    s.host = pg_.socket_dir();
    s.port = static_cast<std::uint16_t>(pg_.port());
    s.role = role;
    s.admin_user = kAdmin;
    return s;
  }

  std::unique_ptr<RotationTarget> Make(const PostgresqlTargetSpec& spec,
                                       std::string_view admin_password = kAdminPassword) {
    auto t = cli::MakeTarget(spec, Secret(admin_password));
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? std::move(t).value() : nullptr;
  }

  Postgres pg_;
};

TEST_F(PostgresqlTargetTest, SetChangesTheRolesPasswordToAScramVerifier) {
  auto t = Make(Spec());
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->Describe(), "postgresql role app on " + pg_.socket_dir() + ":5432");
  ASSERT_TRUE(t->Set(AsBytes(kNew), AsBytes(kOld)).ok());
  EXPECT_FALSE(pg_.CanLogin("app", kOld));
  EXPECT_TRUE(pg_.CanLogin("app", kNew));
  EXPECT_TRUE(t->Test(AsBytes(kNew)).ok());
  auto rows = pg_.Query("SELECT rolpassword FROM pg_authid WHERE rolname = 'app'");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0].rfind("SCRAM-SHA-256$4096:", 0), 0u) << rows[0][0];
}

TEST_F(PostgresqlTargetTest, TestRefusesAWrongValueAsTargetRefused) {
  auto t = Make(Spec());
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->Test(AsBytes(kOld)).ok());
  Status st = t->Test(AsBytes(kNew));
  EXPECT_EQ(st.reason(), tr::kRefused) << st.ToString();
  EXPECT_EQ(st.code(), Code::kUnauthenticated);
  EXPECT_NE(st.message().find("28P01"), std::string::npos) << st.ToString();
  ExpectNoSecrets(st);
}

TEST_F(PostgresqlTargetTest, RevertPutsTheOldValueBack) {
  auto t = Make(Spec());
  ASSERT_NE(t, nullptr);
  ASSERT_TRUE(t->Set(AsBytes(kNew), AsBytes(kOld)).ok());
  ASSERT_TRUE(t->Revert(AsBytes(kOld), AsBytes(kNew)).ok());
  EXPECT_TRUE(pg_.CanLogin("app", kOld));
  EXPECT_FALSE(pg_.CanLogin("app", kNew));
  EXPECT_TRUE(t->Test(AsBytes(kOld)).ok());
  EXPECT_EQ(t->Test(AsBytes(kNew)).reason(), tr::kRefused);
}

TEST_F(PostgresqlTargetTest, AWrongAdminPasswordFailsCleanlyAndChangesNothing) {
  auto t = Make(Spec(), "not-the-admin-password");
  ASSERT_NE(t, nullptr);
  Status st = t->Set(AsBytes(kNew), AsBytes(kOld));
  EXPECT_EQ(st.reason(), tr::kAdminRefused) << st.ToString();
  EXPECT_EQ(st.code(), Code::kUnauthenticated);
  EXPECT_NE(st.message().find(kAdmin), std::string::npos) << st.ToString();
  EXPECT_EQ(st.message().find("not-the-admin-password"), std::string::npos) << st.ToString();
  ExpectNoSecrets(st);
  EXPECT_TRUE(pg_.CanLogin("app", kOld));
}

TEST_F(PostgresqlTargetTest, AStoppedServerIsUnavailableAndSetWorksOnceItReturns) {
  auto t = Make(Spec());
  ASSERT_NE(t, nullptr);
  pg_.Stop();
  Status set = t->Set(AsBytes(kNew), AsBytes(kOld));
  EXPECT_EQ(set.reason(), tr::kUnavailable) << set.ToString();
  EXPECT_EQ(set.code(), Code::kUnavailable);
  Status test = t->Test(AsBytes(kOld));
  EXPECT_EQ(test.reason(), tr::kUnavailable) << test.ToString();
  ExpectNoSecrets(set);
  ExpectNoSecrets(test);

  pg_.Start();
  EXPECT_TRUE(pg_.CanLogin("app", kOld)) << "the failed Set changed nothing";
  ASSERT_TRUE(t->Set(AsBytes(kNew), AsBytes(kOld)).ok());
  EXPECT_TRUE(t->Test(AsBytes(kNew)).ok());
  EXPECT_TRUE(pg_.CanLogin("app", kNew));
}

TEST_F(PostgresqlTargetTest, RoleNamesThatNeedQuotingWork) {
  const std::string role = "App \"quoted\" it's; DROP ROLE app";
  ASSERT_TRUE(
      pg_.Exec("CREATE ROLE " + Postgres::Ident(role) + " LOGIN PASSWORD " + Postgres::Literal(kOld)));
  auto t = Make(Spec(role));
  ASSERT_NE(t, nullptr);
  ASSERT_TRUE(t->Set(AsBytes(kNew), AsBytes(kOld)).ok());
  EXPECT_TRUE(pg_.CanLogin(role, kNew));
  EXPECT_FALSE(pg_.CanLogin(role, kOld));
  EXPECT_TRUE(t->Test(AsBytes(kNew)).ok());
  EXPECT_TRUE(pg_.CanLogin("app", kOld)) << "the other role is untouched";
}

TEST_F(PostgresqlTargetTest, ARoleThatDoesNotExistFailsWithTheServersReason) {
  auto t = Make(Spec("no_such_role"));
  ASSERT_NE(t, nullptr);
  Status st = t->Set(AsBytes(kNew), AsBytes(kOld));
  EXPECT_EQ(st.reason(), tr::kFailed) << st.ToString();
  EXPECT_NE(st.message().find("does not exist"), std::string::npos) << st.ToString();
  ExpectNoSecrets(st);
}

TEST_F(PostgresqlTargetTest, ALoginToAMissingDatabaseIsAFailureNotARefusal) {
  PostgresqlTargetSpec spec = Spec();
  spec.dbname = "no_such_db";
  auto t = Make(spec);
  ASSERT_NE(t, nullptr);
  Status st = t->Test(AsBytes(kOld));
  EXPECT_EQ(st.reason(), tr::kFailed) << st.ToString();
  EXPECT_NE(st.message().find("3D000"), std::string::npos) << st.ToString();
}

TEST_F(PostgresqlTargetTest, ValuesPostgresqlCannotHoldAreRefusedBeforeConnecting) {
  auto t = Make(Spec());
  ASSERT_NE(t, nullptr);
  const std::string with_nul("ab\0cd", 5);
  EXPECT_EQ(t->Set(AsBytes(with_nul), AsBytes(kOld)).reason(), tr::kBadValue);
  EXPECT_EQ(t->Set(AsBytes(""), AsBytes(kOld)).reason(), tr::kBadValue);
  EXPECT_EQ(t->Test(AsBytes("")).reason(), tr::kBadValue);
  EXPECT_TRUE(pg_.CanLogin("app", kOld));
}

class PostgresqlLogTest : public PostgresqlTargetTest {
 protected:
  PostgresqlLogTest()
      : PostgresqlTargetTest(Postgres::Options{.log_statements = true, .hba = {}, .settings = {}}) {}
};

TEST_F(PostgresqlLogTest, TheValueNeverReachesTheServersLog) {
  auto t = Make(Spec());
  ASSERT_NE(t, nullptr);
  ASSERT_TRUE(t->Set(AsBytes(kNew), AsBytes(kOld)).ok());
  ASSERT_TRUE(t->Test(AsBytes(kNew)).ok());
  EXPECT_EQ(t->Test(AsBytes("a-wrong-guess-7e1")).reason(), tr::kRefused);
  pg_.Stop();  // every line written
  const std::string log = ReadFile(pg_.log_file());
  EXPECT_NE(log.find("statement: ALTER ROLE \"app\" PASSWORD 'SCRAM-SHA-256$4096:"), std::string::npos)
      << "log_statement = all recorded the rotation (the check below means something)\n"
      << log;
  EXPECT_EQ(log.find(kNew), std::string::npos) << log;
  EXPECT_EQ(log.find("a-wrong-guess-7e1"), std::string::npos) << log;
  EXPECT_EQ(log.find(kAdminPassword, log.find("ALTER ROLE \"app\"")), std::string::npos)
      << "the admin password appears only in the test's own CREATE ROLE";
}

class PostgresqlTrustTest : public PostgresqlTargetTest {
 protected:
  PostgresqlTrustTest()
      : PostgresqlTargetTest(Postgres::Options{.hba = {"local all trusted trust"}, .settings = {}}) {}
};

TEST_F(PostgresqlTrustTest, ALoginWithoutAPasswordProvesNothing) {
  ASSERT_TRUE(pg_.Exec("CREATE ROLE trusted LOGIN PASSWORD " + Postgres::Literal(kOld)));
  auto t = Make(Spec("trusted"));
  ASSERT_NE(t, nullptr);
  Status st = t->Test(AsBytes("any value at all"));
  EXPECT_EQ(st.reason(), tr::kFailed) << st.ToString();
  EXPECT_NE(st.message().find("without asking for a password"), std::string::npos) << st.ToString();
}

TEST(PostgresqlTargetSpecTest, AMissingLibpqNamesThePackage) {
  PostgresqlTargetSpec spec;
  spec.host = "/nonexistent";
  spec.role = "app";
  spec.admin_user = "admin";
  auto t = cli::MakeTarget(spec, Secret("pw"), "libsk-no-such-libpq.so.5");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().reason(), tr::kLibpqMissing);
  EXPECT_NE(t.status().message().find("libpq5"), std::string::npos) << t.status().ToString();
}

TEST(PostgresqlTargetSpecTest, AnIncompleteSpecOrNoAdminPasswordIsABadTarget) {
  PostgresqlTargetSpec spec;
  spec.host = "/run/postgresql";
  spec.admin_user = "admin";
  auto no_role = cli::MakeTarget(spec, Secret("pw"));
  EXPECT_EQ(no_role.status().reason(), tr::kBadTarget);
  EXPECT_NE(no_role.status().message().find("target.role"), std::string::npos);
  spec.role = std::string(64, 'r');
  EXPECT_EQ(cli::MakeTarget(spec, Secret("pw")).status().reason(), tr::kBadTarget)
      << "truncated by the server";
  spec.role = "app";
  EXPECT_EQ(cli::MakeTarget(spec, SecretBytes()).status().reason(), tr::kBadTarget);
  EXPECT_TRUE(cli::MakeTarget(spec, Secret("pw")).ok());
}

TEST(PostgresqlTargetSpecTest, NoServerAtTheSocketIsUnavailable) {
  TempDir dir("pg-none");
  PostgresqlTargetSpec spec;
  spec.host = dir.path();
  spec.role = "app";
  spec.admin_user = "admin";
  auto t = cli::MakeTarget(spec, Secret("pw"));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  Status st = (*t)->Test(AsBytes(kOld));
  EXPECT_EQ(st.reason(), tr::kUnavailable) << st.ToString();
  EXPECT_NE(st.message().find(dir.path()), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace sk::testing
