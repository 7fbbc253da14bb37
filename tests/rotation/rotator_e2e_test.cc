// The rotator end to end (docs/rotation.md): the built `sealkeep rotator` / `sealkeep
// rotation run` against a real sealkeepd (SoftHSM2 token) and a real PostgreSQL 15 (as
// nobody, on a private Unix socket). The app's view is "sealkeep get, then log in": after
// every run, killed or not, the role must accept exactly the value sealkeep serves.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/postgres.h"
#include "tests/fixtures/temp_dir.h"

namespace sk::testing {
namespace {

using json = nlohmann::json;

class RotatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    agent_.Start();
    ASSERT_TRUE(pg_.Exec("CREATE ROLE app LOGIN PASSWORD 'initial-password'"));
    Put("db/app", "initial-password");
    Put("db/admin", pg_.superuser_password());
    WriteConfig(pg_.superuser());
  }

  void Put(const std::string& path, const std::string& value) {
    HttpResponse r = agent_.Call("PUT", "/v1/secrets/" + path, json{{"value", value}}.dump());
    ASSERT_EQ(r.status, 200) << r.body;
  }
  std::string Head(const std::string& path, const std::string& query = "") {
    return agent_.Call("GET", "/v1/secrets/" + path + query).Json().value("value", "<none>");
  }
  json Status(const std::string& path) {
    return agent_.Call("GET", "/v1/secrets/" + path + "/rotation/status").Json();
  }

  void WriteConfig(const std::string& admin_user) {
    WriteFile(config_, R"([[rotation]]
path = "db/app"
every = "30d"
generator = { type = "password", length = 24, exclude = "\"'\\" }
target = { type = "postgresql", host = ")" +
                           pg_.socket_dir() +
                           R"(", port = 5432, dbname = "postgres", role = "app", admin_user = ")" +
                           admin_user + R"(", admin_secret = "db/admin" }
)");
  }

  // `sealkeep ARGS` against the agent, with `env` before it; stdout and stderr.
  std::string Run(const std::string& args, int* status, const std::string& env = "") {
    std::string cmd = "env SEALKEEP_SOCKET='" + agent_.socket() + "' SEALKEEP_ROTATOR_LOCK='" +
                      dir_.Join("lock") + "' " + env + " " + SealkeepBinary() + " " + args + " 2>&1";
    return RunCommandOutput(cmd, status);
  }

  // The store and the target agree: the head logs in, no rotation is left pending.
  void ExpectConsistent(const std::string& when) {
    const std::string head = Head("db/app");
    EXPECT_TRUE(pg_.CanLogin("app", head)) << when << ": the role does not accept the head's value";
    EXPECT_EQ(Status("db/app").value("pending", 1), 0) << when;
  }

  TempDir dir_{"rotator"};
  AgentProcess agent_{dir_.path()};
  Postgres pg_;
  std::string config_ = dir_.Join("rotation.toml");
};

TEST_F(RotatorTest, ARotationChangesTheRolesPasswordAndTheAppLogsInWithTheHead) {
  int st = 0;
  std::string out = Run("rotation run db/app --config " + config_, &st);
  ASSERT_EQ(st, 0) << out;
  EXPECT_NE(out.find("db/app: finished"), std::string::npos) << out;
  const std::string now = Head("db/app");
  EXPECT_EQ(now.size(), 24u);
  EXPECT_TRUE(pg_.CanLogin("app", now));
  EXPECT_FALSE(pg_.CanLogin("app", "initial-password"));
  EXPECT_EQ(Head("db/app", "?stage=previous"), "initial-password");
  json s = Status("db/app");
  EXPECT_EQ(s.value("current", 0), 2);
  EXPECT_EQ(s["labels"].value("sealkeep.rotation", ""), "30d");
  // The rotator never prints the value.
  EXPECT_EQ(out.find(now), std::string::npos);
  // Not due again for 30 days: the timer's run changes nothing.
  out = Run("rotator --config " + config_, &st);
  EXPECT_EQ(st, 0) << out;
  EXPECT_NE(out.find("db/app: not_due"), std::string::npos) << out;
  EXPECT_EQ(Head("db/app"), now);
  out = Run("rotation status db/app", &st);
  EXPECT_EQ(st, 0) << out;
  EXPECT_NE(out.find("30d"), std::string::npos) << out;
}

TEST_F(RotatorTest, TheFirstTimerRunRotatesAPathNeverRotatedThenWaitsForItsSchedule) {
  int st = 0;
  std::string out = Run("rotator --config " + config_, &st);
  ASSERT_EQ(st, 0) << out;
  EXPECT_NE(out.find("db/app: finished"), std::string::npos) << out;
  ExpectConsistent("after the first run");
  out = Run("rotator --config " + config_, &st);
  EXPECT_EQ(st, 0) << out;
  EXPECT_NE(out.find("db/app: not_due"), std::string::npos) << out;
}

