// The audit trail and the alerts of a real daemon beyond the happy path: requests made
// while it is sealed (a wrong PIN, a replayed store) are on record once it unseals, in
// order, with their own times and outcomes; unseals run while other requests keep being
// answered; and the alert counters in /metrics move on denials, refused rollbacks and
// tampering that a verification finds.
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/temp_dir.h"
#include "tests/fixtures/test_user.h"

namespace sk::testing {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string Body(const json& j) { return j.dump(); }

std::size_t IndexOf(const std::vector<json>& records, const std::string& route, std::size_t from = 0) {
  for (std::size_t i = from; i < records.size(); ++i) {
    if (records[i]["route"] == route) return i;
  }
  return records.size();
}

// The value of one sample in Prometheus text ("name{labels} value"); -1 when absent.
double Metric(const std::string& text, const std::string& sample) {
  std::size_t at = text.find("\n" + sample + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + sample.size() + 2));
}

double Alerts(const AgentProcess& agent, const std::string& event) {
  return Metric(agent.Call("GET", "/metrics").body, "sealkeep_alerts_total{event=\"" + event + "\"}");
}

// An agent with kRootIsAdminPolicy (root may do everything, nobody nothing) whose socket
// nobody can reach, so nobody's requests are denied by the policy, not by file modes.
class AuditDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "runs clients as nobody: run as root";
    AgentProcess::Options o;
    o.policy = true;
    agent_ = std::make_unique<AgentProcess>(dir_.path(), o);
    WriteFile(agent_->state_dir() + "/policy.toml", kRootIsAdminPolicy, 0640);
    passwd* pw = ::getpwnam("nobody");
    ASSERT_NE(pw, nullptr);
    nobody_uid_ = pw->pw_uid;
    nobody_gid_ = pw->pw_gid;
    agent_->LetUserConnect("nobody", dir_.path());
  }
  // Runs `fn` as nobody; its return value comes back.
  int AsNobody(const std::function<int()>& fn) {
    return RunInChild([this] { return BecomeUid(nobody_uid_, nobody_gid_); }, fn);
  }
  std::string audit_dir() const { return agent_->state_dir() + "/audit"; }

  TempDir dir_{"audit-daemon"};
  std::unique_ptr<AgentProcess> agent_;
  uid_t nobody_uid_ = 0;
  gid_t nobody_gid_ = 0;
};

TEST_F(AuditDaemonTest, RequestsMadeWhileSealedAreOnRecordOnceItUnseals) {
  std::string pin = ReadFile(agent_->token().pin_file());
  WriteFile(agent_->token().pin_file(), "000000");
  agent_->Start();
  ASSERT_EQ(agent_->Call("GET", "/v1/health").Json()["reason"], "pin_incorrect");
  std::string sock = agent_->socket();
  EXPECT_EQ(AsNobody([&] { return Http(sock, "GET", "/v1/secrets/apps/db").status == 403 ? 0 : 1; }), 0);
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/apps/db").ErrorCode(), "pin_incorrect");
  EXPECT_EQ(agent_->Call("POST", "/v1/sys/unseal").ErrorCode(), "pin_incorrect");
  auto metrics = agent_->Call("GET", "/metrics").body;
  EXPECT_EQ(Metric(metrics, "sealkeep_audit_sealed_queued"), 4) << metrics;
  EXPECT_EQ(Metric(metrics, "sealkeep_audit_sealed_dropped"), 0) << metrics;

  WriteFile(agent_->token().pin_file(), pin);
  auto unseal = agent_->Call("POST", "/v1/sys/unseal");
  ASSERT_EQ(unseal.status, 200) << unseal.body;
  // Written before the unseal was answered: on disk now, without waiting for a sync tick.
  std::vector<json> records = ReadAuditRecords(audit_dir());
  ASSERT_EQ(agent_->Call("GET", "/v1/secrets/after").status, 404);

  std::size_t ev = IndexOf(records, "audit.sealed");
  ASSERT_LT(ev, records.size()) << "no audit.sealed event";
  EXPECT_EQ(records[ev]["outcome"], "event");
  EXPECT_NE(records[ev]["reason"].get<std::string>().find("sealed_records: 5 records"), std::string::npos)
      << records[ev].dump();
  EXPECT_NE(records[ev]["reason"].get<std::string>().find("0 more were dropped"), std::string::npos);
  ASSERT_EQ(records.size(), ev + 6) << "the five records follow the event, and nothing else yet";
  struct Want {
    const char* route;
    std::uint32_t uid;
    const char* outcome;
    const char* reason;  // a part of it
  };
  const Want want[] = {
      {"GET secret.get", nobody_uid_, "denied", "no_binding"},
      {"GET secret.get", 0, "failed", "pin_incorrect"},
      {"POST sys.unseal", 0, "allowed", "allowed"},
      {"POST sys.unseal", 0, "failed", "pin_incorrect"},
      {"POST sys.unseal", 0, "allowed", "allowed"},
  };
  for (std::size_t i = 0; i < 5; ++i) {
    const json& r = records[ev + 1 + i];
    EXPECT_EQ(r["route"], want[i].route) << r.dump();
    EXPECT_EQ(r["uid"], want[i].uid) << r.dump();
    EXPECT_EQ(r["outcome"], want[i].outcome) << r.dump();
    EXPECT_NE(r["reason"].get<std::string>().find(want[i].reason), std::string::npos) << r.dump();
    EXPECT_LT(r["time"].get<std::string>(), records[ev]["time"].get<std::string>())
        << "a record keeps the time of its request: " << r.dump();
  }
  EXPECT_EQ(records[ev + 1]["path"], "apps/db");
  EXPECT_EQ(IndexOf(records, "GET health"), records.size()) << "health checks are not audited";

  // The request after the unseal comes after them, and the whole chain verifies.
  int status = -1;
  std::string out = agent_->Cli("audit verify", &status, "", true);
  EXPECT_EQ(status, 0) << out;
  records = ReadAuditRecords(audit_dir());
  ASSERT_GT(records.size(), ev + 6);
  EXPECT_EQ(records[ev + 6]["path"], "after");
  EXPECT_EQ(agent_->Log().find(pin), std::string::npos);
}

