// Staged rotation over HTTP against a real sealkeepd (docs/rotation.md): the routes and
// their errors, generators made in the agent, the rotation_failed alert, and expiry seen
// in /metrics (the right bucket) with the `expiring` alert raised once.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/temp_dir.h"

namespace sk::testing {
namespace {

using json = nlohmann::json;

// The value of one sample line ("name value") in a metrics text, or -1.
long long Metric(const std::string& text, const std::string& name) {
  std::size_t at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stoll(text.substr(at + name.size() + 2));
}

class RotationDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override { agent_.Start(); }
  HttpResponse Post(const std::string& target, const json& body) {
    return agent_.Call("POST", target, body.dump());
  }
  std::string Metrics() { return "\n" + agent_.Call("GET", "/metrics").body; }
  // Polls /metrics until `name` reaches `want` (the agent checks expiry within 5 s of a
  // change); returns the last value seen.
  long long WaitForMetric(const std::string& name, long long want) {
    long long v = -1;
    for (int i = 0; i < 300; ++i) {
      v = Metric(Metrics(), name);
      if (v >= want) return v;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return v;
  }

  TempDir dir_{"rotd"};
  AgentProcess agent_{dir_.path()};
};

TEST_F(RotationDaemonTest, GeneratedRotationFinishesAndEveryRouteSaysWhatIsWrong) {
  ASSERT_EQ(agent_.Call("PUT", "/v1/secrets/db/pw", R"({"value":"old"})").status, 200);
  // A retried generated begin with its idempotency key gives the first answer, not a
  // conflict (the value differs on every try; the request does not).
  {
    ASSERT_EQ(agent_.Call("PUT", "/v1/secrets/other/idem", R"({"value":"i1"})").status, 200);
    const std::string body = R"({"generator":{"type":"bytes","length":8}})";
    const std::vector<std::pair<std::string, std::string>> key = {{"Idempotency-Key", "rot-1"}};
    HttpResponse first = Http(agent_.socket(), "POST", "/v1/secrets/other/idem/rotation/begin", body, key);
    HttpResponse again = Http(agent_.socket(), "POST", "/v1/secrets/other/idem/rotation/begin", body, key);
    ASSERT_EQ(first.status, 200) << first.body;
    ASSERT_EQ(again.status, 200) << again.body;
    EXPECT_EQ(again.Json().value("txn_id", ""), first.Json().value("txn_id", "x"));
    EXPECT_EQ(agent_.Call("GET", "/v1/secrets/other/idem/rotation/status").Json().value("pending", 0), 2);
  }
  // Neither a value nor a generator; both; a bad generator; an unknown field; a bad schedule.
  EXPECT_EQ(Post("/v1/secrets/db/pw/rotation/begin", json::object()).ErrorCode(), "bad_request");
  EXPECT_EQ(Post("/v1/secrets/db/pw/rotation/begin", {{"value", "x"}, {"generator", {{"type", "bytes"}}}})
                .ErrorCode(),
            "bad_request");
  EXPECT_EQ(Post("/v1/secrets/db/pw/rotation/begin", {{"generator", {{"type", "password"}, {"length", 4}}}})
                .ErrorCode(),
            "bad_generator");
  EXPECT_EQ(Post("/v1/secrets/db/pw/rotation/begin", {{"value", "x"}, {"colour", "red"}}).ErrorCode(),
            "bad_request");
  EXPECT_EQ(Post("/v1/secrets/db/pw/rotation/begin", {{"value", "x"}, {"every", "soon"}}).ErrorCode(),
            "bad_request");
  EXPECT_EQ(Post("/v1/secrets/db/none/rotation/begin", {{"value", "x"}}).status, 404);
  EXPECT_EQ(Post("/v1/secrets/db/pw/rotation/finish", {{"version", 2}}).ErrorCode(), "no_pending_rotation");

  HttpResponse begun =
      Post("/v1/secrets/db/pw/rotation/begin",
           {{"generator", {{"type", "password"}, {"length", 24}, {"classes", {"lower", "digit"}}}},
            {"every", "30d"},
            {"cas", 1}});
  ASSERT_EQ(begun.status, 200) << begun.body;
  const std::uint64_t pending = begun.Json().value("version", 0u);
  EXPECT_EQ(pending, 2u);
  EXPECT_EQ(Post("/v1/secrets/db/pw/rotation/begin", {{"value", "x"}}).status, 409);
  EXPECT_EQ(Post("/v1/secrets/db/pw/rotation/begin", {{"value", "x"}}).ErrorCode(), "rotation_in_progress");
  EXPECT_EQ(agent_.Call("PUT", "/v1/secrets/db/pw", R"({"value":"x"})").ErrorCode(), "rotation_in_progress");

  json status = agent_.Call("GET", "/v1/secrets/db/pw/rotation/status").Json();
  EXPECT_EQ(status.value("current", 0), 1);
  EXPECT_EQ(status.value("pending", 0), 2);
  EXPECT_EQ(status.value("every_s", 0), 0);  // the schedule comes with the pending version
  std::string made = agent_.Call("GET", "/v1/secrets/db/pw?stage=pending").Json().value("value", "");
  ASSERT_EQ(made.size(), 24u);
  EXPECT_EQ(made.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789"), std::string::npos) << made;
  EXPECT_EQ(agent_.Call("GET", "/v1/secrets/db/pw?stage=soon").ErrorCode(), "bad_request");
  EXPECT_EQ(agent_.Call("GET", "/v1/secrets/db/pw?stage=pending&version=1").ErrorCode(), "bad_request");
  // The list shows the pending version; the metrics count it.
  json listed = agent_.Call("GET", "/v1/secrets?prefix=db").Json();
  ASSERT_EQ(listed["paths"].size(), 1u);
  EXPECT_EQ(listed["paths"][0].value("pending", 0), 2);
  EXPECT_EQ(Metric(Metrics(), "sealkeep_rotations_pending"), 2);  // db/pw and other/idem

  ASSERT_EQ(Post("/v1/secrets/db/pw/rotation/finish", {{"version", pending}}).status, 200);
  EXPECT_EQ(agent_.Call("GET", "/v1/secrets/db/pw").Json().value("value", ""), made);
  status = agent_.Call("GET", "/v1/secrets/db/pw/rotation/status").Json();
  EXPECT_EQ(status.value("current", 0), 2);
  EXPECT_EQ(status.value("previous", 0), 1);
  EXPECT_EQ(status["labels"].value("sealkeep.rotation", ""), "30d");
  EXPECT_EQ(status.value("every_s", 0), 30 * 86400);
  EXPECT_EQ(Metric(Metrics(), "sealkeep_rotations_pending"), 1);
  EXPECT_EQ(Metric(Metrics(), "sealkeep_rotations_due"), 0);
}

TEST_F(RotationDaemonTest, AnAbortKeepsTheHeadAndRaisesRotationFailed) {
  ASSERT_EQ(agent_.Call("PUT", "/v1/secrets/api/token", R"({"value":"t1"})").status, 200);
  ASSERT_EQ(Post("/v1/secrets/api/token/rotation/begin", {{"value", "t2"}}).status, 200);
  const std::string alert = "sealkeep_alerts_total{event=\"rotation_failed\"}";
  EXPECT_EQ(Metric(Metrics(), alert), 0);
  HttpResponse aborted =
      Post("/v1/secrets/api/token/rotation/abort", {{"version", 2}, {"reason", "the target refused it"}});
  ASSERT_EQ(aborted.status, 200) << aborted.body;
  EXPECT_EQ(Metric(Metrics(), alert), 1);
  EXPECT_EQ(agent_.Call("GET", "/v1/secrets/api/token").Json().value("value", ""), "t1");
  json versions = agent_.Call("GET", "/v1/secrets/api/token/versions").Json();
  ASSERT_EQ(versions["versions"].size(), 2u);
  EXPECT_EQ(versions["versions"][1].value("state", ""), "destroyed");
  EXPECT_EQ(agent_.Call("GET", "/v1/secrets/api/token?stage=pending").ErrorCode(), "no_such_stage");
}

// Vault's KV v2 view knows no stages: the head is its current version, whatever sits above
// it (a pending version, or an aborted one), and check-and-set counts from the head.
TEST_F(RotationDaemonTest, KvClientsSeeTheHeadNotAPendingOrAbortedVersion) {
  ASSERT_EQ(agent_.Call("POST", "/v1/secret/data/kv/pw", R"({"data":{"password":"p1"}})").status, 200);
  ASSERT_EQ(Post("/v1/secrets/kv/pw/rotation/begin", {{"value", R"({"password":"p2"})"}}).status, 200);
  json meta = agent_.Call("GET", "/v1/secret/metadata/kv/pw").Json()["data"];
  EXPECT_EQ(meta.value("current_version", 0), 1);
  EXPECT_EQ(meta["versions"].size(), 1u) << meta.dump();
  EXPECT_EQ(agent_.Call("GET", "/v1/secret/data/kv/pw").Json()["data"]["data"].value("password", ""), "p1");
  ASSERT_EQ(Post("/v1/secrets/kv/pw/rotation/abort", {{"version", 2}, {"reason", "test"}}).status, 200);
  meta = agent_.Call("GET", "/v1/secret/metadata/kv/pw").Json()["data"];
  EXPECT_EQ(meta.value("current_version", 0), 1);
  HttpResponse cas =
      agent_.Call("POST", "/v1/secret/data/kv/pw", R"({"options":{"cas":1},"data":{"password":"p3"}})");
  ASSERT_EQ(cas.status, 200) << cas.body;
  EXPECT_EQ(cas.Json()["data"].value("version", 0), 3);
  EXPECT_EQ(agent_.Call("GET", "/v1/secret/metadata/kv/pw").Json()["data"].value("current_version", 0), 3);
}

TEST_F(RotationDaemonTest, AnExpiringSecretIsInTheRightBucketAndAlertedOnce) {
  const std::string alert = "sealkeep_alerts_total{event=\"expiring\"}";
  EXPECT_EQ(Metric(Metrics(), alert), 0);
  // Three days left: within 7d and 30d, not 1d.
  ASSERT_EQ(agent_.Call("PUT", "/v1/secrets/tls/key", json{{"value", "k"}, {"expires_in", 3 * 86400}}.dump())
                .status,
            200);
  ASSERT_EQ(agent_.Call("PUT", "/v1/secrets/tls/forever", R"({"value":"f"})").status, 200);
  EXPECT_EQ(WaitForMetric(alert, 1), 1);
  std::string m = Metrics();
  EXPECT_EQ(Metric(m, "sealkeep_secrets_expiring{within=\"1d\"}"), 0);
  EXPECT_EQ(Metric(m, "sealkeep_secrets_expiring{within=\"7d\"}"), 1);
  EXPECT_EQ(Metric(m, "sealkeep_secrets_expiring{within=\"30d\"}"), 1);
  EXPECT_EQ(Metric(m, "sealkeep_secrets_expired"), 0);
  // Another change makes the agent look again (within 5 s): no second alert for that version.
  ASSERT_EQ(agent_.Call("PUT", "/v1/secrets/tls/other", R"({"value":"o"})").status, 200);
  // A version that expires within a day: one alert, for it alone.
  ASSERT_EQ(
      agent_.Call("PUT", "/v1/secrets/tls/soon", json{{"value", "s"}, {"expires_in", 3600}}.dump()).status,
      200);
  EXPECT_EQ(WaitForMetric(alert, 2), 2);
  m = Metrics();
  EXPECT_EQ(Metric(m, alert), 2);
  EXPECT_EQ(Metric(m, "sealkeep_secrets_expiring{within=\"1d\"}"), 1);
  EXPECT_EQ(Metric(m, "sealkeep_secrets_expiring{within=\"7d\"}"), 2);
}

}  // namespace
}  // namespace sk::testing