TEST_F(RotatorTest, ATargetThatRefusesLeavesTheOldPasswordWorkingAndTheHeadUnchanged) {
  Put("db/admin", "not-the-admin-password");
  int st = 0;
  std::string out = Run("rotation run db/app --config " + config_, &st);
  EXPECT_EQ(st, 4) << out;
  EXPECT_NE(out.find("db/app: aborted"), std::string::npos) << out;
  EXPECT_EQ(Head("db/app"), "initial-password");
  EXPECT_TRUE(pg_.CanLogin("app", "initial-password"));
  ExpectConsistent("after a refused set");
  json versions = agent_.Call("GET", "/v1/secrets/db/app/versions").Json();
  ASSERT_EQ(versions["versions"].size(), 2u);
  EXPECT_EQ(versions["versions"][1].value("state", ""), "destroyed");
  EXPECT_NE(agent_.Call("GET", "/metrics").body.find("sealkeep_alerts_total{event=\"rotation_failed\"} 1"),
            std::string::npos);
}

TEST_F(RotatorTest, AKillAfterEachStepIsResolvedByTheNextRun) {
  int rounds = 0;
  for (int round = 0; round < 3; ++round) {
    for (const char* step : {"begin", "set", "test"}) {
      SCOPED_TRACE(std::string("killed after ") + step + ", round " + std::to_string(round));
      const std::string before = Head("db/app");
      int st = 0;
      std::string out =
          Run("rotator --force --config " + config_, &st, std::string("SEALKEEP_TEST_KILL_AT=") + step);
      ASSERT_EQ(st, 128 + 9) << out;  // SIGKILL
      EXPECT_NE(Status("db/app").value("pending", 0), 0);
      // The next run resolves the pending rotation first: finished when the target has the
      // new value (killed after set or test), aborted when it never got it (after begin).
      out = Run("rotator --config " + config_, &st);
      if (std::string(step) == "begin") {
        EXPECT_EQ(st, 4) << out;
        EXPECT_NE(out.find("resumed_aborted"), std::string::npos) << out;
        EXPECT_EQ(Head("db/app"), before);
      } else {
        EXPECT_EQ(st, 0) << out;
        EXPECT_NE(out.find("resumed_finished"), std::string::npos) << out;
        EXPECT_NE(Head("db/app"), before);
      }
      ExpectConsistent(std::string("after a kill after ") + step);
      ++rounds;
    }
  }
  EXPECT_EQ(rounds, 9);
}

TEST_F(RotatorTest, PostgresqlDownLeavesTheRotationPendingAndTheNextRunResolvesIt) {
  pg_.Stop();
  int st = 0;
  std::string out = Run("rotation run db/app --config " + config_, &st);
  EXPECT_EQ(st, 1) << out;
  EXPECT_NE(out.find("rotation_stuck"), std::string::npos) << out;
  EXPECT_EQ(Status("db/app").value("pending", 0), 2);  // nothing decided while the target is away
  EXPECT_EQ(Head("db/app"), "initial-password");
  pg_.Start();
  out = Run("rotator --config " + config_, &st);
  EXPECT_EQ(st, 4) << out;  // the set never reached PostgreSQL: aborted, old value kept
  EXPECT_NE(out.find("resumed_aborted"), std::string::npos) << out;
  ExpectConsistent("after PostgreSQL came back");
  out = Run("rotation run db/app --config " + config_, &st);
  EXPECT_EQ(st, 0) << out;
  ExpectConsistent("after a rotation once PostgreSQL is back");
  EXPECT_NE(Head("db/app"), "initial-password");
}

TEST_F(RotatorTest, ARestoreAfterARotationKeepsTheRotatedPassword) {
  ASSERT_EQ(agent_.Call("POST", "/v1/snapshots", R"({"name":"rel-1","prefix":"db"})").status, 200);
  int st = 0;
  std::string out = Run("rotation run db/app --config " + config_, &st);
  ASSERT_EQ(st, 0) << out;
  const std::string rotated = Head("db/app");
  HttpResponse restored = agent_.Call("POST", "/v1/snapshots/rel-1/restore");
  ASSERT_EQ(restored.status, 200) << restored.body;
  bool kept = false;
  for (const auto& k : restored.Json().value("kept", json::array())) kept |= k.value("path", "") == "db/app";
  EXPECT_TRUE(kept) << restored.body;
  EXPECT_EQ(Head("db/app"), rotated);
  ExpectConsistent("after the restore");
}

}  // namespace
}  // namespace sk::testing
