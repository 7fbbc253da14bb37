// `sealkeep deploy` and what `watch` may show (issue 16), end to end: the built CLI
// against a real sealkeepd on a real SoftHSM2 token; another caller is a throwaway local
// user under a real policy file.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/cli/cli_test_util.h"
#include "tests/fixtures/test_user.h"

namespace sk::testing {
namespace {

using nlohmann::json;

class CliDeployTest : public CliTest {
 protected:
  // The versions of PATH, oldest first, as "kind:state".
  std::vector<std::string> Versions(const std::string& path) {
    CliRun r = Run("--json versions " + Quote(path));
    EXPECT_EQ(r.status, 0) << r.err;
    std::vector<std::string> out;
    for (const auto& v : json::parse(r.out, nullptr, false).value("versions", json::array())) {
      out.push_back(v.value("kind", "") + ":" + v.value("state", ""));
    }
    return out;
  }
};

TEST_F(CliDeployTest, AbortRestoresTheReleaseTogetherAndKeepsRotatedAndKeptPaths) {
  Put("app/db", "db-1");
  Put("app/token", "token-1");
  Put("app/cfg", "cfg-1");
  Put("other/x", "x-1");
  CliRun begin = Run("deploy begin rel-1 --prefix app");
  ASSERT_EQ(begin.status, 0) << begin.err;
  EXPECT_EQ(begin.out, "release rel-1 begun: prefix app, open\n  3 paths recorded; abort restores them\n");
  // The pipeline's changes: a new password, a rotated token (its old value is dead at the
  // target), a config the operator keeps, and a path outside the release.
  Put("app/db", "db-2");
  ASSERT_EQ(Run("put app/token --label sealkeep.rotation=2026-12-07", "token-2").status, 0);
  Put("app/cfg", "cfg-2");
  Put("other/x", "x-2");
  CliRun abort = Run("deploy abort rel-1 --keep app/cfg");
  ASSERT_EQ(abort.status, 0) << abort.err;
  EXPECT_NE(abort.out.find("release rel-1 aborted: 1 path restored"), std::string::npos) << abort.out;
  EXPECT_NE(abort.out.find("  restored app/db: version 3\n"), std::string::npos) << abort.out;
  EXPECT_NE(abort.out.find("  kept app/cfg: kept as asked\n"), std::string::npos) << abort.out;
  EXPECT_NE(abort.out.find("  kept app/token: rotated (label sealkeep.rotation)"), std::string::npos)
      << abort.out;
  EXPECT_EQ(Get("app/db"), "db-1");
  EXPECT_EQ(Get("app/token"), "token-2");
  EXPECT_EQ(Get("app/cfg"), "cfg-2");
  EXPECT_EQ(Get("other/x"), "x-2") << "outside the release";

  // A second abort changes nothing; the release cannot be committed now.
  const auto before = Versions("app/db");
  CliRun again = Run("deploy abort rel-1");
  EXPECT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(again.out, "release rel-1: already aborted; nothing changed\n");
  EXPECT_EQ(Versions("app/db"), before);
  CliRun commit = Run("deploy commit rel-1");
  EXPECT_EQ(commit.status, 4);
  EXPECT_NE(commit.err.find("release_aborted"), std::string::npos) << commit.err;
  CliRun show = Run("--json deploy status rel-1");
  EXPECT_EQ(json::parse(show.out, nullptr, false).value("state", ""), "aborted") << show.out;
}

TEST_F(CliDeployTest, BeginIsIdempotentCommitIsFinalAndStatusListsOpenReleases) {
  Put("app/db", "db-1");
  ASSERT_EQ(Run("deploy begin rel-a --prefix app").status, 0);
  CliRun same = Run("deploy begin rel-a --prefix app");
  EXPECT_EQ(same.status, 0);
  EXPECT_NE(same.out.find("begun (already)"), std::string::npos) << same.out;
  CliRun other = Run("deploy begin rel-a --prefix elsewhere");
  EXPECT_EQ(other.status, 4);
  EXPECT_NE(other.err.find("release_exists"), std::string::npos) << other.err;
  ASSERT_EQ(Run("deploy begin rel-b --prefix app").status, 0);

  CliRun open = Run("deploy status");
  EXPECT_NE(open.out.find("rel-a"), std::string::npos) << open.out;
  EXPECT_NE(open.out.find("rel-b"), std::string::npos) << open.out;
  ASSERT_EQ(Run("deploy commit rel-b").status, 0);
  EXPECT_NE(Run("deploy commit rel-b").out.find("committed (already)"), std::string::npos);
  CliRun committed_abort = Run("deploy abort rel-b");
  EXPECT_EQ(committed_abort.status, 4);
  EXPECT_NE(committed_abort.err.find("release_committed"), std::string::npos) << committed_abort.err;
  open = Run("deploy status");
  EXPECT_NE(open.out.find("rel-a"), std::string::npos) << open.out;
  EXPECT_EQ(open.out.find("rel-b"), std::string::npos) << "committed: not open";
  EXPECT_NE(Run("deploy status --all").out.find("rel-b"), std::string::npos);
  EXPECT_EQ(Run("deploy status nope").status, 3);
  EXPECT_EQ(Run("deploy begin 'bad name' --prefix app").status, 2);
  EXPECT_EQ(Run("deploy abort rel-a --keep '../x'").status, 2);
}

// Only if every target still verifies: a target version destroyed since begin refuses the
// whole abort, and nothing changes.
TEST_F(CliDeployTest, AnAbortWhoseTargetNoLongerVerifiesChangesNothing) {
  std::uint64_t db_at_begin = Put("app/db", "db-1");
  Put("app/cfg", "cfg-1");
  ASSERT_EQ(Run("deploy begin rel-x --prefix app").status, 0);
  Put("app/db", "db-2");
  Put("app/cfg", "cfg-2");
  ASSERT_EQ(Run("destroy app/db --version " + std::to_string(db_at_begin)).status, 0);
  CliRun abort = Run("deploy abort rel-x");
  EXPECT_EQ(abort.status, 4) << abort.out << abort.err;
  EXPECT_NE(abort.err.find("restore_refused"), std::string::npos) << abort.err;
  EXPECT_NE(abort.err.find("app/db"), std::string::npos) << abort.err;
  EXPECT_EQ(Get("app/cfg"), "cfg-2") << "all or nothing";
  EXPECT_EQ(Get("app/db"), "db-2");
  EXPECT_EQ(json::parse(Run("--json deploy status rel-x").out, nullptr, false).value("state", ""), "open");
}

// examples/ci: the shell pipeline, end to end, as a CI job runs it.
TEST_F(CliDeployTest, TheCiExampleRollsTheSecretsBackWhenTheHealthCheckFails) {
  const std::string env =
      "env PATH=" + Quote(std::filesystem::path(SealkeepBinary()).parent_path().string()) +
      ":/usr/bin:/bin SEALKEEP_SOCKET=" + Quote(agent_->socket()) + " ";
  const std::string ci = std::string(SK_SOURCE_DIR) + "/examples/ci/";
  int status = -1;
  std::string out = RunCommandOutput(env + ci + "demo.sh rel-ci 2>&1", &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("release rel-ci begun: prefix apps/web"), std::string::npos) << out;
  EXPECT_NE(out.find("health: database login refused"), std::string::npos) << out;
  EXPECT_NE(out.find("release rel-ci aborted: 2 paths restored"), std::string::npos) << out;
  EXPECT_NE(out.find("demo: release rel-ci was rolled back; the old values are served again"),
            std::string::npos)
      << out;
  EXPECT_EQ(Get("apps/web/db-password"), "old-password");
  // Re-running an aborted release is refused (exit 4) before anything is written: a new
  // attempt is a new release.
  WriteFile(dir_.Join("new.json"),
            R"({"ops":[{"op":"put","path":"apps/web/db-password","value":"new-password"}]})");
  out = RunCommandOutput(
      env + ci + "pipeline.sh rel-ci apps/web " + Quote(dir_.Join("new.json")) + " true 2>&1", &status);
  EXPECT_EQ(status, 4) << out;
  EXPECT_NE(out.find("release_aborted"), std::string::npos) << out;
  EXPECT_EQ(Get("apps/web/db-password"), "old-password");
  // A health check that passes commits the release, and the new values stay.
  out = RunCommandOutput(env + "DB_ACCEPTS=new-password " + ci + "pipeline.sh rel-ok apps/web " +
                             Quote(dir_.Join("new.json")) + " " + ci + "health-check.sh 2>&1",
                         &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("release rel-ok is live"), std::string::npos) << out;
  EXPECT_EQ(Get("apps/web/db-password"), "new-password");
  EXPECT_EQ(json::parse(Run("--json deploy status rel-ok").out, nullptr, false).value("state", ""),
            "committed");
}

// A caller sees changes only to paths it may `list`; the others move its place in the
// journal without a word.
class CliWatchVisibilityTest : public CliTest {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "runs a client as another user: run as root";
    ASSERT_TRUE(user_.ok()) << user_.error();
    AgentProcess::Options o;
    o.policy = true;
    o.agent_config = "socket_group = \"nogroup\"\n";
    agent_ = std::make_unique<AgentProcess>(dir_.path(), o);
    WriteFile(agent_->state_dir() + "/policy.toml", R"(version = 1

[roles.admin]
grants = [{ capabilities = ["read", "list", "write", "delete", "destroy", "rollback", "snapshot", "admin"], paths = ["**"] }]

[roles.team-a]
grants = [{ capabilities = ["read", "list"], paths = ["team/a/**"] }, { capabilities = ["read"], paths = ["team/c/**"] }]

[[bindings]]
name = "root"
roles = ["admin"]
match = { uid = 0 }

[[bindings]]
name = "team-a"
roles = ["team-a"]
match = { uid = )" + std::to_string(user_.uid()) + " }\n",
              0640);
    for (const std::string& d : {dir_.path(), agent_->state_dir(), agent_->state_dir() + "/run"}) {
      ::chmod(d.c_str(), 0711);
    }
    StartAgent();
  }
  std::string AsUser() const {
    std::string groups;
    for (gid_t g : user_.gids()) groups += (groups.empty() ? "" : ",") + std::to_string(g);
    return "setpriv --reuid=" + std::to_string(user_.uid()) + " --regid=" + std::to_string(user_.gid()) +
           " --groups=" + groups;
  }
  std::uint64_t PutSeq(const std::string& path, const std::string& value) {
    CliRun r = Run("--json put " + Quote(path), value);
    EXPECT_EQ(r.status, 0) << r.err;
    return json::parse(r.out, nullptr, false).value("seq", std::uint64_t{0});
  }
  TestUser user_{{"nogroup"}};
};

