// `sealkeep run`, `watch` and `deploy` end to end (issue 16): the built CLI against a real
// sealkeepd on a real SoftHSM2 token. Long-running commands are started in the background
// with their stdout and stderr on pipes; a test waits for the lines they print (an event),
// never for time to pass.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/cli/cli_test_util.h"
#include "tests/fixtures/test_user.h"

namespace sk::testing {
namespace {

using nlohmann::json;
class CliRunTest : public CliTest {
 protected:
  // A shell script for the child: what it is given to run.
  std::string Script(const std::string& name, const std::string& body) {
    std::string path = dir_.Join(name);
    WriteFile(path, "#!/bin/sh\n" + body, 0755);
    return path;
  }
};

TEST_F(CliRunTest, EnvPutsTheValueInTheChildsEnvironmentOnlyAndExecsTheCommand) {
  Put("apps/web/db", "hunter2");
  EXPECT_EQ(Run("run --env DB_PASSWORD=apps/web/db -- sh -c 'test \"$DB_PASSWORD\" = hunter2'").status, 0);
  CliRun wrong = Run("run --env DB_PASSWORD=apps/web/db -- sh -c 'test \"$DB_PASSWORD\" = nope'");
  EXPECT_EQ(wrong.status, 1) << "the command's exit status is run's";
  // Nothing to watch and no files: run becomes the command (the same pid), and the value
  // is in no argv.
  auto bg =
      Start("run --env DB_PASSWORD=apps/web/db -- sh -c 'echo $$; tr \"\\0\" \" \" </proc/$$/cmdline; echo'");
  EXPECT_EQ(bg->Line(), std::to_string(bg->pid()));
  std::string cmdline = bg->Line();
  EXPECT_EQ(cmdline.find("hunter2"), std::string::npos) << cmdline;
  EXPECT_EQ(bg->Wait(), 0);
  // The command's own exit codes: not found, and a signal.
  EXPECT_EQ(Run("run --env X=apps/web/db -- /nonexistent/cmd").status, 127);
  EXPECT_EQ(Run("run --env X=apps/web/db --file apps/web/db:pw -- sh -c 'kill -TERM $$'").status,
            128 + SIGTERM);
}

TEST_F(CliRunTest, FilesAreWrittenPrivatelyOnATmpfsAndRemovedWhenTheChildExits) {
  Put("apps/web/tls-key", std::string("-----KEY-----\n\x01\x02", 16));
  Put("apps/web/db", "hunter2");
  std::string script = Script("files.sh", R"SH(d="$SEALKEEP_FILES"
echo "dir=$d"
echo "dirmode=$(stat -c %a "$d") fs=$(stat -f -c %T "$d")"
echo "filemode=$(stat -c %a "$d/key.pem") size=$(stat -c %s "$d/key.pem")"
echo "db=$(cat "$d/db")"
echo "env=${DB_PASSWORD:-unset}"
echo "run-env=$(tr '\0' '\n' </proc/$PPID/environ | grep -c '^DB_PASSWORD=')"
)SH");
  auto bg = Start(
      "run --file apps/web/tls-key:key.pem --file apps/web/db:db --env DB_PASSWORD=apps/web/db -- " + script);
  std::string dir_line = bg->Line();
  ASSERT_EQ(dir_line.rfind("dir=", 0), 0u) << dir_line << bg->Rest(1);
  const std::string files = dir_line.substr(4);
  EXPECT_EQ(bg->Line(), "dirmode=700 fs=tmpfs");
  EXPECT_EQ(bg->Line(), "filemode=600 size=16");
  EXPECT_EQ(bg->Line(), "db=hunter2");
  EXPECT_EQ(bg->Line(), "env=hunter2");
  EXPECT_EQ(bg->Line(), "run-env=0") << "the value is in the child's environment, not run's";
  EXPECT_EQ(bg->Wait(), 0);
  EXPECT_FALSE(std::filesystem::exists(files)) << files << " is left behind";
}

TEST_F(CliRunTest, TemplatesRenderSecretsAndJsonKeysAndBadOnesNameTheLine) {
  Put("apps/web/user", "admin");
  Put("apps/web/db", R"({"db":{"password":"s3cret","port":5432}})");
  std::string tmpl = dir_.Join("app.conf.tmpl");
  WriteFile(tmpl,
            "# config {\"a\":{\"b\":1}}\nuser = {{ secret \"apps/web/user\" }}\n"
            "password = {{secret \"apps/web/db\" \"db.password\"}}\nport = {{ secret \"apps/web/db\" "
            "\"db.port\" }}\n");
  CliRun ok = Run("run --template " + tmpl + ":app.conf -- sh -c 'cat \"$SEALKEEP_FILES/app.conf\"'");
  ASSERT_EQ(ok.status, 0) << ok.err;
  EXPECT_EQ(ok.out, "# config {\"a\":{\"b\":1}}\nuser = admin\npassword = s3cret\nport = 5432\n");

  const std::string marker = dir_.Join("ran");
  const std::string touch = " -- touch " + marker;
  WriteFile(tmpl, "a\nb = {{ env \"HOME\" }}\n");
  CliRun unknown = Run("run --template " + tmpl + ":x" + touch);
  EXPECT_EQ(unknown.status, 2) << unknown.err;
  EXPECT_NE(unknown.err.find("line 2: unknown function 'env'"), std::string::npos) << unknown.err;
  WriteFile(tmpl, "a\n\nc = {{ secret \"apps/web/user\"\n");
  CliRun open = Run("run --template " + tmpl + ":x" + touch);
  EXPECT_EQ(open.status, 2) << open.err;
  EXPECT_NE(open.err.find("line 3: '{{' without a closing '}}'"), std::string::npos) << open.err;
  WriteFile(tmpl, "k = {{ secret \"apps/web/db\" \"db.nope\" }}\n");
  CliRun key = Run("run --template " + tmpl + ":x" + touch);
  EXPECT_EQ(key.status, 2) << key.err;
  EXPECT_NE(key.err.find("line 1: secret 'apps/web/db' has no JSON key 'db.nope'"), std::string::npos)
      << key.err;
  WriteFile(tmpl, "k = {{ secret \"apps/web/missing\" }}\n");
  CliRun missing = Run("run --template " + tmpl + ":x" + touch);
  EXPECT_EQ(missing.status, 3) << missing.err;
  EXPECT_NE(missing.err.find("cannot read apps/web/missing"), std::string::npos) << missing.err;
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the command ran after a bad template";
}

TEST_F(CliRunTest, BadArgumentsAndUnreadablePathsStopRunBeforeTheCommandStarts) {
  Put("apps/web/db", "hunter2");
  const std::string marker = dir_.Join("ran");
  const std::string touch = " -- touch " + marker;
  CliRun no_eq = Run("run --env DB_PASSWORD" + touch);
  EXPECT_EQ(no_eq.status, 2);
  EXPECT_NE(no_eq.err.find("--env takes NAME=PATH, not 'DB_PASSWORD'"), std::string::npos) << no_eq.err;
  EXPECT_EQ(Run("run --env 1X=apps/web/db" + touch).status, 2);
  EXPECT_EQ(Run("run --file apps/web/db:../escape" + touch).status, 2);
  EXPECT_EQ(Run("run --on-change signal:NOPE --env X=apps/web/db" + touch).status, 2);
  EXPECT_EQ(Run("run --env X=apps/web/db").status, 2) << "no command";
  CliRun missing = Run("run --env X=apps/web/none" + touch);
  EXPECT_EQ(missing.status, 3);
  // A caller the policy does not let read the path.
  std::string state = agent_->state_dir();
  for (const std::string& d : {dir_.path(), state, state + "/run"}) ASSERT_EQ(::chmod(d.c_str(), 0711), 0);
  ASSERT_EQ(::chmod(agent_->socket().c_str(), 0666), 0);
  ::chmod(dir_.path().c_str(), 0777);
  CliRun forbidden =
      Run("run --env X=apps/web/db" + touch, "", "setpriv --reuid=nobody --regid=nogroup --clear-groups");
  EXPECT_EQ(forbidden.status, 5) << forbidden.err;
  EXPECT_NE(forbidden.err.find("cannot read apps/web/db: "), std::string::npos) << forbidden.err;
  // An agent that is not there: a clear message, exit 6.
  CliRun away = Run("--socket " + Quote(dir_.Join("no.sock")) + " run --env X=apps/web/db" + touch);
  EXPECT_EQ(away.status, 6);
  EXPECT_NE(away.err.find("is sealkeepd running? --wait-agent S waits for it"), std::string::npos)
      << away.err;
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST_F(CliRunTest, WaitAgentWaitsForTheAgentToStart) {
  Put("apps/web/db", "hunter2");
  StopAgent();
  auto bg = Start("run --wait-agent 60 --env X=apps/web/db -- sh -c 'echo \"$X\"'");
  StartAgent();
  EXPECT_EQ(bg->Line(), "hunter2");
  EXPECT_EQ(bg->Wait(), 0);
}

// One SIGHUP per new value of a consumed path; none for an unrelated path under the same
// prefix, none for a new version with the same bytes.
TEST_F(CliRunTest, OnChangeSignalDeliversExactlyOneSignalPerChangedValue) {
  Put("apps/web/db", "one");
  Put("apps/web/user", "admin");
  std::string script = Script("hup.sh", R"SH(trap 'echo "hup $(cat "$SEALKEEP_FILES/db")"' HUP
trap 'exit 0' TERM
echo "started $$ $PPID $(cat "$SEALKEEP_FILES/db")"
while :; do sleep 1 & wait $!; done
)SH");
  auto bg = Start("run --file apps/web/db:db --env U=apps/web/user --on-change signal:HUP -- " + script);
  std::string started = bg->Line();
  ASSERT_EQ(started.rfind("started ", 0), 0u) << started << bg->Rest(1);
  EXPECT_NE(started.find(" " + std::to_string(bg->pid()) + " one"), std::string::npos) << "supervised by run";
  Put("apps/web/db", "two");
  EXPECT_EQ(bg->Line(), "hup two");
  Put("apps/web/db", "two");  // a new version, the same bytes
  EXPECT_TRUE(bg->WaitFor("apps/web/db: a new version with the same bytes", 1)) << bg->Rest(1);
  Put("apps/web/other", "x");  // not consumed
  Put("apps/web/db", "three");
  EXPECT_EQ(bg->Line(), "hup three") << "a signal came for a change that was not one";
  ::kill(bg->pid(), SIGTERM);  // forwarded: the child exits 0
  EXPECT_EQ(bg->Wait(), 0);
  EXPECT_EQ(bg->Rest(0), started + "\nhup two\nhup three\n");
}

TEST_F(CliRunTest, OnChangeRestartRestartsTheChildUnderTheSameSupervisor) {
  Put("apps/web/db", "one");
  auto bg = Start(
      "run --env DB=apps/web/db --on-change restart -- sh -c 'echo \"started $$ $PPID $DB\"; exec sleep "
      "600'");
  std::string first = bg->Line();
  const std::string parent = " " + std::to_string(bg->pid()) + " ";
  ASSERT_NE(first.find(parent + "one"), std::string::npos) << first << bg->Rest(1);
  Put("apps/web/db", "two");
  std::string second = bg->Line();
  EXPECT_NE(second.find(parent + "two"), std::string::npos) << second;
  EXPECT_NE(first.substr(0, first.find(parent)), second.substr(0, second.find(parent))) << "a new child";
  EXPECT_EQ(::kill(bg->pid(), 0), 0) << "run itself keeps running";
  ::kill(bg->pid(), SIGTERM);
  // The child died of the TERM passed on, so run ends by it too: a clean stop for systemd.
  const int st = bg->WaitStatus();
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM) << "wait status " << st;
}

TEST_F(CliRunTest, OnChangeExitStopsTheChildAndExitsForTheServiceManager) {
  Put("apps/web/db", "one");
  auto bg = Start("run --env DB=apps/web/db --on-change exit -- sh -c 'echo started; exec sleep 600'");
  ASSERT_EQ(bg->Line(), "started") << bg->Rest(1);
  Put("apps/web/db", "two");
  EXPECT_EQ(bg->Wait(), 75);
}

TEST_F(CliRunTest, TheChildKeepsRunningWhileTheAgentRestartsAndChangesStillArrive) {
  Put("apps/web/db", "one");
  std::string script = Script("keep.sh", R"SH(trap 'echo "hup $(cat "$SEALKEEP_FILES/db")"' HUP
echo "started $$"
while :; do sleep 1 & wait $!; done
)SH");
  auto bg = Start("run --file apps/web/db:db --on-change signal:HUP -- " + script);
  std::string started = bg->Line();
  ASSERT_EQ(started.rfind("started ", 0), 0u) << bg->Rest(1);
  StopAgent();
  EXPECT_TRUE(bg->WaitFor("trying again (the command keeps running)", 1)) << bg->Rest(1);
  StartAgent();
  Put("apps/web/db", "two");
  EXPECT_EQ(bg->Line(), "hup two");
  EXPECT_EQ(::kill(std::stoi(started.substr(8)), 0), 0) << "the same child";
  ::kill(bg->pid(), SIGTERM);  // passed on: the child ends, and so does run
  EXPECT_EQ(bg->Wait(), 128 + SIGTERM);
}

TEST_F(CliRunTest, WatchPrintsOneLinePerChangeFromTheSeqAskedFor) {
  Put("w/a", "1");
  Put("w/a", "2");
  Put("x/b", "1");
  CliRun last = Run("--json put w/c", "1");
  ASSERT_EQ(last.status, 0) << last.err;
  const std::uint64_t seq = json::parse(last.out).value("seq", std::uint64_t{0});
  CliRun once = Run("watch w --after 0 --once");
  ASSERT_EQ(once.status, 0) << once.err;
  std::istringstream lines(once.out);
  std::vector<std::string> got;
  for (std::string l; std::getline(lines, l);) got.push_back(l.substr(l.find(' ') + 1));
  EXPECT_EQ(got, (std::vector<std::string>{"put w/a 1", "put w/a 2", "put w/c 1"}));
  // From the seq of the last put: parked until the next change; --json gives one object
  // per line.
  auto bg = Start("--json watch w/c --after " + std::to_string(seq));
  Put("w/c", "2");
  json j = json::parse(bg->Line(), nullptr, false);
  EXPECT_EQ(j.value("path", ""), "w/c");
  EXPECT_EQ(j.value("version", 0), 2);
  EXPECT_EQ(j.value("kind", ""), "put");
  EXPECT_EQ(j.value("seq", std::uint64_t{0}), seq + 1);
  // A seq the journal has not reached is a mistake (a store put back from a copy?), not a
  // wait for ever.
  CliRun past = Run("watch w --after " + std::to_string(seq + 1000) + " --once");
  EXPECT_EQ(past.status, 2);
  EXPECT_NE(past.err.find("after_past_head"), std::string::npos) << past.err;
  ::kill(bg->pid(), SIGTERM);
}

}  // namespace
}  // namespace sk::testing
