// The fleet end to end (docs/fleet.md): three real sealkeepd processes, web-1 and both-1
// with SoftHSM2 tokens and db-1 with a swtpm, each with a [fleet] table, following a fleet
// journal on a real PostgreSQL 15 primary with a streaming standby, driven by the
// `sealkeep fleet` CLI (init, enroll, approve, put, txn, status).
//
// The hosts reach the database through a socket folder of their own whose .s.PGSQL.5432
// is a symbolic link to the serving server's socket: re-pointing it is what a failover
// manager's address change does, so the agents' configs never change.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <thread>

#include "hsm/tpm/provision.h"
#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/postgres.h"
#include "tests/fixtures/swtpm.h"
#include "tests/fixtures/temp_dir.h"

namespace sk::testing {
namespace {

// Waits for `done` to hold, checking it each time a 20 ms slice passes; false after
// `limit`. What is waited for is an observable state of the agents, never a duration.
bool WaitFor(const std::function<bool()>& done, std::chrono::seconds limit = std::chrono::seconds(60)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

class FleetAgentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteSecretFile(dir_.Join("pg-password"), pg_.superuser_password());
    ::mkdir(link_dir_.c_str(), 0755);
    PointAt(pg_);
    // The admins' side: the signing key and the schema.
    int rc = -1;
    std::string out = Cli(nullptr, "--json fleet init " + DbFlags() + " --key-file " + key_file_, &rc);
    ASSERT_EQ(rc, 0) << out;
    signer_ = nlohmann::json::parse(out, nullptr, false).value("signer_key", "");
    ASSERT_EQ(signer_.size(), 130U) << out;

    MakeAgent("web-1", "");
    MakeAgent("both-1", "");
    MakeAgent("db-1", swtpm_.Tcti());
    for (auto& [id, a] : agents_) a->Start();
    Enroll("web-1", "web");
    Enroll("both-1", "db,web");
    Enroll("db-1", "db");
  }

  void MakeAgent(const std::string& id, const std::string& tcti) {
    AgentProcess::Options o;
    o.tpm_tcti = tcti;
    o.extra_config = "[fleet]\ndb = \"host=" + link_dir_ +
                     " port=5432 dbname=postgres user=" + pg_.superuser() + "\"\npassword_file = \"" +
                     dir_.Join("pg-password") + "\"\nhost_id = \"" + id + "\"\nsigner_key = \"" + signer_ +
                     "\"\npoll_seconds = 2\n";
    auto a = std::make_unique<AgentProcess>(dir_.Join(id), o);
    if (!tcti.empty()) {
      ASSERT_TRUE(hsm::tpm::ProvisionTpm(a->TpmConfig()).ok());
    }
    agents_[id] = std::move(a);
  }

  static void WriteSecretFile(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
    ::chmod(path.c_str(), 0600);
  }
  // The hosts' database address now names `pg`.
  void PointAt(const Postgres& pg) {
    const std::string link = link_dir_ + "/.s.PGSQL.5432", tmp = link_dir_ + "/.next";
    ::unlink(tmp.c_str());
    ASSERT_EQ(::symlink((pg.socket_dir() + "/.s.PGSQL.5432").c_str(), tmp.c_str()), 0);
    ASSERT_EQ(::rename(tmp.c_str(), link.c_str()), 0);
  }
  std::string DbFlags() const {
    return "--db 'host=" + link_dir_ + " port=5432 dbname=postgres user=" + pg_.superuser() +
           "' --password-file " + dir_.Join("pg-password");
  }
  std::string Cli(AgentProcess* a, const std::string& args, int* rc, const std::string& in = "") {
    AgentProcess* via = a != nullptr ? a : agents_.empty() ? nullptr : agents_.begin()->second.get();
    if (via != nullptr) return via->Cli(args, rc, in, true);
    return RunCommandOutput("echo -n '" + in + "' | " + SealkeepBinary() + " " + args + " 2>&1", rc);
  }
  void Enroll(const std::string& id, const std::string& groups) {
    AgentProcess& a = *agents_[id];
    ASSERT_TRUE(WaitFor([&] { return !Fleet(id).value("public_key", "").empty(); }))
        << Fleet(id).dump() << "\n"
        << a.Log();
    int rc = -1;
    std::string out = Cli(&a, "fleet enroll " + DbFlags() + " --host-id " + id + " --groups " + groups, &rc);
    ASSERT_EQ(rc, 0) << out;
    out = Cli(&a, "fleet approve " + id + " " + DbFlags() + " --key-file " + key_file_, &rc);
    ASSERT_EQ(rc, 0) << out;
  }
  nlohmann::json Fleet(const std::string& id) { return agents_[id]->Call("GET", "/v1/sys/fleet").Json(); }
  // A fleet put through the CLI; the entry's seq.
  std::uint64_t Put(const std::string& path, const std::string& groups, const std::string& value) {
    int rc = -1;
    std::string out =
        Cli(nullptr,
            "--json fleet put " + path + " --groups " + groups + " " + DbFlags() + " --key-file " + key_file_,
            &rc, value);
    EXPECT_EQ(rc, 0) << out;
    return nlohmann::json::parse(out, nullptr, false).value("seq", std::uint64_t{0});
  }
  bool AllApplied(std::uint64_t seq) {
    return WaitFor([&] {
      for (auto& [id, a] : agents_) {
        if (Fleet(id).value("applied_seq", std::uint64_t{0}) < seq) return false;
      }
      return true;
    });
  }
  // The local value of fleet path `path` on `id`, or "<status>" when it has none.
  std::string Local(const std::string& id, const std::string& path) {
    HttpResponse r = agents_[id]->Call("GET", "/v1/secrets/fleet/" + path + "?encoding=base64");
    if (r.status != 200) return "<" + std::to_string(r.status) + ">";
    std::optional<Bytes> v = Base64Decode(r.Json().value("value_b64", ""));
    return v ? std::string(AsChars(*v)) : "<undecodable>";
  }