TEST_F(CliWatchVisibilityTest, AWatcherNeverSeesAPathItMayNotList) {
  PutSeq("team/a/x", "1");
  PutSeq("team/b/hidden-one", "1");
  PutSeq("team/a/z", "1");
  CliRun all = Run("watch team --after 0 --timeout 0", "", AsUser());
  ASSERT_EQ(all.status, 0) << all.err;
  EXPECT_NE(all.out.find(" put team/a/x 1\n"), std::string::npos) << all.out;
  EXPECT_NE(all.out.find(" put team/a/z 1\n"), std::string::npos) << all.out;
  EXPECT_EQ(all.out.find("team/b"), std::string::npos) << all.out;
  CliRun hidden = Run("watch team/b --after 0 --timeout 0", "", AsUser());
  EXPECT_EQ(hidden.status, 0) << hidden.err;
  EXPECT_EQ(hidden.out, "") << "nothing under a prefix it may not list";

  // Parked from a known seq: a hidden change, then a visible one; one answer, the visible.
  const std::uint64_t seq = PutSeq("team/a/x", "2");
  CliRun root_view = Run("watch team --after " + std::to_string(seq) + " --timeout 0");
  EXPECT_EQ(root_view.out, "");
  auto parked = Start("watch team --once --after " + std::to_string(seq), AsUser());
  PutSeq("team/b/hidden-two", "1");
  PutSeq("team/a/y", "1");
  EXPECT_EQ(parked->Line(), std::to_string(seq + 2) + " put team/a/y 1");
  EXPECT_EQ(parked->Wait(), 0);
  EXPECT_EQ(parked->Rest(0), std::to_string(seq + 2) + " put team/a/y 1\n") << "and nothing else";
  // The agent's own view has both.
  CliRun root = Run("watch team --after " + std::to_string(seq) + " --timeout 0");
  EXPECT_NE(root.out.find("team/b/hidden-two"), std::string::npos) << root.out;
}

