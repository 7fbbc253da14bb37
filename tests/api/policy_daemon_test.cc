// Policy and audit through the real daemon: clients under several uids (root, nobody, a
// uid with no passwd entry, a test user made for the test with its own groups) and in a
// unit-shaped cgroup, allow/deny per capability and glob form, bindings by uid, user,
// gid, group (a supplementary one), unit and exe, label conditions, default deny,
// 404/403 alike without `list`, a SIGHUP reload with a broken file keeping the old
// policy, the audit chain after a mixed workload, txn records that name their paths, and
// an unwritable audit log failing changes closed.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/temp_dir.h"
#include "tests/fixtures/test_user.h"

namespace sk::testing {
namespace {

using nlohmann::json;

constexpr uid_t kNobody = 65534;
constexpr uid_t kStranger = 4242;  // no passwd entry
constexpr gid_t kNogroup = 65534;

const char* kPolicy = R"(version = 1

[roles.admin]
grants = [{ capabilities = ["read", "list", "write", "delete", "destroy", "rollback", "snapshot", "admin"], paths = ["**"] }]

[roles.web-reader]
grants = [{ capabilities = ["read"], paths = ["apps/web/*"] }]

[roles.shared-lister]
grants = [{ capabilities = ["read", "list"], paths = ["shared/**"] }]

[roles.team-writer]
grants = [{ capabilities = ["write", "delete", "rollback"], paths = ["team/**"] },
          { capabilities = ["destroy", "snapshot"], paths = ["team/scratch"] }]

[roles.dev-reader]
grants = [{ capabilities = ["read"], paths = ["labeled/**"] }]

[[bindings]]
name = "root"
roles = ["admin"]
match = { uid = 0 }

[[bindings]]
name = "web"
roles = ["web-reader"]
match = { unit = "web.service" }

[[bindings]]
name = "nobody"
roles = ["shared-lister"]
match = { uid = 65534 }

[[bindings]]
name = "stranger"
roles = ["team-writer"]
match = { uid = 4242 }

[[bindings]]
name = "stranger-dev"
roles = ["dev-reader"]
match = { uid = 4242 }
when.labels = { env = ["dev"] }

[roles.user-web]
grants = [{ capabilities = ["read"], paths = ["apps/userweb/*"] }]

[[bindings]]
name = "nobody-user-web"
roles = ["user-web"]
match = { uid = 65534, user_unit = "web.service" }
)";

std::string Body(const json& j) { return j.dump(); }

using Outcome = ClientAnswer;

using Calls = ClientCalls;

std::vector<Outcome> AsUser(uid_t uid, gid_t gid, const std::string& cgroup_dir, const std::string& sock,
                            const Calls& calls) {
  return AsClient([uid, gid] { return BecomeUid(uid, gid); }, cgroup_dir, sock, calls);
}

// The paths of a listing answer, in order.
std::vector<std::string> ListedPaths(const Outcome& o) {
  std::vector<std::string> out;
  json j = o.Json();
  if (j.is_object() && j.contains("paths"))
    for (const auto& p : j["paths"]) out.push_back(p["path"].get<std::string>());
  return out;
}

// Waits (up to 10 s) until the agent's log has `count` lines holding `what`.
bool WaitForLog(const AgentProcess& agent, const std::string& what, int count) {
  for (int i = 0; i < 500; ++i) {
    std::string log = agent.Log();
    int seen = 0;
    for (std::size_t at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) ++seen;
    if (seen >= count) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

class PolicyDaemonTest : public ::testing::Test {
 protected:
  virtual std::string PolicyText() { return kPolicy; }
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "runs clients under other uids: run as root";
    AgentProcess::Options o;
    o.policy = true;
    agent_ = std::make_unique<AgentProcess>(dir_.path(), o);
    WriteFile(agent_->state_dir() + "/policy.toml", PolicyText(), 0640);
    // nogroup may reach the socket; the agent alone decides what each caller may do.
    std::string config = ReadFile(agent_->config_path());
    config.replace(config.find("io_threads"), 0, "socket_group = \"nogroup\"\n");
    WriteFile(agent_->config_path(), config);
    for (const std::string& d : {dir_.path(), agent_->state_dir(), agent_->state_dir() + "/run"})
      ::chmod(d.c_str(), 0711);
    agent_->Start();
    for (const char* p : {"apps/web/db", "apps/web/deep/key", "apps/api/db", "shared/a", "team/x",
                          "team/scratch", "private/root"}) {
      ASSERT_EQ(agent_->Call("PUT", std::string("/v1/secrets/") + p, Body({{"value", "v"}})).status, 200);
    }
    ASSERT_EQ(
        agent_->Call("PUT", "/v1/secrets/labeled/dev", Body({{"value", "d"}, {"labels", {{"env", "dev"}}}}))
            .status,
        200);
    ASSERT_EQ(
        agent_->Call("PUT", "/v1/secrets/labeled/prod", Body({{"value", "p"}, {"labels", {{"env", "prod"}}}}))
            .status,
        200);
  }
  void TearDown() override {
    if (!mounted_.empty()) {
      agent_->Stop();
      ::umount2(mounted_.c_str(), MNT_DETACH);
    }
    for (auto it = cgroups_.rbegin(); it != cgroups_.rend(); ++it) ::rmdir(it->c_str());
  }
  // A cgroup at `rel` below a slice of this test's own in the host's name=systemd
  // hierarchy ("web.service", "user-65534.slice/user@65534.service/app.slice/web.service").
  std::string MakeCgroup(const std::string& rel) {
    std::string at = "/sys/fs/cgroup/systemd/sk-test-" + std::to_string(::getpid()) + ".slice";
    if (::mkdir(at.c_str(), 0755) == 0) cgroups_.push_back(at);
    for (const auto& part : std::filesystem::path(rel)) {
      at += "/" + part.string();
      if (::mkdir(at.c_str(), 0755) == 0) cgroups_.push_back(at);
    }
    EXPECT_TRUE(std::filesystem::is_directory(at)) << "cannot make the cgroup " << at;
    return at;
  }
  std::string MakeUnitCgroup() { return MakeCgroup("web.service"); }
  std::vector<std::string> cgroups_;
  TempDir dir_{"policyd"};
  std::unique_ptr<AgentProcess> agent_;
  std::string mounted_;
};

TEST_F(PolicyDaemonTest, EachCallerGetsExactlyWhatThePolicyGrants) {
  std::string s = agent_->socket();
  auto nobody = AsUser(kNobody, kNogroup, "", s,
                       {{"GET", "/v1/secrets/shared/a", ""},                      // read, ** glob
                        {"GET", "/v1/secrets?prefix=", ""},                       // list shows only shared/**
                        {"PUT", "/v1/secrets/shared/a", Body({{"value", "x"}})},  // no write
                        {"GET", "/v1/secrets/apps/web/db", ""},                   // not granted
                        {"GET", "/v1/secrets/shared/missing", ""},  // has list: a missing path is 404
                        {"POST", "/v1/sys/seal", ""}});             // no admin
  ASSERT_EQ(nobody.size(), 6u);
  EXPECT_EQ(nobody[0].status, 200);
  EXPECT_EQ(nobody[1].status, 200);
  EXPECT_EQ(ListedPaths(nobody[1]), std::vector<std::string>{"shared/a"})
      << "the listing shows exactly what nobody may list: " << nobody[1].body;
  EXPECT_EQ(nobody[2].status, 403);
  EXPECT_EQ(nobody[3].status, 403);
  EXPECT_EQ(nobody[4].status, 404);
  EXPECT_EQ(nobody[5].status, 403);

  auto stranger =
      AsUser(kStranger, kNogroup, "", s,
             {{"PUT", "/v1/secrets/team/new", Body({{"value", "x"}})},         // write on team/**
              {"GET", "/v1/secrets/team/x", ""},                               // no read granted
              {"GET", "/v1/secrets/team/nothing-here", ""},                    // no list: same answer
              {"DELETE", "/v1/secrets/team/x", ""},                            // delete
              {"POST", "/v1/secrets/team/new/rollback", Body({{"to", 1}})},    // rollback
              {"POST", "/v1/secrets/team/x/destroy", Body({{"version", 1}})},  // destroy only on scratch
              {"POST", "/v1/secrets/team/scratch/destroy", Body({{"version", 1}})},
              {"GET", "/v1/secrets/labeled/dev", ""},     // label condition holds
              {"GET", "/v1/secrets/labeled/prod", ""},    // label condition fails
              {"GET", "/v1/secrets/labeled/absent", ""},  // unknown labels: denied
              {"POST", "/v1/txn",
               Body({{"ops", json::array({{{"op", "put"}, {"path", "team/t1"}, {"value", "1"}},
                                          {{"op", "put"}, {"path", "private/x"}, {"value", "1"}}})}})}});
  ASSERT_EQ(stranger.size(), 11u);
  EXPECT_EQ(stranger[0].status, 200);
  EXPECT_EQ(stranger[1].status, 403);
  EXPECT_EQ(stranger[2].status, 403);
  EXPECT_EQ(stranger[1].code, stranger[2].code) << "without list, an existing and a missing path look alike";
  EXPECT_EQ(stranger[3].status, 200);
  EXPECT_EQ(stranger[4].status, 200);
  EXPECT_EQ(stranger[5].status, 403);
  EXPECT_EQ(stranger[6].status, 200);
  EXPECT_EQ(stranger[7].status, 200);
  EXPECT_EQ(stranger[8].status, 403);
  EXPECT_EQ(stranger[9].status, 403);
  EXPECT_EQ(stranger[10].status, 403) << "a txn with one forbidden op is refused whole";
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/team/t1").status, 404) << "and nothing of it applied";
}

TEST_F(PolicyDaemonTest, AServiceIsRecognisedByItsSystemdUnit) {
  std::string cg = MakeUnitCgroup();
  auto web = AsUser(kStranger, kNogroup, cg, agent_->socket(),
                    {{"GET", "/v1/secrets/apps/web/db", ""},        // * matches one segment
                     {"GET", "/v1/secrets/apps/web/deep/key", ""},  // ... not two
                     {"GET", "/v1/secrets/apps/api/db", ""}});
  ASSERT_EQ(web.size(), 3u);
  EXPECT_EQ(web[0].status, 200);
  EXPECT_EQ(web[1].status, 403);
  EXPECT_EQ(web[2].status, 403);
  // The same uid outside the unit gets none of it.
  auto outside = AsUser(kStranger, kNogroup, "", agent_->socket(), {{"GET", "/v1/secrets/apps/web/db", ""}});
  EXPECT_EQ(outside[0].status, 403);
}

// Any user can run `systemd-run --user --unit=web.service`, and a Delegate=yes service or
// a container may build any tree below itself: neither is the system's web.service.
TEST_F(PolicyDaemonTest, NoUserOrDelegatedCgroupPassesForASystemUnit) {
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/apps/userweb/key", Body({{"value", "u"}})).status, 200);
  const std::string user_web = MakeCgroup("user-65534.slice/user@65534.service/app.slice/web.service");
  auto as_user_unit =
      AsUser(kNobody, kNogroup, user_web, agent_->socket(),
             {{"GET", "/v1/secrets/apps/web/db", ""}, {"GET", "/v1/secrets/apps/userweb/key", ""}});
  ASSERT_EQ(as_user_unit.size(), 2u);
  EXPECT_EQ(as_user_unit[0].status, 403) << "a user unit named web.service read the system unit's secret";
  EXPECT_EQ(as_user_unit[1].status, 200)
      << "a user_unit binding with its uid matches: " << as_user_unit[1].body;
  // The same user unit under another uid's manager is not this uid's.
  auto other_uid =
      AsUser(kStranger, kNogroup, user_web, agent_->socket(), {{"GET", "/v1/secrets/apps/web/db", ""}});
  EXPECT_EQ(other_uid[0].status, 403);
  const std::string delegated = MakeCgroup("deleg.service/payload/system.slice/web.service");
  auto in_delegated =
      AsUser(kStranger, kNogroup, delegated, agent_->socket(), {{"GET", "/v1/secrets/apps/web/db", ""}});
  EXPECT_EQ(in_delegated[0].status, 403) << "a delegated subtree passed for web.service";
  // Its record names the unit the caller really is in (read records reach the disk
  // within a second).
  bool recorded = false;
  for (int i = 0; i < 500 && !recorded; ++i) {
    for (const json& rec : ReadAuditRecords(agent_->state_dir() + "/audit")) {
      if (rec["uid"] == kStranger && rec["outcome"] == "denied" && rec["path"] == "apps/web/db" &&
          rec.value("unit", "") == "deleg.service") {
        recorded = true;
      }
    }
    if (!recorded) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(recorded) << "no denied record naming unit deleg.service";
}

TEST_F(PolicyDaemonTest, ABrokenPolicyOnReloadKeepsTheRunningOne) {
  std::string policy_path = agent_->state_dir() + "/policy.toml";
  const std::string nobody_binding =
      "[[bindings]]\nname = \"nobody\"\nroles = [\"shared-lister\"]\nmatch = { uid = 65534 }\n\n";
  // The broken file would change what nobody may do, both ways: it drops nobody's read
  // and grants it write on shared/**. Had it been applied, nobody's answers would change.
  std::string broken = kPolicy;
  broken.replace(broken.find(nobody_binding), nobody_binding.size(),
                 "[[bindings]]\nname = \"nobody\"\nroles = [\"team-writer\", \"shared-writer\"]\n"
                 "match = { uid = 65534 }\n\n");
  broken +=
      "\n[roles.shared-writer]\ngrants = [{ capabilities = [\"write\"], paths = [\"shared/**\"] }]\n"
      "\n[[bindings]]\nname = \"bad\"\nroles = [\"nope\"]\nmatch = { uid = 65534 }\n";
  WriteFile(policy_path, broken);
  ::kill(agent_->pid(), SIGHUP);
  ASSERT_TRUE(WaitForLog(*agent_, "keeping the running one", 1)) << agent_->Log();
  EXPECT_NE(agent_->Log().find("nope"), std::string::npos) << "the log says why: " << agent_->Log();
  const Calls calls = {{"GET", "/v1/secrets/shared/a", ""},
                       {"PUT", "/v1/secrets/shared/a", Body({{"value", "from the broken policy"}})},
                       {"PUT", "/v1/secrets/team/by-nobody", Body({{"value", "x"}})}};
  auto still = AsUser(kNobody, kNogroup, "", agent_->socket(), calls);
  ASSERT_EQ(still.size(), 3u);
  EXPECT_EQ(still[0].status, 200) << "the running policy stays: nobody still reads";
  EXPECT_EQ(still[1].status, 403) << "and gets none of the broken file's grants";
  EXPECT_EQ(still[2].status, 403);
  // The same change without the error takes effect: nobody loses read and gains write.
  std::string fixed = broken.substr(0, broken.find("\n[[bindings]]\nname = \"bad\""));
  WriteFile(policy_path, fixed);
  ::kill(agent_->pid(), SIGHUP);
  ASSERT_TRUE(WaitForLog(*agent_, "SIGHUP: policy reloaded", 1)) << agent_->Log();
  auto now = AsUser(kNobody, kNogroup, "", agent_->socket(), calls);
  ASSERT_EQ(now.size(), 3u);
  EXPECT_EQ(now[0].status, 403);
  EXPECT_EQ(now[1].status, 200);
  EXPECT_EQ(now[2].status, 200);
}

TEST_F(PolicyDaemonTest, TheAuditChainCoversEveryRequestAndVerifies) {
  // Distinctive values, so a value that leaked into the log would be found.
  auto secret = [](int i) { return "Zq7-audit-secret-" + std::to_string(i) + "-xK2"; };
  (void)AsUser(
      kNobody, kNogroup, "", agent_->socket(),
      {{"GET", "/v1/secrets/shared/a", ""}, {"PUT", "/v1/secrets/x", Body({{"value", secret(100)}})}});
  for (int i = 0; i < 20; ++i)
    agent_->Call("PUT", "/v1/secrets/mixed/" + std::to_string(i % 3), Body({{"value", secret(i)}}));
  agent_->Call("POST", "/v1/secrets/mixed/0/rollback", Body({{"to", 1}}));
  agent_->Call("GET", "/v1/secrets/mixed/1");
  agent_->Call("POST", "/v1/txn",
               Body({{"ops", json::array({{{"op", "put"}, {"path", "mixed/t"}, {"value", secret(200)}}})}}));
  agent_->Call("GET", "/v1/secrets/never");
  auto v = agent_->Call("GET", "/v1/sys/audit/verify");
  ASSERT_EQ(v.status, 200) << v.body;
  EXPECT_TRUE(v.Json()["ok"].get<bool>()) << v.body;
  EXPECT_GE(v.Json()["records"].get<int>(), 30);
  // Records name the caller, the outcome and the reason, never a value.
  std::string log;
  for (const auto& e : std::filesystem::directory_iterator(agent_->state_dir() + "/audit"))
    log += ReadFile(e.path());
  EXPECT_NE(log.find("\"uid\":65534"), std::string::npos);
  EXPECT_NE(log.find("denied"), std::string::npos);
  EXPECT_NE(log.find("\"path\":\"mixed/1\""), std::string::npos) << "the read of mixed/1 is on record";
  EXPECT_EQ(log.find("audit-secret"), std::string::npos) << "no value is ever written to the audit log";
  EXPECT_EQ(log.find("\"value\""), std::string::npos);
}

TEST_F(PolicyDaemonTest, ADeniedTxnLeavesOneDeniedRecordThatNamesItsPaths) {
  auto r = AsUser(kStranger, kNogroup, "", agent_->socket(),
                  {{"POST", "/v1/txn",
                    Body({{"ops", json::array({{{"op", "put"}, {"path", "team/t1"}, {"value", "1"}},
                                               {{"op", "put"}, {"path", "private/x"}, {"value", "2"}},
                                               {{"op", "put"}, {"path", "team/t3"}, {"value", "3"}}})}})},
                   {"POST", "/v1/txn",
                    Body({{"ops", json::array({{{"op", "put"}, {"path", "team/ok1"}, {"value", "1"}},
                                               {{"op", "delete"}, {"path", "team/x"}}})}})}});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].status, 403);
  EXPECT_EQ(r[1].status, 200) << r[1].body;
  std::vector<json> denied, allowed;
  for (const json& rec : ReadAuditRecords(agent_->state_dir() + "/audit")) {
    if (rec["route"] != "POST txn") continue;
    (rec["outcome"] == "denied" ? denied : allowed).push_back(rec);
    EXPECT_NE(rec["outcome"], "failed") << rec.dump();
  }
  ASSERT_EQ(denied.size(), 1u) << "one record for the refused txn";
  EXPECT_EQ(denied[0]["uid"], kStranger);
  EXPECT_EQ(denied[0]["path"], "team/t1,private/x") << "the paths up to the forbidden one";
  ASSERT_EQ(allowed.size(), 1u) << "no 'allowed' record for the refused txn; one for the applied one";
  EXPECT_EQ(allowed[0]["path"], "team/ok1,team/x");
  EXPECT_EQ(allowed[0]["uid"], kStranger);
  EXPECT_LT(denied[0]["seq"].get<int>(), allowed[0]["seq"].get<int>());
}

TEST_F(PolicyDaemonTest, AFullDiskUnderTheAuditLogFailsChangesClosed) {
  // The audit folder becomes a small tmpfs, then is filled up while the agent runs.
  std::string audit = agent_->state_dir() + "/audit";
  ASSERT_EQ(agent_->Stop(), 0);
  std::filesystem::rename(audit, audit + ".old");
  std::filesystem::create_directories(audit);
  if (::mount("tmpfs", audit.c_str(), "tmpfs", 0, "size=128k,mode=0700") != 0) {
    FAIL() << "cannot mount a tmpfs here (not root in this namespace)";
  }
  mounted_ = audit;
  agent_->Start();
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/before", Body({{"value", "ok"}})).status, 200);
  auto head = agent_->Call("GET", "/v1/sys/status").Json()["journal"]["head_seq"].get<int>();
  {
    std::ofstream filler(audit + "/filler", std::ios::binary);
    std::string chunk(4096, 'x');
    for (int i = 0; i < 64 && filler.write(chunk.data(), static_cast<std::streamsize>(chunk.size())); ++i) {
    }
  }
  // The segment's last page may still hold a few records; write until the disk says no.
  bool refused = false;
  for (int i = 0; i < 200 && !refused; ++i) {
    head = agent_->Call("GET", "/v1/sys/status").Json()["journal"]["head_seq"].get<int>();
    std::string path = "/v1/secrets/closed/" + std::to_string(i);
    auto r = agent_->Call("PUT", path, Body({{"value", "must not be stored"}}));
    if (r.status == 200) continue;
    refused = true;
    EXPECT_EQ(r.status, 503) << r.body;
    EXPECT_EQ(r.ErrorCode(), "audit_unavailable");
    EXPECT_EQ(agent_->Call("GET", "/v1/sys/status").Json()["journal"]["head_seq"].get<int>(), head)
        << "a change that cannot be audited is not made";
    EXPECT_EQ(agent_->Call("GET", path).status, 404);
  }
  ASSERT_TRUE(refused) << "the full disk never refused a write";
  // Reads that carry no value go on (value reads stop too: authz_test).
  EXPECT_EQ(agent_->Call("GET", "/v1/sys/status").status, 200) << "status reads go on";
  std::filesystem::remove(audit + "/filler");
  auto again = agent_->Call("PUT", "/v1/secrets/closed", Body({{"value", "now"}}));
  EXPECT_EQ(again.status, 200) << "the log recovers once it can be written: " << again.body;
  EXPECT_TRUE(agent_->Call("GET", "/v1/sys/audit/verify").Json()["ok"].get<bool>());
}

// A user made for the test (primary group P, supplementary groups S and nogroup, the
// latter only to reach the socket), bound by name, by group S, by gid P and, through the
// sealkeep CLI, by executable.
class TestUserDaemonTest : public PolicyDaemonTest {
 protected:
  std::string PolicyText() override {
    if (!user_.ok()) return kPolicy;
    sealkeep_ = std::filesystem::canonical(SealkeepBinary()).string();
    return std::string(kPolicy) + R"(
[roles.user-reader]
grants = [{ capabilities = ["read"], paths = ["byuser/*"] }]

[roles.group-writer]
grants = [{ capabilities = ["write"], paths = ["bygroup/**"] }]

[roles.gid-lister]
grants = [{ capabilities = ["read", "list"], paths = ["bygid/**"] }]

[roles.exe-reader]
grants = [{ capabilities = ["read"], paths = ["byexe/**"] }]

[roles.snapshotter]
grants = [{ capabilities = ["snapshot"], paths = ["snap/**"] }]

[roles.operator]
grants = [{ capabilities = ["admin"], paths = ["sys"] }]

[[bindings]]
name = "by-user"
roles = ["user-reader", "snapshotter"]
match = { user = ")" +
           user_.name() + R"(" }

[[bindings]]
name = "by-group"
roles = ["group-writer", "operator"]
match = { group = ")" +
           user_.supplementary_group() + R"(" }

[[bindings]]
name = "by-gid"
roles = ["gid-lister"]
match = { gid = )" +
           std::to_string(user_.gid()) + R"( }

[[bindings]]
name = "by-exe"
roles = ["exe-reader"]
match = { exe = ")" +
           sealkeep_ + R"(" }
)";
  }
  void SetUp() override {
    ASSERT_TRUE(user_.ok()) << "cannot make a test user: " << user_.error();
    PolicyDaemonTest::SetUp();
    for (const char* p :
         {"byuser/a", "byuser/a/b", "bygroup/x", "bygid/one", "bygid/two", "byexe/k", "snap/a", "snap/b"}) {
      ASSERT_EQ(agent_->Call("PUT", std::string("/v1/secrets/") + p, Body({{"value", std::string("v-") + p}}))
                    .status,
                200);
    }
  }
  std::vector<Outcome> AsTestUser(const Calls& calls) {
    return AsClient([this] { return user_.Become(); }, "", agent_->socket(), calls);
  }
  // Runs `sealkeep ARGS...` as the test user; returns its exit status, *out gets stdout.
  int CliAsTestUser(const std::vector<std::string>& args, std::string* out) {
    std::string out_file = dir_.Join("cli-out");
    WriteFile(out_file, "", 0666);
    std::string sock = agent_->socket();
    int rc = RunInChild([this] { return user_.Become(); },
                        [&] {
                          int fd = ::open(out_file.c_str(), O_WRONLY | O_TRUNC);
                          if (fd < 0 || ::dup2(fd, 1) < 0) return 90;
                          std::vector<std::string> argv_store = {sealkeep_, "--socket", sock};
                          argv_store.insert(argv_store.end(), args.begin(), args.end());
                          std::vector<char*> argv;
                          for (std::string& a : argv_store) argv.push_back(a.data());
                          argv.push_back(nullptr);
                          char* envp[] = {nullptr};
                          ::execve(sealkeep_.c_str(), argv.data(), envp);
                          return 91;
                        });
    *out = ReadFile(out_file);
    return rc;
  }
  TestUser user_{{"nogroup"}};
  std::string sealkeep_;
};