TEST_F(AuditDaemonTest, ARecoverFromAReplayedStoreIsOnRecordWithTheRequestsBeforeIt) {
  agent_->Start();
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/r/a", Body({{"value", "one"}})).status, 200);
  ASSERT_EQ(agent_->Stop(), 0);
  fs::create_directories(dir_.Join("copy"));
  const std::vector<std::string> files = {"store.db", "store.db-wal", "store.db-shm"};
  for (const std::string& f : files) {
    if (fs::exists(agent_->state_dir() + "/" + f))
      fs::copy_file(agent_->state_dir() + "/" + f, dir_.Join("copy/") + f);
  }
  agent_->Start();
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/r/a", Body({{"value", "two"}})).status, 200);
  ASSERT_EQ(agent_->Call("POST", "/v1/secrets/r/a/rollback", Body({{"to", 1}})).status, 200);
  ASSERT_EQ(agent_->Stop(), 0);
  for (const std::string& f : files) {
    fs::remove(agent_->state_dir() + "/" + f);
    if (fs::exists(dir_.Join("copy/") + f))
      fs::copy_file(dir_.Join("copy/") + f, agent_->state_dir() + "/" + f);
  }
  agent_->Start();
  ASSERT_EQ(agent_->Call("GET", "/v1/health").Json()["reason"], "replay_detected");
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/r/a").ErrorCode(), "replay_detected");
  EXPECT_EQ(agent_->Call("POST", "/v1/sys/unseal").ErrorCode(), "replay_detected");
  auto recovered = agent_->Call("POST", "/v1/sys/recover", Body({{"accept_rollback", true}}));
  ASSERT_EQ(recovered.status, 200) << recovered.body;

  std::vector<json> records = ReadAuditRecords(audit_dir());
  std::size_t ev = IndexOf(records, "audit.sealed");
  ASSERT_EQ(records.size(), ev + 5) << "the event and four records";
  EXPECT_EQ(records[ev + 1]["route"], "GET secret.get");
  EXPECT_EQ(records[ev + 1]["reason"], "replay_detected");
  EXPECT_EQ(records[ev + 3]["route"], "POST sys.unseal");
  EXPECT_EQ(records[ev + 3]["outcome"], "failed");
  EXPECT_EQ(records[ev + 4]["route"], "POST sys.recover");
  EXPECT_EQ(records[ev + 4]["outcome"], "allowed");
  EXPECT_EQ(records[ev + 4]["uid"], 0);
  EXPECT_GE(Alerts(*agent_, "replay_detected"), 2) << "at start and on the refused unseal";
  int status = -1;
  std::string out = agent_->Cli("audit verify", &status, "", true);
  EXPECT_EQ(status, 0) << out;
}