// `run --on-change` learns of changes through watch, which shows only listable paths: a
// path the caller may read but not list would never change for it, so run refuses.
TEST_F(CliWatchVisibilityTest, RunOnChangeNeedsListOnEveryPathItWatches) {
  PutSeq("team/c/token", "t-1");
  CliRun plain = Run("run --env T=team/c/token -- sh -c 'test \"$T\" = t-1'", "", AsUser());
  EXPECT_EQ(plain.status, 0) << plain.err;
  CliRun watching = Run("run --env T=team/c/token --on-change restart -- true", "", AsUser());
  EXPECT_EQ(watching.status, 5) << watching.err;
  EXPECT_NE(watching.err.find("--on-change cannot see changes to team/c/token: the policy must grant `list`"),
            std::string::npos)
      << watching.err;
}

// The routes behind the commands refuse bad input with the documented errors.
TEST_F(CliDeployTest, WatchAndDeployRoutesRefuseBadInput) {
  Put("app/db", "1");
  auto code = [this](const std::string& method, const std::string& target, const std::string& body = "") {
    HttpResponse r = agent_->Call(method, target, body);
    return std::to_string(r.status) + " " + r.ErrorCode();
  };
  EXPECT_EQ(code("GET", "/v1/watch?timeout_s=301"), "400 bad_request");
  EXPECT_EQ(code("GET", "/v1/watch?after=x"), "400 bad_request");
  EXPECT_EQ(code("GET", "/v1/watch?prefix=../etc"), "400 bad_path");
  EXPECT_EQ(code("GET", "/v1/watch?after=99999&timeout_s=0"), "400 after_past_head");
  HttpResponse all = agent_->Call("GET", "/v1/watch?after=0&timeout_s=0");
  ASSERT_EQ(all.status, 200) << all.body;
  // Nothing past the head: 204 with the seq to go on from, and no body, Content-Length or
  // Content-Type (RFC 9110 8.6).
  const std::string head = std::to_string(all.Json()["seq"].get<std::uint64_t>());
  HttpResponse none = agent_->Call("GET", "/v1/watch?after=" + head + "&timeout_s=0");
  EXPECT_EQ(none.status, 204);
  EXPECT_EQ(none.headers["x-sealkeep-seq"], head);
  EXPECT_EQ(none.headers.count("content-length"), 0u);
  EXPECT_EQ(none.headers.count("content-type"), 0u);
  EXPECT_EQ(none.body, "");
  EXPECT_EQ(code("POST", "/v1/deploys/" + std::string(101, 'a') + "/begin", R"({"prefix":"app"})"),
            "400 bad_name");
  EXPECT_EQ(code("POST", "/v1/deploys/a!b/begin", R"({"prefix":"app"})"), "400 bad_name");
  EXPECT_EQ(code("POST", "/v1/deploys/r1/begin", "{}"), "400 bad_request");
  EXPECT_EQ(code("POST", "/v1/deploys/r1/begin", R"({"prefix":"app","extra":1})"), "400 bad_request");
  EXPECT_EQ(code("POST", "/v1/deploys/r1/begin", R"({"prefix":"app")"), "400 bad_json");
  EXPECT_EQ(code("POST", "/v1/deploys/r1/begin", R"({"prefix":"app"})"), "200 ");
  EXPECT_EQ(code("POST", "/v1/deploys/r1/abort", R"({"keep":"app/db"})"), "400 bad_request");
  EXPECT_EQ(code("POST", "/v1/deploys/r1/abort", R"({"keep":["../x"]})"), "400 bad_request");
  EXPECT_EQ(code("GET", "/v1/deploys?state=maybe"), "400 bad_request");
  EXPECT_EQ(code("DELETE", "/v1/deploys/r1"), "405 method_not_allowed");
  EXPECT_EQ(code("GET", "/v1/deploys/r2"), "404 not_found");
  EXPECT_EQ(code("GET", "/v1/deploys/r1"), "200 ");
  // Sealed: a watch is refused, not parked.
  ASSERT_EQ(agent_->Call("POST", "/v1/sys/seal").status, 200);
  EXPECT_EQ(code("GET", "/v1/watch?timeout_s=1"), "503 sealed");
}