TEST_F(TestUserDaemonTest, BindingsByUserGroupGidAndExeGrantWhatTheySay) {
  auto r = AsTestUser({
      {"GET", "/v1/secrets/byuser/a", ""},                         // 0 user binding, * one segment
      {"GET", "/v1/secrets/byuser/a/b", ""},                       // 1 ... not two
      {"PUT", "/v1/secrets/bygroup/x", Body({{"value", "new"}})},  // 2 supplementary group name
      {"GET", "/v1/secrets/bygroup/x", ""},                        // 3 write only
      {"GET", "/v1/secrets?prefix=", ""},                          // 4 list via the gid binding
      {"GET", "/v1/secrets/bygid/one", ""},                        // 5 read via the gid binding
      {"GET", "/v1/secrets/byexe/k", ""},                          // 6 this test binary is not sealkeep
      {"GET", "/v1/secrets/apps/web/db", ""},                      // 7 nothing else
      {"PUT", "/v1/secrets/byuser/a", Body({{"value", "nope"}})},  // 8 read does not imply write
  });
  ASSERT_EQ(r.size(), 9u);
  EXPECT_EQ(r[0].status, 200);
  EXPECT_EQ(r[0].Json()["value"], "v-byuser/a");
  EXPECT_EQ(r[1].status, 403);
  EXPECT_EQ(r[2].status, 200) << r[2].body;
  EXPECT_EQ(r[3].status, 403);
  EXPECT_EQ(r[4].status, 200);
  EXPECT_EQ(ListedPaths(r[4]), (std::vector<std::string>{"bygid/one", "bygid/two"})) << r[4].body;
  EXPECT_EQ(r[5].status, 200);
  EXPECT_EQ(r[6].status, 403);
  EXPECT_EQ(r[7].status, 403);
  EXPECT_EQ(r[8].status, 403);
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/bygroup/x").Json()["value"], "new");

  // The same user through the sealkeep CLI matches the exe binding too.
  std::string out;
  EXPECT_EQ(CliAsTestUser({"get", "byexe/k"}, &out), 0) << out;
  EXPECT_EQ(out, "v-byexe/k");
  EXPECT_EQ(CliAsTestUser({"get", "bygid/two"}, &out), 0) << "and keeps its other bindings";
  EXPECT_EQ(out, "v-bygid/two");
  EXPECT_EQ(CliAsTestUser({"get", "apps/web/db"}, &out), 5);
  // nobody gets none of it.
  auto nobody = AsUser(kNobody, kNogroup, "", agent_->socket(),
                       {{"GET", "/v1/secrets/byuser/a", ""}, {"GET", "/v1/secrets/bygid/one", ""}});
  ASSERT_EQ(nobody.size(), 2u);
  EXPECT_EQ(nobody[0].status, 403);
  EXPECT_EQ(nobody[1].status, 403);
}