// The last segment of the audit log and the offset of the line holding `path`'s change
// record; npos when there is none.
std::pair<std::string, std::size_t> ChangeRecordLine(const std::string& audit_dir, const std::string& path) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(audit_dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("audit-", 0) == 0) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) return {"", std::string::npos};
  const std::string text = ReadFile(files.back());
  return {files.back(), text.find("\"path\":\"" + path + "\",\"outcome\":\"allowed\"")};
}

std::size_t CountChangeRecords(const std::vector<json>& records, const std::string& path) {
  return static_cast<std::size_t>(std::count_if(records.begin(), records.end(), [&](const json& r) {
    return r["route"] == "PUT secret.put" && r["path"] == path && r["outcome"] == "allowed";
  }));
}

// A change's "allowed" record goes to the log unsynced and is kept in the change's own store
// transaction until the log is synced (docs/audit.md). Here the agent is killed right after
// the answer and the log loses its unsynced tail, as a power failure would make it: the
// restarted agent writes the record again from the store, after an event saying so, once.
TEST_F(AuditDaemonTest, AChangeRecordTheLogLostComesBackFromTheStoreOnceItRestarts) {
  agent_->Start();
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/r/before", Body({{"value", "zero"}})).status, 200);
  auto put = agent_->Call("PUT", "/v1/secrets/r/kept", Body({{"value", "one"}}));
  ASSERT_EQ(put.status, 200) << put.body;
  const std::string request_id = put.headers["x-request-id"];
  ASSERT_FALSE(request_id.empty());
  ASSERT_EQ(agent_->Stop(SIGKILL), 128 + SIGKILL);
  // The log's checkpoint is the one written at open (the next is due after 10 s), so the
  // log may end anywhere after it: cut it before the kept change's record.
  auto [segment, at] = ChangeRecordLine(audit_dir(), "r/kept");
  ASSERT_NE(at, std::string::npos) << "the record was written (unsynced) before the answer";
  const std::string text = ReadFile(segment);
  const std::size_t line_start = text.rfind('\n', at) + 1;
  fs::resize_file(segment, line_start);
  ASSERT_EQ(CountChangeRecords(ReadAuditRecords(audit_dir()), "r/kept"), 0u);

  agent_->Start();
  ASSERT_EQ(agent_->Call("GET", "/v1/health").status, 200) << agent_->Log();
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/r/kept").Json()["value"], "one");
  std::vector<json> records = ReadAuditRecords(audit_dir());
  const std::size_t ev = IndexOf(records, "audit.settle");
  ASSERT_LT(ev + 1, records.size()) << "the event, then the record it restores";
  EXPECT_EQ(records[ev]["outcome"], "event");
  EXPECT_NE(records[ev]["reason"].get<std::string>().find("change_records_restored: 1 "), std::string::npos);
  EXPECT_EQ(records[ev + 1]["route"], "PUT secret.put");
  EXPECT_EQ(records[ev + 1]["path"], "r/kept");
  EXPECT_EQ(records[ev + 1]["outcome"], "allowed");
  EXPECT_EQ(records[ev + 1]["request_id"], request_id);
  EXPECT_EQ(CountChangeRecords(records, "r/kept"), 1u);
  EXPECT_EQ(CountChangeRecords(records, "r/before"), 1u) << "the change whose record the log kept";
  int status = -1;
  std::string out = agent_->Cli("audit verify", &status, "", true);
  EXPECT_EQ(status, 0) << out;

  // Settled once: another crash and start writes nothing again.
  ASSERT_EQ(agent_->Stop(SIGKILL), 128 + SIGKILL);
  agent_->Start();
  ASSERT_EQ(agent_->Call("GET", "/v1/health").status, 200);
  records = ReadAuditRecords(audit_dir());
  EXPECT_EQ(CountChangeRecords(records, "r/kept"), 1u);
  EXPECT_EQ(IndexOf(records, "audit.settle", ev + 1), records.size()) << "no second settle";
}