  TempDir dir_{"fleet-agents"};
  const std::string link_dir_ = dir_.Join("pg-link");
  const std::string key_file_ = dir_.Join("fleet-signing.key");
  Postgres pg_;
  TempDir tpm_dir_{"fleet-tpm"};
  Swtpm swtpm_{tpm_dir_.path()};
  std::string signer_;
  std::map<std::string, std::unique_ptr<AgentProcess>> agents_;
};

TEST_F(FleetAgentsTest, ATxnReachesTheEntitledAgentsOnlyAndTheirLocalCopiesAreTheFleets) {
  const std::uint64_t seq = Put("apps/web/token", "web", "web-secret-1");
  ASSERT_TRUE(AllApplied(seq));
  EXPECT_EQ(Local("web-1", "apps/web/token"), "web-secret-1");
  EXPECT_EQ(Local("both-1", "apps/web/token"), "web-secret-1");
  EXPECT_EQ(Local("db-1", "apps/web/token"), "<404>");

  // Several paths in one entry: all or nothing on each host.
  WriteSecretFile(dir_.Join("user"), "app");
  WriteSecretFile(dir_.Join("pass"), "db-secret-1");
  int rc = -1;
  std::string out =
      Cli(nullptr,
          "--json fleet txn --groups db --put apps/db/user=" + dir_.Join("user") +
              " --put apps/db/password=" + dir_.Join("pass") + " " + DbFlags() + " --key-file " + key_file_,
          &rc);
  ASSERT_EQ(rc, 0) << out;
  ASSERT_TRUE(AllApplied(nlohmann::json::parse(out).value("seq", std::uint64_t{0})));
  EXPECT_EQ(Local("db-1", "apps/db/password"), "db-secret-1");
  EXPECT_EQ(Local("db-1", "apps/db/user"), "app");
  EXPECT_EQ(Local("both-1", "apps/db/password"), "db-secret-1");
  EXPECT_EQ(Local("web-1", "apps/db/password"), "<404>");

  // The database holds no wrap for a host outside the group, and no value in clear.
  EXPECT_EQ(
      pg_.Query("SELECT count(*) FROM sk_fleet_wraps WHERE host_id = 'db-1' AND path = 'apps/web/token'"),
      (std::vector<std::vector<std::string>>{{"0"}}));
  EXPECT_EQ(
      pg_.Query("SELECT count(*) FROM sk_fleet_entries WHERE position(convert_to('db-secret-1', 'UTF8') "
                "in entry) > 0"),
      (std::vector<std::vector<std::string>>{{"0"}}));

  // The fleet's paths are the fleet's: a local write is refused.
  HttpResponse r =
      agents_["web-1"]->Call("PUT", "/v1/secrets/fleet/apps/web/token", R"({"value":"bG9jYWw="})");
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(r.ErrorCode(), "fleet_managed");
  EXPECT_EQ(Local("web-1", "apps/web/token"), "web-secret-1");

  // A password in --db (argv, visible to every user) is refused before anything connects.
  out = Cli(nullptr, "fleet status --db 'postgresql://admin:hunter2@localhost/x' --signer " + signer_, &rc);
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("--password-file"), std::string::npos) << out;
  EXPECT_EQ(out.find("hunter2"), std::string::npos) << out;

