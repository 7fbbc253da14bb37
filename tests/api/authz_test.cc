// What a caller may do, through the real daemon (issue 15, the review's holes): a real
// sealkeepd on a SoftHSM2 token, its real socket, real callers (a throwaway user made for
// the test, nobody, a uid without a passwd entry, a unit-shaped cgroup), a real full
// tmpfs under the audit log. Each test shows one hole closed:
//   - a `write` that would prune history needs `destroy`; lowering max_versions needs `admin`;
//   - label conditions hold for the version read, the versions listed, a rollback's source
//     and the labels a put writes;
//   - value reads and credentials stop while the audit log cannot be written;
//   - the /v1/sys capabilities (sys.read, rotate, reseal, recover, seal) grant only their
//     routes, and `admin` still grants them all;
//   - snapshots show only paths the caller may list, and never whether a name exists;
//   - idempotency keys belong to the caller (uid and unit) that used them;
//   - listings honour `limit`, page with a cursor and examine a bounded number of rows;
//   - safe defaults for the policy file and the audit log;
//   - /metrics may be made to need sys.read.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <tuple>

#include "agent/config/config.h"
#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/temp_dir.h"
#include "tests/fixtures/test_user.h"

namespace sk::testing {
namespace {

using nlohmann::json;

constexpr uid_t kNobody = 65534;
constexpr uid_t kStranger = 4242;  // no passwd entry
constexpr gid_t kNogroup = 65534;

using Answer = ClientAnswer;

using Calls = ClientCalls;

std::string Body(const json& j) { return j.dump(); }

json PutOp(const std::string& path, const std::string& value) {
  return {{"op", "put"}, {"path", path}, {"value", value}};
}

// Asks creds.sock for credential `id` of `unit` the way systemd does (binds
// "\0<random>/unit/<unit>/<id>", connects, shuts down its sending side, reads to EOF), in a
// child that runs as root inside `cgroup_dir`. Returns what was written.
std::string FetchCredential(const std::string& cgroup_dir, const std::string& sock, const std::string& unit,
                            const std::string& id) {
  return OutputOfChild([] { return true; },
                       [&] {
                         std::string data;
                         int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                         if (fd < 0) return data;
                         sockaddr_un local{};
                         local.sun_family = AF_UNIX;
                         std::string name =
                             std::to_string(std::random_device()()) + "/unit/" + unit + "/" + id;
                         std::memcpy(local.sun_path + 1, name.data(), name.size());
                         auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
                         sockaddr_un a{};
                         a.sun_family = AF_UNIX;
                         std::strncpy(a.sun_path, sock.c_str(), sizeof(a.sun_path) - 1);
                         if (::bind(fd, reinterpret_cast<sockaddr*>(&local), len) == 0 &&
                             ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
                           ::shutdown(fd, SHUT_WR);
                           char buf[4096];
                           ssize_t n;
                           while ((n = ::read(fd, buf, sizeof buf)) > 0)
                             data.append(buf, static_cast<std::size_t>(n));
                         }
                         ::close(fd);
                         return data;
                       },
                       cgroup_dir);
}

class AuthzTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "runs clients as other users: run as root";
    ASSERT_TRUE(user_.ok()) << "cannot make a test user: " << user_.error();
  }
  void TearDown() override {
    if (agent_ && !mounted_.empty()) agent_->Stop();
    if (!mounted_.empty()) ::umount2(mounted_.c_str(), MNT_DETACH);
    for (auto it = cgroups_.rbegin(); it != cgroups_.rend(); ++it) ::rmdir(it->c_str());
  }

  // Starts the agent with kRootIsAdminPolicy plus `policy` ("USER" stands for the test
  // user's name), and `agent_config` in [agent]. The socket's group is nogroup (the test
  // user and nobody are in it): the agent alone decides what each caller may do.
  void Start(const std::string& policy, const std::string& agent_config = "") {
    AgentProcess::Options o;
    o.policy = true;
    o.agent_config = "socket_group = \"nogroup\"\n" + agent_config;
    agent_ = std::make_unique<AgentProcess>(dir_.path(), o);
    WriteFile(PolicyPath(), kRootIsAdminPolicy + Expand(policy), 0640);
    for (const std::string& d : {dir_.path(), agent_->state_dir(), agent_->state_dir() + "/run"})
      ::chmod(d.c_str(), 0711);
    agent_->Start();
  }
  std::string Expand(std::string text) const {
    for (std::size_t at = text.find("USER"); at != std::string::npos; at = text.find("USER", at))
      text.replace(at, 4, user_.name());
    return text;
  }
  std::string PolicyPath() const { return agent_->state_dir() + "/policy.toml"; }