// Without a loss, a crash after the answer leaves each change's record in the log exactly
// once: the store's copy is dropped at the next start, not written again.
TEST_F(AuditDaemonTest, AChangeRecordTheLogKeptIsNotWrittenTwiceAfterACrash) {
  agent_->Start();
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/r/a", Body({{"value", std::to_string(i)}})).status, 200);
  }
  ASSERT_EQ(agent_->Stop(SIGKILL), 128 + SIGKILL);
  agent_->Start();
  ASSERT_EQ(agent_->Call("GET", "/v1/health").status, 200);
  std::vector<json> records = ReadAuditRecords(audit_dir());
  EXPECT_EQ(CountChangeRecords(records, "r/a"), 5u);
  EXPECT_EQ(IndexOf(records, "audit.settle"), records.size());
  int status = -1;
  std::string out = agent_->Cli("audit verify", &status, "", true);
  EXPECT_EQ(status, 0) << out;
}

// How many change records the store keeps for the log; -1 when it cannot be read.
int KeptChangeRecords(const std::string& db_path) {
  sqlite3* db = nullptr;
  int count = -1;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM audit_outbox", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      count = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return count;
}

// The store keeps a change's record only until the log is synced past it (the agent syncs
// the log every second): later commits drop the synced ones, so the table stays small.
TEST_F(AuditDaemonTest, KeptChangeRecordsLeaveTheStoreOnceTheLogIsSynced) {
  agent_->Start();
  const std::string db = agent_->state_dir() + "/store.db";
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/r/many", Body({{"value", std::to_string(i)}})).status, 200);
  }
  EXPECT_GE(KeptChangeRecords(db), 1);
  // Each commit drops what the last sync covered and keeps its own record: once a sync has
  // come, one is left. Waits on that (a sync a second), with a generous deadline.
  int kept = -1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/r/one", Body({{"value", "x"}})).status, 200);
    kept = KeptChangeRecords(db);
    if (kept == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(kept, 1);
  EXPECT_EQ(CountChangeRecords(ReadAuditRecords(audit_dir()), "r/many"), 20u);
}

// Copies database `from` into `to` with SQLite's backup API: a consistent copy of a live
// store, and a way to put an old copy back under a running agent, as a replay would.
void CopyDatabase(const std::string& from, const std::string& to) {
  sqlite3* src = nullptr;
  sqlite3* dst = nullptr;
  ASSERT_EQ(sqlite3_open(from.c_str(), &src), SQLITE_OK);
  ASSERT_EQ(sqlite3_open(to.c_str(), &dst), SQLITE_OK);
  sqlite3_busy_timeout(src, 5000);
  sqlite3_busy_timeout(dst, 5000);
  sqlite3_backup* b = sqlite3_backup_init(dst, "main", src, "main");
  ASSERT_NE(b, nullptr) << sqlite3_errmsg(dst);
  EXPECT_EQ(sqlite3_backup_step(b, -1), SQLITE_DONE) << sqlite3_errmsg(dst);
  EXPECT_EQ(sqlite3_backup_finish(b), SQLITE_OK);
  sqlite3_close(src);
  sqlite3_close(dst);
}

