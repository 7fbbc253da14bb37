// The exec rotation target with real programs: shell scripts the tests write, which record
// their argv, stdin and process state, or fail, hang, or print too much.
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <cstdlib>
#include <memory>
#include <string>

#include "crypto/bytes.h"
#include "tests/fixtures/temp_dir.h"
#include "tools/cli/rotation_target.h"

namespace sk::testing {
namespace {

using cli::ExecTargetSpec;
using cli::RotationTarget;
namespace tr = cli::target_reason;

class ExecTargetTest : public ::testing::Test {
 protected:
  // An executable shell script in the test's folder.
  std::string Script(const std::string& name, const std::string& body, unsigned mode = 0755) {
    std::string path = dir_.Join(name);
    WriteFile(path, "#!/bin/sh\n" + body, mode);
    return path;
  }

  std::unique_ptr<RotationTarget> Make(const std::string& program, std::vector<std::string> args = {},
                                       std::chrono::seconds timeout = std::chrono::seconds(30)) {
    ExecTargetSpec spec;
    spec.program = program;
    spec.args = std::move(args);
    spec.timeout_s = timeout;
    auto t = cli::MakeTarget(spec, SecretBytes());
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? std::move(t).value() : nullptr;
  }

  TempDir dir_{"rotation-exec"};
};

// Appends "<verb> argc=<n> stdin=[<stdin>]" to the file named by its first argument.
constexpr const char* kRecorder = R"SH(out="$1"
printf '%s argc=%s stdin=[' "$2" "$#" >>"$out"
cat >>"$out"
echo ']' >>"$out"
)SH";

TEST_F(ExecTargetTest, SetTestAndRevertGetTheirVerbAndTheirValueOnStdin) {
  const std::string record = dir_.Join("record");
  auto t = Make(Script("rotate.sh", kRecorder), {record});
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->Describe(), "exec " + dir_.Join("rotate.sh"));
  ASSERT_TRUE(t->Set(AsBytes("new value\nline 2"), AsBytes("old value")).ok());
  ASSERT_TRUE(t->Test(AsBytes("new value\nline 2")).ok());
  ASSERT_TRUE(t->Revert(AsBytes("old value"), AsBytes("new value\nline 2")).ok());
  ASSERT_TRUE(t->Test(AsBytes("")).ok());
  EXPECT_EQ(ReadFile(record),
            "set argc=2 stdin=[new value\nline 2]\n"
            "test argc=2 stdin=[new value\nline 2]\n"
            "revert argc=2 stdin=[old value]\n"
            "test argc=2 stdin=[]\n");
}

TEST_F(ExecTargetTest, TheProgramGetsPathOnlyNoBlockedOrIgnoredSignalsAndAGroupOfItsOwn) {
  const std::string record = dir_.Join("record");
  auto t = Make(Script("state.sh", R"SH({
  echo "cwd=$(pwd)"
  echo "path=$PATH"
  echo "leak=${SK_ROTATION_TEST_LEAK-unset}"
  set -- $(cut -d' ' -f5 /proc/$$/stat)
  [ "$1" = "$$" ] && echo "own process group"
} >"$0.out"
# Its signal state, read by the process itself: the shell blocks every signal around its forks.
exec grep -E '^Sig(Blk|Ign):' /proc/self/status >>"$0.out"
)SH"));
  ASSERT_NE(t, nullptr);
  // What a CLI may have done to itself: blocked signals, an ignored one, a secret in env.
  ::setenv("SK_ROTATION_TEST_LEAK", "leaked", 1);
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGUSR1);
  ::sigprocmask(SIG_BLOCK, &block, &old_mask);
  struct sigaction ignore {
  }, old_int{};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGINT, &ignore, &old_int);
  Status st = t->Set(AsBytes("v"), AsBytes("o"));
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  ::unsetenv("SK_ROTATION_TEST_LEAK");
  ASSERT_TRUE(st.ok()) << st.ToString();
  const std::string out = ReadFile(dir_.Join("state.sh.out"));
  const std::string expected =
      "cwd=/\npath=/usr/sbin:/usr/bin:/sbin:/bin\nleak=unset\nown process group\nSigBlk:\t0000000000000000\n";
  EXPECT_EQ(out.rfind(expected, 0), 0u) << out;
  // glibc's posix_spawn leaves its two internal signals (32, 33) ignored; no standard
  // signal is (SIGINT was, in the test).
  const std::size_t ign = out.find("SigIgn:\t");
  ASSERT_NE(ign, std::string::npos) << out;
  const unsigned long long ignored = std::stoull(out.substr(ign + 8, 16), nullptr, 16);
  EXPECT_EQ(ignored & 0x7fffffffULL, 0u) << out;
}

TEST_F(ExecTargetTest, ExitStatusOneOfTestIsARefusalQuotingTheProgramsOutput) {
  auto t = Make(Script("refuse.sh", "echo \"no: $1\"\nexit 1\n"));
  ASSERT_NE(t, nullptr);
  Status test = t->Test(AsBytes("value-x"));
  EXPECT_EQ(test.reason(), tr::kRefused) << test.ToString();
  EXPECT_EQ(test.code(), Code::kUnauthenticated);
  EXPECT_NE(test.message().find("output: no: test"), std::string::npos) << test.ToString();
  Status set = t->Set(AsBytes("value-x"), AsBytes("old"));
  EXPECT_EQ(set.reason(), tr::kFailed) << "exit 1 refuses only in test: " << set.ToString();
  EXPECT_NE(set.message().find("exit status 1"), std::string::npos) << set.ToString();
}