  std::vector<Answer> AsUser(const Calls& calls, const std::string& cgroup = "") {
    return AsClient([this] { return user_.Become(); }, cgroup, agent_->socket(), calls);
  }
  std::vector<Answer> AsUid(uid_t uid, const Calls& calls) {
    return AsClient([uid] { return BecomeUid(uid, kNogroup); }, "", agent_->socket(), calls);
  }
  HttpResponse Root(const std::string& method, const std::string& target, const json& body = nullptr) {
    return agent_->Call(method, target, body.is_null() ? "" : body.dump());
  }
  void RootPut(const std::string& path, const json& body) {
    HttpResponse r = Root("PUT", "/v1/secrets/" + path, body);
    ASSERT_EQ(r.status, 200) << path << ": " << r.body;
  }
  std::vector<std::string> States(const std::string& path) {
    std::vector<std::string> out;
    const json answer = Root("GET", "/v1/secrets/" + path + "/versions").Json();
    for (const auto& v : answer.value("versions", json::array()))
      out.push_back(v["state"].get<std::string>());
    return out;
  }
  // A unit-shaped cgroup in the name=systemd hierarchy, or "" when there is none.
  std::string UnitCgroup(const std::string& unit) {
    std::string slice = "/sys/fs/cgroup/systemd/sk-authz-" + std::to_string(::getpid()) + ".slice";
    std::error_code ec;
    std::filesystem::create_directories(slice + "/" + unit, ec);
    if (ec) return "";
    if (std::find(cgroups_.begin(), cgroups_.end(), slice) == cgroups_.end()) cgroups_.push_back(slice);
    cgroups_.push_back(slice + "/" + unit);
    return slice + "/" + unit;
  }
  // Runs `sealkeep ARGS...` as the test user; returns its exit status, *out gets stdout.
  int CliAsUser(const std::vector<std::string>& args, std::string* out) {
    std::string out_file = dir_.Join("cli-out");
    WriteFile(out_file, "", 0666);
    std::string bin = std::filesystem::canonical(SealkeepBinary()).string();
    std::string sock = agent_->socket();
    int rc = RunInChild([this] { return user_.Become(); },
                        [&] {
                          int fd = ::open(out_file.c_str(), O_WRONLY | O_TRUNC);
                          if (fd < 0 || ::dup2(fd, 1) < 0) return 90;
                          std::vector<std::string> argv_store = {bin, "--socket", sock};
                          argv_store.insert(argv_store.end(), args.begin(), args.end());
                          std::vector<char*> argv;
                          for (std::string& a : argv_store) argv.push_back(a.data());
                          argv.push_back(nullptr);
                          char* envp[] = {nullptr};
                          ::execve(bin.c_str(), argv.data(), envp);
                          return 91;
                        });
    *out = ReadFile(out_file);
    return rc;
  }

  TempDir dir_{"authz"};
  TestUser user_{{"nogroup"}};
  std::unique_ptr<AgentProcess> agent_;
  std::string mounted_;
  std::vector<std::string> cgroups_;
};

// Item 5: `PUT {"value":"evil","max_versions":1}` by a caller with only `write` turned
// versions 1-3 into `destroyed` and made a rollback to 3 impossible.
TEST_F(AuthzTest, AWriteThatWouldDestroyHistoryNeedsDestroyAndLoweringRetentionNeedsAdmin) {
  Start(R"(
[roles.ci-writer]
grants = [{ capabilities = ["write", "read"], paths = ["ci/**"] }]

[roles.ci-pruner]
grants = [{ capabilities = ["write", "read", "destroy"], paths = ["ci/**"] }]

[roles.ci-roller]
grants = [{ capabilities = ["rollback"], paths = ["ci/**"] }]

[[bindings]]
name = "writer"
roles = ["ci-writer"]
match = { user = "USER" }

[[bindings]]
name = "pruner"
roles = ["ci-pruner"]
match = { uid = 4242 }

[[bindings]]
name = "roller"
roles = ["ci-roller"]
match = { uid = 65534 }
)");
  for (int v = 1; v <= 3; ++v) RootPut("ci/app", {{"value", "v" + std::to_string(v)}});
  auto w = AsUser({
      {"PUT", "/v1/secrets/ci/app", Body({{"value", "evil"}, {"max_versions", 1}})},
      {"POST", "/v1/txn",
       Body({{"ops",
              json::array({{{"op", "put"}, {"path", "ci/app"}, {"value", "evil"}, {"max_versions", 1}}})}})},
      {"PUT", "/v1/secrets/ci/app", Body({{"value", "v4"}})},  // a plain write: fine
  });
  EXPECT_EQ(w[0].status, 403) << w[0].body;
  EXPECT_EQ(w[0].code, "forbidden");
  EXPECT_NE(w[0].Message().find("admin"), std::string::npos) << "names what is missing: " << w[0].body;
  EXPECT_EQ(w[1].status, 403) << "a txn op too: " << w[1].body;
  EXPECT_EQ(w[2].status, 200) << w[2].body;
  EXPECT_EQ(States("ci/app"), (std::vector<std::string>{"live", "live", "live", "live"}))
      << "nothing was destroyed";
  EXPECT_EQ(Root("POST", "/v1/secrets/ci/app/rollback", {{"to", 3}}).status, 200);

  // At a limit an admin set, a put that would prune the oldest version needs destroy.
  RootPut("ci/lim", {{"value", "1"}, {"max_versions", 2}});
  RootPut("ci/lim", {{"value", "2"}});
  auto at_limit = AsUser({{"PUT", "/v1/secrets/ci/lim", Body({{"value", "3"}})}});
  EXPECT_EQ(at_limit[0].status, 403) << at_limit[0].body;
  EXPECT_NE(at_limit[0].Message().find("destroy"), std::string::npos) << at_limit[0].body;
  EXPECT_EQ(States("ci/lim"), (std::vector<std::string>{"live", "live"}));

  // With destroy the put prunes, and the prune moves the hardware anchor at once, as a
  // destroy does.
  auto head_before = Root("GET", "/v1/sys/status").Json()["journal"];
  auto pruner =
      AsUid(kStranger, {{"PUT", "/v1/secrets/ci/lim", Body({{"value", "3"}})},
                        {"PUT", "/v1/secrets/ci/lim", Body({{"value", "4"}, {"max_versions", 1}})}});
  EXPECT_EQ(pruner[0].status, 200) << pruner[0].body;
  EXPECT_EQ(States("ci/lim"), (std::vector<std::string>{"destroyed", "live", "live"}));
  auto journal = Root("GET", "/v1/sys/status").Json()["journal"];
  EXPECT_GT(journal["head_seq"].get<std::uint64_t>(), head_before["head_seq"].get<std::uint64_t>());
  EXPECT_EQ(journal["anchor_seq"], journal["head_seq"]) << "pruning anchors at once: " << journal.dump();
  EXPECT_EQ(pruner[1].status, 403) << "destroy is not admin: " << pruner[1].body;
  EXPECT_NE(pruner[1].Message().find("admin"), std::string::npos) << pruner[1].body;

  // A rollback that would prune needs destroy as well.
  auto roller = AsUid(kNobody, {{"POST", "/v1/secrets/ci/lim/rollback", Body({{"to", 2}})}});
  EXPECT_EQ(roller[0].status, 403) << roller[0].body;
  EXPECT_NE(roller[0].Message().find("destroy"), std::string::npos) << roller[0].body;
  EXPECT_EQ(States("ci/lim"), (std::vector<std::string>{"destroyed", "live", "live"}));

  // Keeping more versions takes nothing away: write is enough.
  auto raise = AsUser({{"PUT", "/v1/secrets/ci/lim", Body({{"value", "4"}, {"max_versions", 5}})}});
  EXPECT_EQ(raise[0].status, 200) << raise[0].body;
  EXPECT_EQ(States("ci/lim"), (std::vector<std::string>{"destroyed", "live", "live", "live"}));
}

