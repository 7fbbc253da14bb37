// creds.sock end to end: a real sealkeepd with a policy that names systemd credentials,
// and a client that asks the way systemd's service manager does for
// LoadCredential=ID:/path/creds.sock (it binds "\0<random>/unit/<unit>/<id>", connects,
// shuts down its sending side and reads to EOF). What is given, what is refused and why,
// the audit records, the sealed agent, a reloaded policy, and callers that are not root.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "agent/api/creds.h"
#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/temp_dir.h"
#include "tests/fixtures/test_user.h"

namespace sk::testing {
namespace {

using nlohmann::json;

// Root is an admin; three units get credentials.
const std::string kPolicy = std::string(kRootIsAdminPolicy) + R"(
[[credentials]]
unit = "web.service"
id = "db-password"
path = "apps/web/db"

[[credentials]]
unit = "web.service"
id = "tls.key"
path = "apps/web/tls-key"

[[credentials]]
unit = "api.service"
id = "db-password"
path = "apps/api/db"
)";

struct Fetched {
  bool connected = false;
  std::string data;
};

// Asks for credential `id` of `unit` as systemd does. With bind_name false the client
// connects from an unnamed socket (not systemd).
Fetched FetchCredential(const std::string& sock, const std::string& unit, const std::string& id,
                        bool bind_name = true) {
  Fetched f;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return f;
  if (bind_name) {
    sockaddr_un local{};
    local.sun_family = AF_UNIX;
    std::string name = std::to_string(std::random_device()()) + "/unit/" + unit + "/" + id;
    std::memcpy(local.sun_path + 1, name.data(), std::min(name.size(), sizeof(local.sun_path) - 1));
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), len) != 0) {
      ::close(fd);
      return f;
    }
  }
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, sock.c_str(), sizeof(a.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return f;
  }
  f.connected = true;
  ::shutdown(fd, SHUT_WR);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) f.data.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return f;
}

// The same, in a child process that first joins `cgroup_dir` (a unit-shaped cgroup, as
// systemd's process for the unit is in when it loads credentials; "" = stay here) and
// runs as uid/gid (0 = stays root). Returns "<connected> <data>".
std::string FetchAs(const std::string& cgroup_dir, uid_t uid, gid_t gid, const std::string& sock,
                    const std::string& unit, const std::string& id, bool bind_name = true) {
  int status = 0;
  std::string out = OutputOfChild([uid, gid] { return uid == 0 || BecomeUid(uid, gid); },
                                  [&] {
                                    Fetched f = FetchCredential(sock, unit, id, bind_name);
                                    return std::string(f.connected ? "1 " : "0 ") + f.data;
                                  },
                                  cgroup_dir, &status);
  EXPECT_EQ(status, 0) << "the child failed";
  return out;
}