  // `fleet status` sees every host at the head.
  out = Cli(nullptr, "--json fleet status " + DbFlags() + " --signer " + signer_, &rc);
  ASSERT_EQ(rc, 0) << out;
  nlohmann::json status = nlohmann::json::parse(out);
  EXPECT_TRUE(status.value("verified", false));
  ASSERT_EQ(status["hosts"].size(), 3U) << out;
  for (const auto& h : status["hosts"]) {
    EXPECT_EQ(h.value("lag", std::uint64_t{99}), 0U) << h.dump();
    EXPECT_EQ(h.value("state", ""), "admitted");
  }
  EXPECT_NE(out.find("\"tpm\""), std::string::npos) << "db-1's key is in its TPM: " << out;

  // A restart keeps the anchor: nothing is applied twice, the values stay.
  agents_["db-1"]->Stop();
  agents_["db-1"]->Start();
  ASSERT_TRUE(WaitFor([&] { return Fleet("db-1").value("last_success_ms", std::uint64_t{0}) > 0; }));
  EXPECT_EQ(Fleet("db-1").value("applied_entries", std::uint64_t{99}), 0U);
  EXPECT_EQ(Local("db-1", "apps/db/password"), "db-secret-1");
}

TEST_F(FleetAgentsTest, WithPostgresDownHostsServeAndReportThenCatchUpAfterAFailover) {
  Postgres standby(pg_, Postgres::Copy::kStandby);
  pg_.MakeSynchronous();
  const std::uint64_t seq = Put("apps/web/token", "web", "before-the-failure");
  ASSERT_TRUE(AllApplied(seq));

  // The primary fails: every host keeps serving what it has and says the database is gone.
  pg_.Stop();
  for (auto& [id, a] : agents_) {
    ASSERT_TRUE(WaitFor([&] { return !Fleet(id).value("db_reachable", true); })) << Fleet(id).dump();
  }
  EXPECT_EQ(Local("web-1", "apps/web/token"), "before-the-failure");
  EXPECT_EQ(Local("both-1", "apps/web/token"), "before-the-failure");
  HttpResponse metrics = agents_["web-1"]->Call("GET", "/metrics");
  EXPECT_NE(metrics.body.find("sealkeep_fleet_db_reachable 0"), std::string::npos) << metrics.body;

  // The standby is promoted and the address moves to it: writes go on, hosts catch up.
  standby.Promote();
  PointAt(standby);
  const std::uint64_t after = Put("apps/web/token", "web", "after-the-failover");
  ASSERT_GT(after, seq);
  ASSERT_TRUE(AllApplied(after));
  EXPECT_EQ(Local("web-1", "apps/web/token"), "after-the-failover");
  EXPECT_EQ(Local("both-1", "apps/web/token"), "after-the-failover");
  for (auto& [id, a] : agents_) EXPECT_TRUE(Fleet(id).value("db_reachable", false)) << id;
}

TEST_F(FleetAgentsTest, AnOlderBackupAndAForgedEntryAreRefusedWhileHostsKeepServing) {
  Put("apps/web/token", "web", "v1");
  Postgres old_backup(pg_, Postgres::Copy::kOldBackup);
  const std::uint64_t seq = Put("apps/web/token", "web", "v2");
  ASSERT_TRUE(AllApplied(seq));

  // Someone with the database but not the key appends an entry: the last one with its seq
  // and link moved on, so that only its signature is wrong. Every host refuses it.
  const std::string next = std::to_string(seq + 1);
  ASSERT_TRUE(pg_.Exec("INSERT INTO sk_fleet_entries (seq, hash, entry) SELECT " + next +
                       ", hash, overlay(overlay(entry placing int8send(" + next +
                       ") from 6 for 8) placing (SELECT hash FROM sk_fleet_head) from 14 for 32) "
                       "FROM sk_fleet_entries WHERE seq = " +
                       std::to_string(seq) + "; UPDATE sk_fleet_head SET seq = " + next +
                       "; NOTIFY sk_fleet"));
  for (auto& [id, a] : agents_) {
    ASSERT_TRUE(WaitFor([&] { return Fleet(id)["refusal"].is_object(); })) << Fleet(id).dump();
    EXPECT_EQ(Fleet(id)["refusal"].value("reason", ""), "bad_signature") << id;
    EXPECT_EQ(Fleet(id).value("applied_seq", std::uint64_t{0}), seq) << id;
  }
  EXPECT_EQ(Local("web-1", "apps/web/token"), "v2");
  HttpResponse metrics = agents_["both-1"]->Call("GET", "/metrics");
  EXPECT_NE(metrics.body.find("sealkeep_fleet_refusing 1"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("sealkeep_alerts_total{event=\"fleet_refused\"} 1"), std::string::npos);

  // The database is put back from the older base backup: behind every host, refused.
  pg_.Stop();
  PointAt(old_backup);
  for (auto& [id, a] : agents_) {
    ASSERT_TRUE(WaitFor([&] { return Fleet(id)["refusal"].value("reason", "") == "fleet_db_behind"; }))
        << Fleet(id).dump();
    EXPECT_EQ(Fleet(id).value("applied_seq", std::uint64_t{0}), seq) << id;
  }
  EXPECT_EQ(Local("web-1", "apps/web/token"), "v2");
  EXPECT_EQ(Local("both-1", "apps/web/token"), "v2");
  int rc = -1;
  std::string out = agents_["web-1"]->Cli("fleet status", &rc, "", true);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("REFUSING:   fleet_db_behind"), std::string::npos) << out;
}