TEST_F(AuthzTest, TheBuiltInPolicyStillLetsRootPruneAndLowerRetention) {
  AgentProcess::Options o;  // no policy file: root and the agent's own uid may do everything
  agent_ = std::make_unique<AgentProcess>(dir_.path(), o);
  agent_->Start();
  for (int v = 1; v <= 3; ++v) RootPut("ci/app", {{"value", "v" + std::to_string(v)}});
  RootPut("ci/app", {{"value", "v4"}, {"max_versions", 1}});
  EXPECT_EQ(States("ci/app"), (std::vector<std::string>{"destroyed", "destroyed", "destroyed", "live"}));
}

// Item 6: a caller with `write` and a `read` limited to env=dev relabelled the head and
// read `?version=n-1` from prod.
TEST_F(AuthzTest, LabelConditionsHoldForTheVersionReadAndTheLabelsAPutWrites) {
  Start(R"(
[roles.lab-writer]
grants = [{ capabilities = ["write"], paths = ["lab/**"] }]

[roles.lab-reader]
grants = [{ capabilities = ["read", "rollback"], paths = ["lab/**"] }]

[roles.dev-writer]
grants = [{ capabilities = ["write"], paths = ["dev/**"] }]

[[bindings]]
name = "writer"
roles = ["lab-writer"]
match = { user = "USER" }

[[bindings]]
name = "dev-reader"
roles = ["lab-reader"]
match = { user = "USER" }
when.labels = { env = "dev" }

[[bindings]]
name = "dev-writer"
roles = ["dev-writer"]
match = { user = "USER" }
when.labels = { env = "dev" }
)");
  RootPut("lab/db", {{"value", "Zq7-prod-secret"}, {"labels", {{"env", "prod"}}}});
  RootPut("dev/existing", {{"value", "x"}, {"labels", {{"env", "dev"}}}});
  RootPut("dev/prod-path", {{"value", "x"}, {"labels", {{"env", "prod"}}}});
  auto r = AsUser({
      {"PUT", "/v1/secrets/lab/db", Body({{"value", "mine"}, {"labels", {{"env", "dev"}}}})},  // 0
      {"GET", "/v1/secrets/lab/db", ""},                                                       // 1 v2: dev
      {"GET", "/v1/secrets/lab/db?version=1", ""},                                             // 2 v1: prod
      {"GET", "/v1/secrets/lab/db/versions", ""},                                              // 3
      {"POST", "/v1/secrets/lab/db/rollback", Body({{"to", 1}})},                            // 4 source: prod
      {"PUT", "/v1/secrets/dev/new", Body({{"value", "x"}, {"labels", {{"env", "dev"}}}})},  // 5 create
      {"PUT", "/v1/secrets/dev/new2", Body({{"value", "x"}})},                               // 6 no labels
      {"PUT", "/v1/secrets/dev/existing", Body({{"value", "y"}})},                           // 7 inherits dev
      {"PUT", "/v1/secrets/dev/existing", Body({{"value", "z"}, {"labels", {{"env", "prod"}}}})},  // 8
      {"PUT", "/v1/secrets/dev/prod-path", Body({{"value", "z"}, {"labels", {{"env", "dev"}}}})},  // 9
      {"POST", "/v1/txn",
       Body({{"ops", json::array({{{"op", "put"},
                                   {"path", "dev/existing"},
                                   {"value", "z"},
                                   {"labels", {{"env", "prod"}}}}})}})},  // 10
  });
  EXPECT_EQ(r[0].status, 200) << "write is not conditioned: " << r[0].body;
  EXPECT_EQ(r[1].status, 200) << r[1].body;
  EXPECT_EQ(r[2].status, 403) << "version 1 is labelled prod: " << r[2].body;
  EXPECT_EQ(r[2].body.find("Zq7-"), std::string::npos);
  ASSERT_EQ(r[3].status, 200) << r[3].body;
  std::vector<std::uint64_t> listed;
  const json history = r[3].Json();
  for (const auto& v : history.value("versions", json::array()))
    listed.push_back(v["version"].get<std::uint64_t>());
  EXPECT_EQ(listed, std::vector<std::uint64_t>{2}) << "only the versions it may read: " << r[3].body;
  EXPECT_EQ(r[4].status, 403) << "a rollback to a prod version: " << r[4].body;
  EXPECT_EQ(r[5].status, 200) << "a create passes the labels it asks for: " << r[5].body;
  EXPECT_EQ(r[6].status, 403) << r[6].body;
  EXPECT_EQ(r[7].status, 200) << "a put without labels keeps the path's: " << r[7].body;
  EXPECT_EQ(r[8].status, 403) << "a put may not write labels its condition refuses: " << r[8].body;
  EXPECT_EQ(r[9].status, 403) << "nor replace a head its condition refuses: " << r[9].body;
  EXPECT_EQ(r[10].status, 403) << r[10].body;
  EXPECT_EQ(States("lab/db").size(), 2u) << "no rollback happened";
  EXPECT_EQ(Root("GET", "/v1/secrets/dev/existing").Json()["labels"], json({{"env", "dev"}}));
  EXPECT_EQ(Root("GET", "/v1/secrets/dev/prod-path").Json()["value"], "x");
  EXPECT_EQ(Root("GET", "/v1/secrets/dev/new2").status, 404);
}