TEST_F(ExecTargetTest, OtherExitsAndSignalsAreTargetFailed) {
  auto exits = Make(Script("three.sh", "echo 'cannot reach the thing' >&2\nexit 3\n"));
  ASSERT_NE(exits, nullptr);
  Status st = exits->Test(AsBytes("v"));
  EXPECT_EQ(st.reason(), tr::kFailed) << st.ToString();
  EXPECT_NE(st.message().find("exit status 3"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("cannot reach the thing"), std::string::npos) << "stderr is captured too";

  auto killed = Make(Script("killed.sh", "kill -TERM $$\n"));
  ASSERT_NE(killed, nullptr);
  Status k = killed->Revert(AsBytes("o"), AsBytes("n"));
  EXPECT_EQ(k.reason(), tr::kFailed) << k.ToString();
  EXPECT_NE(k.message().find("killed by signal 15"), std::string::npos) << k.ToString();
}

TEST_F(ExecTargetTest, ATimeoutKillsTheProgramAndEverythingItStarted) {
  const std::string pid_file = dir_.Join("sleeper.pid");
  auto t = Make(Script("hang.sh", "echo started\nsleep 600 &\necho $! >\"$1\"\nwait\n"), {pid_file},
                std::chrono::seconds(1));
  ASSERT_NE(t, nullptr);
  Status st = t->Set(AsBytes("v"), AsBytes("o"));
  EXPECT_EQ(st.reason(), tr::kTimeout) << st.ToString();
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_NE(st.message().find("output: started"), std::string::npos) << st.ToString();
  // The background sleep was in the program's group: it is gone (or going) too.
  const pid_t sleeper = static_cast<pid_t>(std::atoi(ReadFile(pid_file).c_str()));
  ASSERT_GT(sleeper, 0);
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, sleeper, 0));
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 10'000), 1) << "the background sleep outlived its group's SIGKILL";
    ::close(pidfd);
  }
}

TEST_F(ExecTargetTest, AMissingOrUnusableProgramIsAClearError) {
  ExecTargetSpec spec;
  spec.program = dir_.Join("missing.sh");
  auto missing = cli::MakeTarget(spec, SecretBytes());
  EXPECT_EQ(missing.status().reason(), tr::kBadTarget);
  EXPECT_NE(missing.status().message().find(spec.program + " cannot be found"), std::string::npos)
      << missing.status().ToString();
  spec.program = "rotate.sh";
  auto relative = cli::MakeTarget(spec, SecretBytes());
  EXPECT_NE(relative.status().message().find("absolute path"), std::string::npos)
      << relative.status().ToString();
  spec.program = Script("plain.sh", "exit 0\n", 0644);
  auto plain = cli::MakeTarget(spec, SecretBytes());
  EXPECT_NE(plain.status().message().find("not an executable file"), std::string::npos)
      << plain.status().ToString();
  spec.program = dir_.path();
  EXPECT_EQ(cli::MakeTarget(spec, SecretBytes()).status().reason(), tr::kBadTarget) << "a folder";

  // Gone between MakeTarget and the step.
  auto gone = Make(Script("gone.sh", "exit 0\n"));
  ASSERT_NE(gone, nullptr);
  ::unlink(dir_.Join("gone.sh").c_str());
  Status st = gone->Set(AsBytes("v"), AsBytes("o"));
  EXPECT_EQ(st.reason(), tr::kFailed) << st.ToString();
  EXPECT_NE(st.message().find("cannot run " + dir_.Join("gone.sh")), std::string::npos) << st.ToString();
}

TEST_F(ExecTargetTest, OnlyTheFirst4KiBOfOutputAreKept) {
  auto t = Make(Script("loud.sh", "head -c 100000 /dev/zero | tr '\\0' x\nexit 2\n"));
  ASSERT_NE(t, nullptr);
  Status st = t->Set(AsBytes("v"), AsBytes("o"));
  EXPECT_EQ(st.reason(), tr::kFailed);
  EXPECT_NE(st.message().find(std::string(cli::kMaxExecOutput, 'x') + " [...]"), std::string::npos);
  EXPECT_LT(st.message().size(), cli::kMaxExecOutput + 300);
}

TEST_F(ExecTargetTest, ALargeValueReachesTheProgramAndOneThatIsNotReadDoesNoHarm) {
  const std::string value(1 << 20, 'v');  // more than a socket buffer holds
  const std::string copy = dir_.Join("copy");
  auto reader = Make(Script("read.sh", "cat >\"$1\"\n"), {copy});
  ASSERT_NE(reader, nullptr);
  ASSERT_TRUE(reader->Set(AsBytes(value), AsBytes("o")).ok());
  EXPECT_EQ(ReadFile(copy), value);

  auto ignorer = Make(Script("ignore.sh", "exit 0\n"));
  ASSERT_NE(ignorer, nullptr);
  Status st = ignorer->Set(AsBytes(value), AsBytes("o"));
  EXPECT_TRUE(st.ok()) << st.ToString() << " (no SIGPIPE in the rotator either: the test is still running)";
}

}  // namespace
}  // namespace sk::testing