// Regrouping an agent re-issues what it may now read; a fleet snapshot restored through the
// CLI rolls every entitled agent back at once; a signing key kept as shares signs.
TEST_F(FleetAgentsTest, ARegroupedAgentReceivesWhatItMayReadAndARestoreRollsEveryAgentBack) {
  Put("apps/web/token", "web", "release-1");
  Put("apps/db/password", "db", "db-secret");
  int rc = -1;
  std::string out =
      Cli(nullptr, "fleet snapshot rel-1 --prefix apps " + DbFlags() + " --key-file " + key_file_, &rc);
  ASSERT_EQ(rc, 0) << out;

  out = Cli(nullptr, "fleet regroup db-1 --groups db,web " + DbFlags() + " --key-file " + key_file_, &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("re-issued 1 of 1 paths"), std::string::npos) << out;
  auto head = [&] { return std::stoull(pg_.Query("SELECT seq FROM sk_fleet_head")[0][0]); };
  ASSERT_TRUE(AllApplied(head()));
  EXPECT_EQ(Local("db-1", "apps/web/token"), "release-1");

  Put("apps/web/token", "web", "release-2");
  ASSERT_TRUE(AllApplied(head()));
  EXPECT_EQ(Local("web-1", "apps/web/token"), "release-2");
  out = Cli(nullptr, "--json fleet restore rel-1 " + DbFlags() + " --key-file " + key_file_, &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(nlohmann::json::parse(out).value("put", 0), 1) << out;
  ASSERT_TRUE(AllApplied(head()));
  for (const char* id : {"web-1", "both-1", "db-1"})
    EXPECT_EQ(Local(id, "apps/web/token"), "release-1") << id;
  EXPECT_EQ(Local("db-1", "apps/db/password"), "db-secret");

  // Another fleet whose signing key is three shares, any two of which sign.
  ASSERT_TRUE(pg_.Exec("CREATE DATABASE shared_fleet"));
  const std::string other = "--db 'host=" + link_dir_ +
                            " port=5432 dbname=shared_fleet user=" + pg_.superuser() + "' --password-file " +
                            dir_.Join("pg-password");
  out = Cli(nullptr, "--json fleet init --shares 3 --threshold 2 " + other, &rc);
  ASSERT_EQ(rc, 0) << out;
  nlohmann::json init = nlohmann::json::parse(out);
  ASSERT_EQ(init["share_lines"].size(), 3U) << out;
  const std::string shares = dir_.Join("two-shares");
  WriteSecretFile(shares, init["share_lines"][0].get<std::string>() + "\n# a comment\n" +
                              init["share_lines"][2].get<std::string>() + "\n");
  out = Cli(nullptr, "fleet snapshot empty " + other + " --shares-file " + shares, &rc);
  EXPECT_EQ(rc, 0) << out;
  out = Cli(nullptr, "fleet restore empty " + other + " --shares-file " + shares, &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("nothing differs"), std::string::npos) << out;
  WriteSecretFile(shares, init["share_lines"][1].get<std::string>() + "\n");
  out = Cli(nullptr, "fleet snapshot one-share " + other + " --shares-file " + shares, &rc);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("too_few_shares"), std::string::npos) << out;
  // This fleet's key is not the other's: its writer refuses to extend a chain it cannot verify.
  out = Cli(nullptr, "fleet snapshot theirs " + DbFlags() + " --shares-file " + dir_.Join("two-shares"), &rc);
  EXPECT_NE(rc, 0) << out;
}

}  // namespace
}  // namespace sk::testing