// Item 7: reads and credentials were served while the audit log could not be written.
TEST_F(AuthzTest, AnUnwritableAuditLogStopsValueReadsAndCredentials) {
  Start(R"(
[[credentials]]
unit = "web.service"
id = "db"
path = "apps/web/db"
)",
        "creds_socket = \"run/creds.sock\"\n");
  std::string web = UnitCgroup("web.service");
  ASSERT_FALSE(web.empty()) << "no writable name=systemd cgroup hierarchy";
  const std::string creds = agent_->state_dir() + "/run/creds.sock";
  RootPut("apps/web/db", {{"value", "Zq7-db-password"}});
  ASSERT_EQ(FetchCredential(web, creds, "web.service", "db"), "Zq7-db-password");

  // The audit folder becomes a small tmpfs, then is filled up while the agent runs.
  std::string audit = agent_->state_dir() + "/audit";
  ASSERT_EQ(agent_->Stop(), 0);
  std::filesystem::rename(audit, audit + ".old");
  std::filesystem::create_directories(audit);
  ASSERT_EQ(::mount("tmpfs", audit.c_str(), "tmpfs", 0, "size=128k,mode=0700"), 0) << std::strerror(errno);
  mounted_ = audit;
  agent_->Start();
  {
    std::ofstream filler(audit + "/filler", std::ios::binary);
    std::string chunk(4096, 'x');
    for (int i = 0; i < 64 && filler.write(chunk.data(), static_cast<std::streamsize>(chunk.size())); ++i) {
    }
  }
  // The segment's last page may still hold a few records: change until the disk says no.
  bool refused = false;
  for (int i = 0; i < 200 && !refused; ++i)
    refused = Root("PUT", "/v1/secrets/fill/" + std::to_string(i), {{"value", "x"}}).status == 503;
  ASSERT_TRUE(refused) << "the full disk never refused a change";
  // Each read that is answered is on record; once the log refuses one, nothing is served.
  HttpResponse read;
  for (int i = 0; i < 200; ++i) {
    read = Root("GET", "/v1/secrets/apps/web/db");
    if (read.status != 200) break;
  }
  EXPECT_EQ(read.status, 503) << read.body;
  EXPECT_EQ(read.ErrorCode(), "audit_unavailable");
  EXPECT_EQ(read.body.find("Zq7-"), std::string::npos);
  std::string given = "Zq7-db-password";
  for (int i = 0; i < 200 && !given.empty(); ++i) given = FetchCredential(web, creds, "web.service", "db");
  EXPECT_EQ(given, "") << "a credential is not given while its record cannot be written";
  EXPECT_EQ(Root("GET", "/v1/health").status, 200) << "health stays open";

  std::filesystem::remove(audit + "/filler");
  EXPECT_EQ(Root("GET", "/v1/secrets/apps/web/db").Json()["value"], "Zq7-db-password")
      << "reads come back with the log";
  EXPECT_EQ(FetchCredential(web, creds, "web.service", "db"), "Zq7-db-password");
  EXPECT_TRUE(Root("GET", "/v1/sys/audit/verify").Json()["ok"].get<bool>());
  EXPECT_EQ(agent_->Log().find("Zq7-"), std::string::npos) << "no value in the log";
}