// Waits (up to 10 s) until the agent's log holds `what`.
bool LogShows(const AgentProcess& agent, const std::string& what) {
  for (int i = 0; i < 500; ++i) {
    if (agent.Log().find(what) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

class CredsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "systemd's service manager is root: run as root";
    AgentProcess::Options o;
    o.policy = true;
    o.agent_config = "creds_socket = \"run/creds.sock\"\n";
    agent_ = std::make_unique<AgentProcess>(dir_.path(), o);
    WriteFile(agent_->state_dir() + "/policy.toml", kPolicy, 0640);
    agent_->Start();
    creds_ = agent_->state_dir() + "/run/creds.sock";
    ASSERT_EQ(Put("apps/web/db", {{"value", "Vq8-db-password-Lm3"}}), 200);
    ASSERT_EQ(Put("apps/api/db", {{"value", "Vq8-api-password-Lm3"}}), 200);
  }
  void TearDown() override {
    for (auto it = cgroups_.rbegin(); it != cgroups_.rend(); ++it) ::rmdir(it->c_str());
  }
  // A cgroup at `rel` ("web.service", "deleg.service/payload/web.service") below a slice of
  // this test's own: in the name=systemd hierarchy on hybrid hosts, else the unified one.
  std::string UnitCgroup(const std::string& rel) {
    for (const char* root : {"/sys/fs/cgroup/systemd", "/sys/fs/cgroup"}) {
      if (!std::filesystem::exists(std::string(root) + "/cgroup.procs")) continue;
      std::string at = std::string(root) + "/sk-creds-" + std::to_string(::getpid()) + ".slice";
      if (::mkdir(at.c_str(), 0755) == 0) cgroups_.push_back(at);
      for (const auto& part : std::filesystem::path(rel)) {
        at += "/" + part.string();
        if (::mkdir(at.c_str(), 0755) == 0) cgroups_.push_back(at);
      }
      EXPECT_TRUE(std::filesystem::is_directory(at)) << "cannot make the cgroup " << at;
      return at;
    }
    ADD_FAILURE() << "no cgroup hierarchy with cgroup.procs under /sys/fs/cgroup";
    return "";
  }
  // Asks as systemd's process for `unit` would (root, in the unit's cgroup).
  std::string Ask(const std::string& unit, const std::string& id) {
    std::string cg = UnitCgroup(unit);
    EXPECT_FALSE(cg.empty()) << "no writable cgroup hierarchy";
    return FetchAs(cg, 0, 0, creds_, unit, id);
  }
  int Put(const std::string& path, const json& body) {
    return agent_->Call("PUT", "/v1/secrets/" + path, body.dump()).status;
  }
  TempDir dir_{"creds"};
  std::unique_ptr<AgentProcess> agent_;
  std::string creds_;
  std::vector<std::string> cgroups_;
};

TEST_F(CredsTest, TheServiceManagerGetsExactlyTheValueThePolicyNamesAndItsNewestVersion) {
  struct stat st {};
  ASSERT_EQ(::stat(creds_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the credential socket is the agent's alone";

  EXPECT_EQ(Ask("web.service", "db-password"), "1 Vq8-db-password-Lm3")
      << "the value, with nothing around it";
  EXPECT_EQ(Ask("api.service", "db-password"), "1 Vq8-api-password-Lm3") << "the same id, another unit";

  ASSERT_EQ(Put("apps/web/db", {{"value", "Vq8-rotated-Lm3"}}), 200);
  EXPECT_EQ(Ask("web.service", "db-password"), "1 Vq8-rotated-Lm3");

  // A binary value (with a NUL and non-UTF-8 bytes) arrives byte for byte.
  ASSERT_EQ(Put("apps/web/tls-key", {{"value_b64", "AAH/gHRscwA="}}), 200);
  EXPECT_EQ(Ask("web.service", "tls.key"), std::string("1 \x00\x01\xff\x80tls\x00", 10));

  // An id the unit was not given, a unit with no entries: connected, nothing written.
  EXPECT_EQ(Ask("web.service", "other"), "1 ");
  EXPECT_EQ(Ask("cron.service", "db-password"), "1 ");
  EXPECT_TRUE(LogShows(
      *agent_, "no [[credentials]] entry in the policy gives credential 'other' to unit 'web.service'"))
      << agent_->Log();
  // A root process in web.service naming api.service (or outside any unit) gets nothing:
  // the unit is the caller's cgroup, not what its address claims.
  EXPECT_EQ(FetchAs(UnitCgroup("web.service"), 0, 0, creds_, "api.service", "db-password"), "1 ");
  Fetched outside = FetchCredential(creds_, "web.service", "db-password");
  EXPECT_TRUE(outside.connected);
  EXPECT_EQ(outside.data, "");
  EXPECT_TRUE(LogShows(*agent_, "the caller is in unit 'web.service', not 'api.service'")) << agent_->Log();

  // Every answer is on the audit record; the chain verifies; no value is in a log.
  ASSERT_TRUE(agent_->Call("GET", "/v1/sys/audit/verify").Json()["ok"].get<bool>());
  int given = 0;
  std::map<std::string, int> denied;
  std::string audit_text;
  for (const json& rec : ReadAuditRecords(agent_->state_dir() + "/audit")) {
    audit_text += rec.dump();
    if (rec["route"].get<std::string>().rfind("CREDENTIAL ", 0) != 0) continue;
    EXPECT_EQ(rec["uid"], 0);
    if (rec["outcome"] == "allowed") {
      ++given;
      EXPECT_EQ(rec["route"].get<std::string>().substr(11, rec["unit"].get<std::string>().size()),
                rec["unit"])
          << "given only to the unit it was asked for: " << rec.dump();
    } else {
      EXPECT_EQ(rec["outcome"], "denied") << rec.dump();
      ++denied[rec["reason"].get<std::string>()];
    }
  }
  EXPECT_EQ(given, 4);
  EXPECT_EQ(denied["no_credential"], 2);
  EXPECT_EQ(denied["unit_mismatch"], 2);
  for (const std::string& text : {audit_text, agent_->Log()}) {
    EXPECT_EQ(text.find("Vq8-"), std::string::npos) << "a credential value reached a log";
  }
  std::string metrics = agent_->Call("GET", "/metrics").body;
  EXPECT_NE(metrics.find("sealkeep_alerts_total{event=\"denied\"} 4\n"), std::string::npos)
      << "each denial raises the alert: " << metrics;
}

TEST_F(CredsTest, ASealedAgentGivesNothingUntilUnsealedAndAReloadedPolicyAddsCredentials) {
  ASSERT_EQ(agent_->Call("POST", "/v1/sys/seal").status, 200);
  EXPECT_EQ(Ask("web.service", "db-password"), "1 ");
  EXPECT_TRUE(LogShows(*agent_, "credential 'db-password' of unit 'web.service': ")) << agent_->Log();
  ASSERT_EQ(agent_->Call("POST", "/v1/sys/unseal").status, 200);
  EXPECT_EQ(Ask("web.service", "db-password"), "1 Vq8-db-password-Lm3");

  EXPECT_EQ(Ask("worker.service", "queue"), "1 ");
  ASSERT_EQ(Put("apps/worker/queue", {{"value", "q-token"}}), 200);
  WriteFile(
      agent_->state_dir() + "/policy.toml",
      std::string(kPolicy) +
          "\n[[credentials]]\nunit = \"worker.service\"\nid = \"queue\"\npath = \"apps/worker/queue\"\n",
      0640);
  ::kill(agent_->pid(), SIGHUP);
  ASSERT_TRUE(LogShows(*agent_, "SIGHUP: policy reloaded")) << agent_->Log();
  EXPECT_EQ(Ask("worker.service", "queue"), "1 q-token");
}

TEST_F(CredsTest, OnlyTheServiceManagerConnectingFromAUnitAddressIsAnswered) {
  std::string web = UnitCgroup("web.service");
  // An unnamed client (not systemd's address shape) gets nothing, even from the unit.
  EXPECT_EQ(FetchAs(web, 0, 0, creds_, "web.service", "db-password", /*bind_name=*/false), "1 ");
  EXPECT_TRUE(LogShows(*agent_, "did not connect from an address")) << agent_->Log();

  // nobody cannot even connect: the socket is 0600 and the agent's.
  for (const std::string& d : {dir_.path(), agent_->state_dir(), agent_->state_dir() + "/run"})
    ::chmod(d.c_str(), 0711);
  EXPECT_EQ(FetchAs(web, 65534, 65534, creds_, "web.service", "db-password"), "0 ");
  // Opened up by mistake, the socket still answers nobody (in the unit) with nothing.
  ASSERT_EQ(::chmod(creds_.c_str(), 0666), 0);
  EXPECT_EQ(FetchAs(web, 65534, 65534, creds_, "web.service", "db-password"), "1 ");
  EXPECT_TRUE(LogShows(*agent_, "uid 65534 is not the service manager")) << agent_->Log();
  ASSERT_TRUE(agent_->Call("GET", "/v1/sys/audit/verify").Json()["ok"].get<bool>());
  std::map<std::string, int> denied;
  for (const json& rec : ReadAuditRecords(agent_->state_dir() + "/audit")) {
    if (rec["route"] == "CREDENTIAL ?") ++denied[rec["reason"].get<std::string>()];
  }
  EXPECT_EQ(denied["bad_address"], 1);
  EXPECT_EQ(denied["not_service_manager"], 1);
  // And the API socket's clients are unaffected throughout.
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/apps/web/db").Json()["value"], "Vq8-db-password-Lm3");
}

// systemd asks from the unit's own process, at the unit's cgroup. A root process below a
// Delegate=yes service (a container's payload, say) or in a user's manager may build a
// cgroup tree ending in web.service; it is still in deleg.service or user@0.service.
TEST_F(CredsTest, NoRootProcessBelowAnotherUnitPassesForTheUnit) {
  EXPECT_EQ(FetchAs(UnitCgroup("deleg.service/payload/system.slice/web.service"), 0, 0, creds_, "web.service",
                    "db-password"),
            "1 ");
  EXPECT_TRUE(LogShows(*agent_, "the caller is in unit 'deleg.service', not 'web.service'")) << agent_->Log();
  EXPECT_EQ(FetchAs(UnitCgroup("user-0.slice/user@0.service/app.slice/web.service"), 0, 0, creds_,
                    "web.service", "db-password"),
            "1 ");
  EXPECT_TRUE(LogShows(*agent_, "the caller is in unit 'user@0.service', not 'web.service'"))
      << agent_->Log();
  EXPECT_EQ(Ask("web.service", "db-password"), "1 Vq8-db-password-Lm3")
      << "while the unit itself is answered";
}

TEST(CredsPeer, TheAddressNamesAUnitAndAnIdOrNothing) {
  auto ask = api::ParseCredentialPeer("9f3b1c2d/unit/web.service/db-password");
  ASSERT_TRUE(ask.has_value());
  EXPECT_EQ(ask->unit, "web.service");
  EXPECT_EQ(ask->id, "db-password");
  auto templated = api::ParseCredentialPeer("1/unit/getty@tty1.service/x.y");
  ASSERT_TRUE(templated.has_value());
  EXPECT_EQ(templated->unit, "getty@tty1.service");
  for (const char* bad :
       {"", "9f3b", "/unit/web.service/x", "a/b/unit/web.service/x", "9f3b/unit/", "9f3b/unit/web.service",
        "9f3b/unit/web.service/", "9f3b/unit/web/db", "9f3b/unit/web.service/a/b", "9f3b/unit/web.service/..",
        "9f3b/unit/.service/x", "9f3b/unit/web.service/a b"}) {
    EXPECT_FALSE(api::ParseCredentialPeer(bad).has_value()) << bad;
  }
  EXPECT_FALSE(api::ParseCredentialPeer(std::string_view("1/unit/web.service/a\0b", 22)).has_value());
}

}  // namespace
}  // namespace sk::testing
