// Policy and audit through the real daemon: clients under several uids (root, nobody, a
// uid with no passwd entry) and in a unit-shaped cgroup, allow/deny per capability and
// glob form, label conditions, default deny, 404/403 alike without `list`, a SIGHUP
// reload with a broken file keeping the old policy, the audit chain after a mixed
// workload, and an unwritable audit log failing changes closed.
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/temp_dir.h"

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
)";

std::string Body(const json& j) { return j.dump(); }

struct Outcome {
  int status = 0;
  std::string code;
};

// Runs requests in a child process as uid/gid (optionally inside a unit-shaped cgroup);
// the child reports each (status, code) on a pipe.
std::vector<Outcome> AsUser(uid_t uid, gid_t gid, const std::string& cgroup_dir, const std::string& sock,
                            const std::vector<std::tuple<std::string, std::string, std::string>>& calls) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    if (!cgroup_dir.empty()) {
      std::ofstream(cgroup_dir + "/cgroup.procs") << ::getpid() << "\n";
    }
    if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) ::_exit(98);
    std::string out;
    for (const auto& [method, target, body] : calls) {
      HttpResponse r = Http(sock, method, target, body);
      out += std::to_string(r.status) + " " + (r.ErrorCode().empty() ? "-" : r.ErrorCode()) + "\n";
    }
    (void)!::write(fds[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  std::vector<Outcome> out;
  std::istringstream in(text);
  Outcome o;
  while (in >> o.status >> o.code) out.push_back(o);
  EXPECT_EQ(out.size(), calls.size()) << "child exit status " << st;
  return out;
}

class PolicyDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "runs clients under other uids: run as root";
    AgentProcess::Options o;
    o.policy = true;
    agent_ = std::make_unique<AgentProcess>(dir_.path(), o);
    WriteFile(agent_->state_dir() + "/policy.toml", kPolicy, 0640);
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
    if (!cgroup_.empty()) {
      ::rmdir(cgroup_.c_str());
      ::rmdir(std::filesystem::path(cgroup_).parent_path().c_str());
    }
  }
  std::string MakeUnitCgroup() {
    std::string slice = "/sys/fs/cgroup/systemd/sk-test-" + std::to_string(::getpid()) + ".slice";
    cgroup_ = slice + "/web.service";
    std::error_code ec;
    std::filesystem::create_directories(cgroup_, ec);
    if (ec) cgroup_.clear();
    return cgroup_;
  }
  TempDir dir_{"policyd"};
  std::unique_ptr<AgentProcess> agent_;
  std::string cgroup_;
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
  if (cg.empty()) GTEST_SKIP() << "no writable name=systemd cgroup hierarchy on this machine";
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

TEST_F(PolicyDaemonTest, ABrokenPolicyOnReloadKeepsTheRunningOne) {
  std::string policy_path = agent_->state_dir() + "/policy.toml";
  WriteFile(policy_path, std::string(kPolicy) +
                             "\n[[bindings]]\nname = \"bad\"\nroles = [\"nope\"]\nmatch = { uid = 65534 }\n");
  ::kill(agent_->pid(), SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto still = AsUser(kNobody, kNogroup, "", agent_->socket(), {{"GET", "/v1/secrets/shared/a", ""}});
  EXPECT_EQ(still[0].status, 200) << "the running policy stays";
  EXPECT_NE(agent_->Log().find("keeping the running one"), std::string::npos) << agent_->Log();
  // A good file takes effect: nobody loses everything.
  std::string trimmed = kPolicy;
  trimmed.erase(
      trimmed.find("[[bindings]]\nname = \"nobody\""),
      std::string("[[bindings]]\nname = \"nobody\"\nroles = [\"shared-lister\"]\nmatch = { uid = 65534 }\n\n")
          .size());
  WriteFile(policy_path, trimmed);
  ::kill(agent_->pid(), SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto gone = AsUser(kNobody, kNogroup, "", agent_->socket(), {{"GET", "/v1/secrets/shared/a", ""}});
  EXPECT_EQ(gone[0].status, 403);
}

TEST_F(PolicyDaemonTest, TheAuditChainCoversEveryRequestAndVerifies) {
  (void)AsUser(kNobody, kNogroup, "", agent_->socket(),
               {{"GET", "/v1/secrets/shared/a", ""}, {"PUT", "/v1/secrets/x", Body({{"value", "x"}})}});
  for (int i = 0; i < 20; ++i)
    agent_->Call("PUT", "/v1/secrets/mixed/" + std::to_string(i % 3), Body({{"value", "v"}}));
  agent_->Call("POST", "/v1/secrets/mixed/0/rollback", Body({{"to", 1}}));
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
  EXPECT_EQ(log.find("\"value\""), std::string::npos);
}

TEST_F(PolicyDaemonTest, AFullDiskUnderTheAuditLogFailsChangesClosed) {
  // The audit folder becomes a small tmpfs, then is filled up while the agent runs.
  std::string audit = agent_->state_dir() + "/audit";
  ASSERT_EQ(agent_->Stop(), 0);
  std::filesystem::rename(audit, audit + ".old");
  std::filesystem::create_directories(audit);
  if (::mount("tmpfs", audit.c_str(), "tmpfs", 0, "size=128k,mode=0700") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (not root in this namespace)";
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
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/before").status, 200) << "reads go on";
  std::filesystem::remove(audit + "/filler");
  auto again = agent_->Call("PUT", "/v1/secrets/closed", Body({{"value", "now"}}));
  EXPECT_EQ(again.status, 200) << "the log recovers once it can be written: " << again.body;
  EXPECT_TRUE(agent_->Call("GET", "/v1/sys/audit/verify").Json()["ok"].get<bool>());
}

}  // namespace
}  // namespace sk::testing