// Item 8: `admin` was all or nothing; a monitoring account could re-seal or accept a
// replayed store.
TEST_F(AuthzTest, EachSysCapabilityGrantsOnlyItsRoutesAndAdminStillGrantsThemAll) {
  Start(R"(
[roles.monitor]
grants = [{ capabilities = ["sys.read"], paths = ["sys"] }]

[roles.operator]
grants = [{ capabilities = ["rotate", "seal"], paths = ["sys"] }]

[roles.legacy-admin]
grants = [{ capabilities = ["admin"], paths = ["sys"] }]

[[bindings]]
name = "monitor"
roles = ["monitor"]
match = { user = "USER" }

[[bindings]]
name = "operator"
roles = ["operator"]
match = { uid = 4242 }

[[bindings]]
name = "legacy"
roles = ["legacy-admin"]
match = { uid = 65534 }
)");
  const Calls sys = {{"GET", "/v1/sys/status", ""},
                     {"GET", "/v1/sys/journal/verify", ""},
                     {"GET", "/v1/sys/audit/verify", ""},
                     {"POST", "/v1/sys/reseal", Body({{"pcrs", json::array()}})},
                     {"POST", "/v1/sys/recover", Body({{"accept_rollback", true}})},
                     {"POST", "/v1/sys/rotate", ""},
                     {"POST", "/v1/sys/seal", ""},
                     {"POST", "/v1/sys/unseal", ""}};
  auto monitor = AsUser(sys);
  for (std::size_t i = 0; i < 3; ++i)
    EXPECT_EQ(monitor[i].status, 200) << std::get<1>(sys[i]) << monitor[i].body;
  for (std::size_t i = 3; i < 8; ++i)
    EXPECT_EQ(monitor[i].status, 403) << std::get<1>(sys[i]) << monitor[i].body;

  auto op = AsUid(kStranger, sys);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(op[i].status, 403) << std::get<1>(sys[i]) << op[i].body;
  for (std::size_t i = 5; i < 8; ++i) EXPECT_EQ(op[i].status, 200) << std::get<1>(sys[i]) << op[i].body;

  // `admin` in an existing policy keeps granting every one of them (reseal and recover
  // are then refused for what they are, not by the policy).
  auto legacy = AsUid(kNobody, sys);
  for (std::size_t i = 0; i < 8; ++i)
    EXPECT_NE(legacy[i].status, 403) << std::get<1>(sys[i]) << legacy[i].body;
  EXPECT_EQ(legacy[3].code, "not_tpm_backend");

  int status = -1;
  std::string out = agent_->Cli(
      "policy explain " + PolicyPath() + " --uid " + std::to_string(user_.uid()) + " sys.read sys", &status,
      "", true);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("grants sys.read on 'sys'"), std::string::npos) << out;
  agent_->Cli("policy explain " + PolicyPath() + " --uid " + std::to_string(user_.uid()) + " reseal sys",
              &status);
  EXPECT_EQ(status, 5);
  agent_->Cli("policy explain " + PolicyPath() + " --uid 65534 recover sys", &status);
  EXPECT_EQ(status, 0) << "admin covers recover";
}

// Item 9: snapshot create and get returned the whole subtree, and get answered 404 for a
// missing name before checking the caller.
TEST_F(AuthzTest, SnapshotsShowOnlyListablePathsAndHideWhetherANameExists) {
  Start(R"(
[roles.releaser]
grants = [{ capabilities = ["snapshot"], paths = ["rel/**"] },
          { capabilities = ["list"], paths = ["rel", "rel/pub/**"] }]

[[bindings]]
name = "releaser"
roles = ["releaser"]
match = { user = "USER" }
)");
  for (const char* p : {"rel/pub/a", "rel/pub/b", "rel/secret/k", "other/x"}) RootPut(p, {{"value", "v"}});
  ASSERT_EQ(Root("POST", "/v1/snapshots", {{"name", "root-snap"}, {"prefix", "other"}}).status, 200);
  auto r = AsUser({
      {"POST", "/v1/snapshots", Body({{"name", "r1"}, {"prefix", "rel"}})},  // 0
      {"GET", "/v1/snapshots/r1", ""},                                       // 1
      {"GET", "/v1/snapshots/root-snap", ""},                                // 2 exists, not its prefix
      {"GET", "/v1/snapshots/no-such", ""},                                  // 3 missing
      {"POST", "/v1/snapshots/root-snap/restore", ""},                       // 4
      {"POST", "/v1/snapshots/no-such/restore", ""},                         // 5
  });
  const json listable = {{"rel/pub/a", 1}, {"rel/pub/b", 1}};
  ASSERT_EQ(r[0].status, 200) << r[0].body;
  EXPECT_EQ(r[0].Json()["versions"], listable) << "rel/secret/k is not the caller's to learn";
  ASSERT_EQ(r[1].status, 200) << r[1].body;
  EXPECT_EQ(r[1].Json()["versions"], listable);
  auto same_answer = [](const Answer& a, const Answer& b, const std::string& a_name,
                        const std::string& b_name) {
    EXPECT_EQ(a.status, 403) << a.body;
    EXPECT_EQ(a.status, b.status);
    EXPECT_EQ(a.code, b.code);
    auto unnamed = [](std::string message, const std::string& name) {
      if (std::size_t at = message.find(name); at != std::string::npos)
        message.replace(at, name.size(), "NAME");
      return message;
    };
    EXPECT_EQ(unnamed(a.Message(), a_name), unnamed(b.Message(), b_name))
        << "an existing and a missing snapshot look alike";
  };
  same_answer(r[2], r[3], "root-snap", "no-such");
  same_answer(r[4], r[5], "root-snap", "no-such");
  EXPECT_EQ(Root("GET", "/v1/snapshots/no-such").status, 404) << "root may learn it is missing";
  // The stored snapshot is the whole subtree; only the answer is filtered.
  EXPECT_EQ(Root("GET", "/v1/snapshots/r1").Json()["versions"].size(), 3u);
}