TEST_F(AuditDaemonTest, AStoreReplayedUnderARunningAgentSealsItRaisesTheAlertAndRecoverTakesIt) {
  agent_->Start();
  const std::string live = agent_->state_dir() + "/store.db";
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/s/a", Body({{"value", "one"}})).status, 200);
  CopyDatabase(live, dir_.Join("t1.db"));
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/s/a", Body({{"value", "two"}})).status, 200);
  // A rollback moves the hardware anchor in either mode, past the copy's head.
  ASSERT_EQ(agent_->Call("POST", "/v1/secrets/s/a/rollback", Body({{"to", 1}})).status, 200);
  ASSERT_EQ(Alerts(*agent_, "replay_detected"), 0);
  // Behind the running agent's back, the old copy goes back in place.
  CopyDatabase(dir_.Join("t1.db"), live);
  auto refused = agent_->Call("PUT", "/v1/secrets/s/b", Body({{"value", "x"}}));
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(refused.ErrorCode(), "replay_detected") << refused.body;
  // The agent seals itself with that reason, as start-up would have: health, metrics and
  // the alert counter all say so (at once from the API, or within a tick).
  json health;
  for (int i = 0; i < 50; ++i) {
    health = agent_->Call("GET", "/v1/health").Json();
    if (health["reason"] == "replay_detected") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(health["status"], "sealed") << health.dump();
  EXPECT_EQ(health["reason"], "replay_detected") << health.dump();
  std::string metrics = agent_->Call("GET", "/metrics").body;
  EXPECT_EQ(Metric(metrics, "sealkeep_sealed"), 1) << metrics;
  EXPECT_GE(Alerts(*agent_, "replay_detected"), 1);
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/s/a").ErrorCode(), "replay_detected");
  // Unsealing runs start-up verification, which refuses the old copy; recover accepts it.
  EXPECT_EQ(agent_->Call("POST", "/v1/sys/unseal").ErrorCode(), "replay_detected");
  auto recovered = agent_->Call("POST", "/v1/sys/recover", Body({{"accept_rollback", true}}));
  ASSERT_EQ(recovered.status, 200) << recovered.body;
  EXPECT_EQ(agent_->Call("GET", "/v1/health").Json()["status"], "unsealed");
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/s/a").Json()["value"], "one") << "the copy's state";
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/s/b", Body({{"value", "after"}})).status, 200);
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/s/b").Json()["value"], "after");
  int status = -1;
  std::string out = agent_->Cli("audit verify", &status, "", true);
  EXPECT_EQ(status, 0) << out;
}

TEST_F(AuditDaemonTest, HealthKeepsAnsweringWhileUnsealsRun) {
  agent_->Start();
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/u/a", Body({{"value", "kept"}})).status, 200);
  std::atomic<bool> stop{false};
  std::atomic<int> answered{0}, unanswered{0};
  std::thread health([&] {
    while (!stop) {
      int s = agent_->Call("GET", "/v1/health").status;
      (s == 200 || s == 503 ? answered : unanswered)++;
    }
  });
  for (int round = 0; round < 4; ++round) {
    ASSERT_EQ(agent_->Call("POST", "/v1/sys/seal").status, 200);
    // Two unseals at once: both succeed, one of them opens the service.
    HttpResponse a, b;
    std::thread other([&] { b = agent_->Call("POST", "/v1/sys/unseal"); });
    a = agent_->Call("POST", "/v1/sys/unseal");
    other.join();
    EXPECT_EQ(a.status, 200) << a.body;
    EXPECT_EQ(b.status, 200) << b.body;
    EXPECT_EQ(agent_->Call("GET", "/v1/secrets/u/a").Json()["value"], "kept");
  }
  stop = true;
  health.join();
  EXPECT_EQ(unanswered, 0);
  EXPECT_GT(answered, 0);
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/u/a", Body({{"value", "again"}})).status, 200);
  auto v = agent_->Call("GET", "/v1/sys/audit/verify");
  EXPECT_TRUE(v.Json()["ok"].get<bool>()) << v.body;
}

TEST_F(AuditDaemonTest, AlertCountersRiseOnDenialsRefusedRollbacksAndFoundTampering) {
  agent_->Start();
  ASSERT_EQ(Alerts(*agent_, "denied"), 0);
  std::string sock = agent_->socket();
  EXPECT_EQ(AsNobody([&] { return Http(sock, "GET", "/v1/secrets/t/x").status == 403 ? 0 : 1; }), 0);
  EXPECT_EQ(Alerts(*agent_, "denied"), 1);

  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/t/x", Body({{"value", "v1"}})).status, 200);
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/t/x", Body({{"value", "v2"}})).status, 200);
  ASSERT_EQ(agent_->Call("POST", "/v1/secrets/t/x/destroy", Body({{"version", 1}})).status, 200);
  EXPECT_EQ(Alerts(*agent_, "rollback_refused"), 0);
  auto refused = agent_->Call("POST", "/v1/secrets/t/x/rollback", Body({{"to", 1}}));
  EXPECT_EQ(refused.status, 409);
  EXPECT_EQ(refused.ErrorCode(), "destroyed");
  EXPECT_EQ(Alerts(*agent_, "rollback_refused"), 1);

  // A clean verification raises nothing; one that finds an edited record does.
  ASSERT_TRUE(agent_->Call("GET", "/v1/sys/audit/verify").Json()["ok"].get<bool>());
  EXPECT_EQ(Alerts(*agent_, "tamper_detected"), 0);
  const std::string segment = audit_dir() + "/audit-00000001.log";
  std::string text = ReadFile(segment);
  std::size_t at = text.find("\"request_id\":\"");
  ASSERT_NE(at, std::string::npos);
  at += 14;
  {
    std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(at));
    f.put(text[at] == 'Z' ? 'Y' : 'Z');  // same length: only the MAC can tell
  }
  auto v = agent_->Call("GET", "/v1/sys/audit/verify");
  ASSERT_EQ(v.status, 200) << v.body;
  EXPECT_FALSE(v.Json()["ok"].get<bool>()) << v.body;
  EXPECT_EQ(v.Json()["problem"]["kind"], "bad_mac") << v.body;
  EXPECT_EQ(Alerts(*agent_, "tamper_detected"), 1);
}