// A watcher whose client hangs up is dropped at once, with its connection (which counts
// against the caller's connection limit), not held until its timeout; a client that only
// shuts down its writing side is not hanging up and still gets its answer.
TEST_F(CliDeployTest, AWatchWhoseClientHangsUpIsDroppedAtOnce) {
  auto metric = [this](const std::string& name) -> long {
    std::istringstream in(agent_->Call("GET", "/metrics").body);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(name + " ", 0) == 0) return std::stol(line.substr(name.size() + 1));
    }
    return -1;
  };
  // Polls the agent's gauge until it reads `want` (20 s at most; the watch lasts 300 s).
  auto reaches = [&](const std::string& name, long want) {
    for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
         std::chrono::steady_clock::now() < end;) {
      if (metric(name) == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  auto connect_and_watch = [this]() {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, agent_->socket().c_str(), sizeof a.sun_path - 1);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
    const std::string req = "GET /v1/watch?prefix=app&timeout_s=300 HTTP/1.1\r\nHost: sk\r\n\r\n";
    EXPECT_EQ(::write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
    return fd;
  };
  const long open_before = metric("sealkeep_connections_open");  // counts the metrics call's own
  int fd = connect_and_watch();
  ASSERT_TRUE(reaches("sealkeep_watches_parked", 1));
  ::close(fd);
  EXPECT_TRUE(reaches("sealkeep_watches_parked", 0)) << "the watch outlived its client";
  EXPECT_TRUE(reaches("sealkeep_connections_open", open_before)) << "the connection outlived its client";

  int half = connect_and_watch();
  ASSERT_TRUE(reaches("sealkeep_watches_parked", 1));
  ASSERT_EQ(::shutdown(half, SHUT_WR), 0);
  Put("app/db", "after the half-close");
  std::string answer;
  char buf[4096];
  for (;;) {
    pollfd p{half, POLLIN, 0};
    if (::poll(&p, 1, 20'000) != 1) break;
    ssize_t n = ::read(half, buf, sizeof buf);
    if (n <= 0) break;
    answer.append(buf, static_cast<std::size_t>(n));
    if (answer.find("\"changes\"") != std::string::npos) break;
  }
  ::close(half);
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
  EXPECT_NE(answer.find("\"path\":\"app/db\""), std::string::npos) << answer;
}

}  // namespace
}  // namespace sk::testing