// Item 10: idempotency keys were global, so another caller could block a key or test a
// guess against it.
TEST_F(AuthzTest, IdempotencyKeysBelongToTheCallerThatUsedThem) {
  Start(R"(
[roles.idem]
grants = [{ capabilities = ["write"], paths = ["idem/**"] }]

[[bindings]]
name = "idem"
roles = ["idem"]
match = { user = "USER" }

[[bindings]]
name = "idem-stranger"
roles = ["idem"]
match = { uid = 4242 }
)");
  const std::string mine =
      Body({{"ops", json::array({PutOp("idem/a", "from-user")})}, {"idempotency_key", "deploy-1"}});
  auto first = AsUser({{"POST", "/v1/txn", mine}});
  ASSERT_EQ(first[0].status, 200) << first[0].body;
  EXPECT_FALSE(first[0].Json()["replayed"].get<bool>());

  // Another caller's own request under the same key is its own: applied, not refused as a
  // reuse of the key.
  auto other = AsUid(
      kStranger,
      {{"POST", "/v1/txn",
        Body({{"ops", json::array({PutOp("idem/b", "from-stranger")})}, {"idempotency_key", "deploy-1"}})}});
  EXPECT_EQ(other[0].status, 200) << other[0].body;
  // A guess at the user's request under its key learns nothing: it is applied anew.
  auto guess = agent_->Call("POST", "/v1/txn", mine);
  ASSERT_EQ(guess.status, 200) << guess.body;
  EXPECT_FALSE(guess.Json()["replayed"].get<bool>());
  EXPECT_NE(guess.Json()["txn_id"], first[0].Json()["txn_id"]);
  // Within one caller's scope the key keeps its meaning.
  auto reuse = Root("POST", "/v1/txn",
                    {{"ops", json::array({PutOp("idem/c", "other")})}, {"idempotency_key", "deploy-1"}});
  EXPECT_EQ(reuse.ErrorCode(), "idempotency_key_reused") << reuse.body;

  // The user's retry still returns its first result.
  auto retry = AsUser({{"POST", "/v1/txn", mine}});
  ASSERT_EQ(retry[0].status, 200) << retry[0].body;
  EXPECT_TRUE(retry[0].Json()["replayed"].get<bool>());
  EXPECT_EQ(retry[0].Json()["txn_id"], first[0].Json()["txn_id"]);

  // The same uid from a systemd unit is another caller.
  std::string cg = UnitCgroup("deploy.service");
  ASSERT_FALSE(cg.empty()) << "no writable name=systemd cgroup hierarchy";
  auto in_unit = AsUser({{"POST", "/v1/txn", mine}}, cg);
  ASSERT_EQ(in_unit[0].status, 200) << in_unit[0].body;
  EXPECT_FALSE(in_unit[0].Json()["replayed"].get<bool>());
}