// The alert follows the op that failed, not the words of its message: a txn whose put to a
// path named rollback-key fails its cas is no refused rollback; a txn whose rollback op is
// refused is one, even when another op of it is a put.
TEST_F(AuditDaemonTest, OnlyARefusedRollbackOpRaisesTheRollbackAlert) {
  agent_->Start();
  for (const char* v : {"r1", "r2"}) {
    ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/ci/rollback-key", Body({{"value", v}})).status, 200);
  }
  auto stale = agent_->Call(
      "POST", "/v1/txn",
      Body({{"ops", nlohmann::json::array(
                        {{{"op", "put"}, {"path", "ci/rollback-key"}, {"value", "x"}, {"cas", 1}}})}}));
  ASSERT_EQ(stale.status, 409) << stale.body;
  ASSERT_EQ(stale.ErrorCode(), "cas_mismatch");
  ASSERT_NE(stale.body.find("rollback"), std::string::npos) << "the message names the path";
  EXPECT_EQ(Alerts(*agent_, "rollback_refused"), 0) << "a put's cas_mismatch is not a refused rollback";

  ASSERT_EQ(agent_->Call("POST", "/v1/secrets/ci/rollback-key/destroy", Body({{"version", 1}})).status, 200);
  auto refused = agent_->Call(
      "POST", "/v1/txn",
      Body({{"ops", nlohmann::json::array({{{"op", "put"}, {"path", "ci/other"}, {"value", "y"}},
                                           {{"op", "rollback"}, {"path", "ci/rollback-key"}, {"to", 1}}})}}));
  ASSERT_EQ(refused.status, 409) << refused.body;
  EXPECT_EQ(refused.ErrorCode(), "destroyed");
  EXPECT_EQ(Alerts(*agent_, "rollback_refused"), 1);
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/ci/other").status, 404) << "and nothing of the txn applied";
}

TEST_F(AuditDaemonTest, AJournalVerificationThatFindsTamperingRaisesAnAlert) {
  agent_->Start();
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/j/x", Body({{"value", "genuine"}})).status, 200);
  ASSERT_EQ(agent_->Stop(), 0);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((agent_->state_dir() + "/store.db").c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(
        sqlite3_exec(db, "UPDATE versions SET ciphertext = zeroblob(length(ciphertext)) WHERE path = 'j/x'",
                     nullptr, nullptr, &err),
        SQLITE_OK)
        << (err ? err : "");
    sqlite3_free(err);
    EXPECT_EQ(sqlite3_changes(db), 1);
    sqlite3_close(db);
  }
  agent_->Start();
  ASSERT_EQ(agent_->Call("GET", "/v1/health").status, 200) << agent_->Log();
  EXPECT_EQ(Alerts(*agent_, "tamper_detected"), 0);
  auto v = agent_->Call("GET", "/v1/sys/journal/verify");
  ASSERT_EQ(v.status, 200) << v.body;
  EXPECT_FALSE(v.Json()["ok"].get<bool>()) << v.body;
  EXPECT_EQ(Alerts(*agent_, "tamper_detected"), 1);
  // The verification's own record says what it found.
  ASSERT_TRUE(agent_->Call("GET", "/v1/sys/audit/verify").Json()["ok"].get<bool>());
  std::vector<json> records = ReadAuditRecords(audit_dir());
  std::size_t i = IndexOf(records, "GET sys.journal.verify");
  ASSERT_LT(i, records.size());
  EXPECT_EQ(records[i]["reason"].get<std::string>().rfind("tamper_detected: ", 0), 0u) << records[i].dump();
}

}  // namespace
}  // namespace sk::testing