TEST_F(TestUserDaemonTest, SnapshotAndAdminCanBeGrantedToAnOrdinaryUser) {
  auto r = AsTestUser({
      {"POST", "/v1/snapshots", Body({{"name", "rel-1"}, {"prefix", "snap"}})},    // 0 snapshot on snap/**
      {"POST", "/v1/snapshots", Body({{"name", "rel-2"}, {"prefix", "byuser"}})},  // 1 not there
      {"PUT", "/v1/secrets/snap/a", Body({{"value", "changed"}})},                 // 2 snapshot is not write
      {"GET", "/v1/sys/status", ""},                                               // 3 admin via group
      {"GET", "/v1/sys/audit/verify", ""},                                         // 4
  });
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[0].status, 200) << r[0].body;
  EXPECT_EQ(r[1].status, 403);
  EXPECT_EQ(r[2].status, 403);
  EXPECT_EQ(r[3].status, 200) << r[3].body;
  EXPECT_EQ(r[3].Json()["state"], "unsealed");
  EXPECT_EQ(r[4].status, 200);
  EXPECT_TRUE(r[4].Json()["ok"].get<bool>()) << r[4].body;
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/snap/a", Body({{"value", "later"}})).status, 200);
  auto restore = AsTestUser({{"POST", "/v1/snapshots/rel-1/restore", ""}});
  ASSERT_EQ(restore.size(), 1u);
  EXPECT_EQ(restore[0].status, 200) << restore[0].body;
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/snap/a").Json()["value"], "v-snap/a");
  // nobody may do neither.
  auto nobody = AsUser(kNobody, kNogroup, "", agent_->socket(),
                       {{"GET", "/v1/sys/status", ""}, {"POST", "/v1/snapshots/rel-1/restore", ""}});
  ASSERT_EQ(nobody.size(), 2u);
  EXPECT_EQ(nobody[0].status, 403);
  EXPECT_EQ(nobody[1].status, 403);
  // The restore's record names the snapshot and its paths.
  bool named = false;
  for (const json& rec : ReadAuditRecords(agent_->state_dir() + "/audit")) {
    if (rec["route"] == "POST snapshot.restore" && rec["outcome"] == "allowed" && rec["uid"] == user_.uid())
      named = rec["path"] == "rel-1: snap/a,snap/b";
  }
  EXPECT_TRUE(named);
}

}  // namespace
}  // namespace sk::testing