// Item 11: a listing examined up to 100,000 rows whatever `limit` said.
TEST_F(AuthzTest, ListingsPageWithACursorAndExamineABoundedNumberOfRowsPerRequest) {
  Start(R"(
[roles.zz]
grants = [{ capabilities = ["list"], paths = ["zz/**"] }]

[[bindings]]
name = "zz"
roles = ["zz"]
match = { user = "USER" }
)");
  // 600 paths the user may not see sort before the 3 it may.
  for (int batch = 0; batch < 2; ++batch) {
    json ops = json::array();
    for (int i = 0; i < 300; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "hidden/p%04d", batch * 300 + i);
      ops.push_back(PutOp(name, "h"));
    }
    ASSERT_EQ(Root("POST", "/v1/txn", {{"ops", ops}}).status, 200);
  }
  for (const char* p : {"zz/1", "zz/2", "zz/3"}) RootPut(p, {{"value", "v"}});

  // `limit` holds, and `next` pages through everything once, in order.
  std::vector<std::string> all;
  std::string after;
  for (int pages = 0; pages < 10; ++pages) {
    json j = Root("GET", "/v1/secrets?limit=250" + (after.empty() ? "" : "&after=" + after)).Json();
    ASSERT_LE(j["paths"].size(), 250u) << j.dump().substr(0, 300);
    for (const auto& p : j["paths"]) all.push_back(p["path"].get<std::string>());
    if (!j.value("truncated", false)) break;
    ASSERT_TRUE(j.contains("next")) << "a truncated answer says where to go on";
    after = j["next"].get<std::string>();
  }
  ASSERT_EQ(all.size(), 603u);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), 603u);

  // A caller who may see none of the first rows gets an answer after a bounded amount of
  // work, with a cursor that names none of them.
  auto first = AsUser({{"GET", "/v1/secrets?limit=1", ""}});
  ASSERT_EQ(first[0].status, 200) << first[0].body;
  json j = first[0].Json();
  EXPECT_TRUE(j["paths"].empty()) << "600 rows it may not see are more than one request examines";
  ASSERT_TRUE(j.value("truncated", false)) << j.dump();
  ASSERT_TRUE(j.contains("next")) << j.dump();
  EXPECT_EQ(j["next"].get<std::string>().find("hidden"), std::string::npos) << "the cursor leaks a name";
  std::vector<std::string> seen;
  after = j["next"].get<std::string>();
  int requests = 1;
  while (!after.empty() && requests < 50) {
    auto page = AsUser({{"GET", "/v1/secrets?limit=2&after=" + after, ""}});
    ++requests;
    ASSERT_EQ(page[0].status, 200) << page[0].body;
    json pj = page[0].Json();
    for (const auto& p : pj["paths"]) seen.push_back(p["path"].get<std::string>());
    after = pj.value("truncated", false) ? pj.value("next", "") : "";
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"zz/1", "zz/2", "zz/3"}));

  // A bad cursor or limit is a clear 400.
  EXPECT_EQ(Root("GET", "/v1/secrets?after=~not-a-cursor").ErrorCode(), "bad_cursor");
  EXPECT_EQ(Root("GET", "/v1/secrets?limit=0").status, 400);

  // The CLI follows the cursor.
  std::string out;
  EXPECT_EQ(CliAsUser({"ls"}, &out), 0) << out;
  for (const char* p : {"zz/1", "zz/2", "zz/3"}) EXPECT_NE(out.find(p), std::string::npos) << out;
  EXPECT_EQ(out.find("hidden"), std::string::npos) << out;
}

// Item 14: the code's defaults were no audit log and the built-in policy, while the docs
// showed "audit" and "policy.toml".
TEST(AuthzConfig, TheDefaultsAreAnAuditLogAndAPolicyFileUnderTheStateFolder) {
  auto c = config::ParseConfig("[agent]\nstate_dir = \"/srv/sk\"\n", "t.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->policy_file, "/srv/sk/policy.toml");
  EXPECT_EQ(c->audit_dir, "/srv/sk/audit");
  EXPECT_FALSE(c->metrics_require_auth);
  auto off = config::ParseConfig("[policy]\nfile = \"\"\n[audit]\ndir = \"\"\n", "off.toml");
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  EXPECT_EQ(off->policy_file, "") << "the built-in policy only when asked for";
  EXPECT_EQ(off->audit_dir, "") << "no audit log only when asked for";
  auto metrics = config::ParseConfig("[agent]\nmetrics_require_auth = true\n", "m.toml");
  ASSERT_TRUE(metrics.ok()) << metrics.status().ToString();
  EXPECT_TRUE(metrics->metrics_require_auth);
  EXPECT_FALSE(config::ParseConfig("[agent]\nmetrics_require_auth = \"yes\"\n", "m.toml").ok());
}

TEST_F(AuthzTest, AMissingDefaultPolicyFileStopsTheStartAndTurningAuditOffIsLogged) {
  AgentProcess::Options o;
  agent_ = std::make_unique<AgentProcess>(dir_.path(), o);
  // The config without [policy] and [audit]: the defaults apply.
  std::string config = ReadFile(agent_->config_path());
  for (const char* table : {"\n[policy]\nfile = \"\"\n", "\n[audit]\ndir = \"audit\"\n"}) {
    std::size_t at = config.find(table);
    if (at != std::string::npos) config.erase(at, std::strlen(table));
  }
  ASSERT_EQ(config.find("[policy]"), std::string::npos) << config;
  ASSERT_EQ(config.find("[audit]"), std::string::npos) << config;
  WriteFile(agent_->config_path(), config);
  int status = -1;
  // `timeout` only stops an agent that (wrongly) started; the test waits for its exit.
  std::string out = RunCommandOutput(
      "timeout 60 " + SealkeepdBinary() + " --config " + agent_->config_path() + " 2>&1", &status);
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find(agent_->state_dir() + "/policy.toml"), std::string::npos)
      << "the error names the file it looked for: " << out;

  // With the policy file there, the agent starts and audits under <state>/audit.
  WriteFile(agent_->state_dir() + "/policy.toml", kRootIsAdminPolicy, 0640);
  agent_->Start();
  RootPut("a", {{"value", "v"}});
  EXPECT_FALSE(ReadAuditRecords(agent_->state_dir() + "/audit").empty());
  EXPECT_EQ(agent_->Log().find("no audit log"), std::string::npos) << agent_->Log();
  ASSERT_EQ(agent_->Stop(), 0);

  // Turning the audit log off must be said, and is logged as a warning at start.
  WriteFile(agent_->config_path(), config + "\n[audit]\ndir = \"\"\n");
  agent_->Start();
  EXPECT_NE(agent_->Log().find("no audit log"), std::string::npos) << agent_->Log();
}

// Item 15: /metrics needed no authorisation.
TEST_F(AuthzTest, MetricsMayBeMadeToNeedSysReadWhileHealthStaysOpen) {
  Start(R"(
[roles.monitor]
grants = [{ capabilities = ["sys.read"], paths = ["sys"] }]

[[bindings]]
name = "monitor"
roles = ["monitor"]
match = { user = "USER" }
)",
        "metrics_require_auth = true\n");
  auto nobody = AsUid(kNobody, {{"GET", "/metrics", ""}, {"GET", "/v1/health", ""}});
  EXPECT_EQ(nobody[0].status, 403) << nobody[0].body;
  EXPECT_EQ(nobody[1].status, 200);
  auto monitor = AsUser({{"GET", "/metrics", ""}});
  EXPECT_EQ(monitor[0].status, 200) << monitor[0].body;
  EXPECT_NE(monitor[0].body.find("sealkeep_requests_total"), std::string::npos);
  ASSERT_EQ(Root("GET", "/v1/sys/audit/verify").status, 200);  // also writes buffered records out
  bool recorded = false;
  for (const json& rec : ReadAuditRecords(agent_->state_dir() + "/audit"))
    recorded =
        recorded || (rec["route"] == "GET metrics" && rec["outcome"] == "denied" && rec["uid"] == kNobody);
  EXPECT_TRUE(recorded) << "the denial is on record";
}

TEST_F(AuthzTest, MetricsStayOpenByDefault) {
  Start("");
  auto nobody = AsUid(kNobody, {{"GET", "/metrics", ""}});
  EXPECT_EQ(nobody[0].status, 200) << nobody[0].body;
}

// Staged rotation (docs/rotation.md): a pending value is a credential not yet in use, so
// only a caller with `rotate` reads it, begins, finishes or aborts; `read` alone sees the
// current and previous versions.
TEST_F(AuthzTest, OnlyRotateReadsAPendingValueAndMovesARotation) {
  Start(R"(
[roles.reader]
grants = [{ capabilities = ["read", "list"], paths = ["app/**"] }]

[roles.rotator]
grants = [{ capabilities = ["read", "list", "write", "rotate"], paths = ["app/**"] }]

# `rotate` alone (as a master-key operator's, or what `admin` implies) is no way around `write`.
[roles.rotate-only]
grants = [{ capabilities = ["read", "list", "rotate"], paths = ["app/**"] }]

[[bindings]]
name = "rotate-only"
roles = ["rotate-only"]
match = { uid = 65533 }

[[bindings]]
name = "reader"
roles = ["reader"]
match = { uid = 65534 }

[[bindings]]
name = "rotator"
roles = ["rotator"]
match = { user = "USER" }
)");
  RootPut("app/pw", {{"value", "old"}});
  const std::string begin = json{{"value", "new"}}.dump();
  auto reader = AsUid(kNobody, {{"POST", "/v1/secrets/app/pw/rotation/begin", begin},
                                {"GET", "/v1/secrets/app/pw/rotation/status", ""}});
  EXPECT_EQ(reader[0].status, 403) << reader[0].body;
  EXPECT_EQ(reader[1].status, 200) << reader[1].body;
  EXPECT_EQ(reader[1].Json().value("pending", 1), 0);
  auto rotate_only = AsUid(65533, {{"POST", "/v1/secrets/app/pw/rotation/begin", begin}});
  EXPECT_EQ(rotate_only[0].status, 403) << rotate_only[0].body;

  auto rotator = AsUser({{"POST", "/v1/secrets/app/pw/rotation/begin", begin},
                         {"GET", "/v1/secrets/app/pw?stage=pending", ""}});
  ASSERT_EQ(rotator[0].status, 200) << rotator[0].body;
  EXPECT_EQ(rotator[0].Json().value("version", 0), 2);
  EXPECT_EQ(rotator[0].body.find("new"), std::string::npos);  // no answer carries the value
  ASSERT_EQ(rotator[1].status, 200) << rotator[1].body;
  EXPECT_EQ(rotator[1].Json().value("value", ""), "new");

  reader = AsUid(kNobody, {{"GET", "/v1/secrets/app/pw?stage=pending", ""},
                           {"GET", "/v1/secrets/app/pw", ""},
                           {"GET", "/v1/secrets/app/pw?version=2", ""},
                           {"POST", "/v1/secrets/app/pw/rotation/finish", R"({"version":2})"}});
  EXPECT_EQ(reader[0].status, 403) << reader[0].body;
  EXPECT_EQ(reader[1].Json().value("value", ""), "old");
  EXPECT_EQ(reader[2].status, 404) << reader[2].body;  // a pending version is not served by number
  EXPECT_EQ(reader[2].code, "pending");
  EXPECT_EQ(reader[3].status, 403) << reader[3].body;

  rotator = AsUser({{"POST", "/v1/secrets/app/pw/rotation/finish", R"({"version":2})"}});
  ASSERT_EQ(rotator[0].status, 200) << rotator[0].body;
  reader =
      AsUid(kNobody, {{"GET", "/v1/secrets/app/pw", ""}, {"GET", "/v1/secrets/app/pw?stage=previous", ""}});
  EXPECT_EQ(reader[0].Json().value("value", ""), "new");
  EXPECT_EQ(reader[1].Json().value("value", ""), "old");
  EXPECT_EQ(reader[1].Json().value("version", 0), 1);
}

}  // namespace
}  // namespace sk::testing
