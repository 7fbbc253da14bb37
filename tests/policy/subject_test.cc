#include "agent/policy/subject.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <string>

#include "agent/policy/peer_identity.h"
#include "tests/fixtures/temp_dir.h"

namespace sk::policy {
namespace {

TEST(CgroupParserTest, PureV2LineNamesTheUnit) {
  EXPECT_EQ(ParseSystemdUnit("0::/system.slice/web.service\n"), "web.service");
  EXPECT_EQ(ParseSystemdUnit("0::/system.slice/web.service"), "web.service");  // no final newline
}

TEST(CgroupParserTest, HybridHostUsesTheNamedSystemdLineWhenV2IsRoot) {
  const char* text =
      "12:cpu,cpuacct:/\n"
      "9:name=systemd:/sk-test.slice/web.service\n"
      "4:memory:/process_api/8d4e8bc3\n"
      "0::/\n";
  EXPECT_EQ(ParseSystemdUnit(text), "web.service");
}

TEST(CgroupParserTest, V2WinsWhenBothNameAUnit) {
  EXPECT_EQ(ParseSystemdUnit("1:name=systemd:/system.slice/old.service\n0::/system.slice/new.service\n"),
            "new.service");
}

TEST(CgroupParserTest, NestedUserUnitsAndScopes) {
  EXPECT_EQ(ParseSystemdUnit("0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope\n"),
            "x.scope");
  EXPECT_EQ(ParseSystemdUnit("0::/user.slice/user-1000.slice/session-3.scope\n"), "session-3.scope");
  EXPECT_EQ(ParseSystemdUnit("0::/init.scope\n"), "init.scope");
  // A delegated sub-cgroup below the unit still belongs to the unit.
  EXPECT_EQ(ParseSystemdUnit("0::/system.slice/web.service/worker\n"), "web.service");
  EXPECT_EQ(ParseSystemdUnit("0::/system.slice/getty@tty1.service\n"), "getty@tty1.service");
  EXPECT_EQ(ParseSystemdUnit("0::/system.slice/dbus.socket\n"), "dbus.socket");
  EXPECT_EQ(ParseSystemdUnit("0::/system.slice/_cpu.service\n"), "cpu.service");  // cg_escape()d
}

TEST(CgroupParserTest, NoUnitGivesEmpty) {
  EXPECT_EQ(ParseSystemdUnit(""), "");
  EXPECT_EQ(ParseSystemdUnit("0::/\n"), "");
  EXPECT_EQ(ParseSystemdUnit("0::/system.slice\n9:name=systemd:/\n"), "");
  EXPECT_EQ(ParseSystemdUnit("4:memory:/system.slice/web.service\n"), "");  // not the systemd hierarchy
  EXPECT_EQ(ParseSystemdUnit("garbage\n::\n0:\n"), "");
  EXPECT_EQ(ParseSystemdUnit("0::/a.service.d/x\n"), "");
  EXPECT_EQ(ParseSystemdUnit("0::/.service\n"), "");
}

TEST(CgroupParserTest, PathsMayContainColons) {
  EXPECT_EQ(ParseSystemdUnit("0::/system.slice/a:b.service\n"), "a:b.service");
}

TEST(StatusParserTest, GroupsAndEffectiveUid) {
  const char* status =
      "Name:\tcat\nUmask:\t0022\nUid:\t1000\t1001\t1002\t1003\nGid:\t100\t100\t100\t100\n"
      "Groups:\t4 24 27 \nNSpid:\t1\n";
  Result<std::vector<std::uint32_t>> g = ParseStatusGroups(status);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(*g, (std::vector<std::uint32_t>{4, 24, 27}));
  Result<std::uint32_t> uid = ParseStatusEffectiveUid(status);
  ASSERT_TRUE(uid.ok());
  EXPECT_EQ(*uid, 1001U);
  Result<std::vector<std::uint32_t>> none = ParseStatusGroups("Groups:\t\n");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(ParseStatusGroups("Name:\tx\n").ok());
  EXPECT_FALSE(ParseStatusGroups("Groups:\t4 x\n").ok());
  EXPECT_FALSE(ParseStatusGroups("Groups:\t99999999999\n").ok());
  EXPECT_FALSE(ParseStatusEffectiveUid("Uid:\t1\t2\n").ok());
}

TEST(PeerIdentityTest, ReadsItsOwnProcess) {
  PeerCredentials me{static_cast<std::int32_t>(::getpid()), static_cast<std::uint32_t>(::geteuid()),
                     static_cast<std::uint32_t>(::getegid())};
  std::string partial;
  Result<Subject> s = SubjectFromPeer(me, "/proc", &partial);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(partial, "");
  EXPECT_EQ(s->uid, me.uid);
  EXPECT_EQ(s->pid, me.pid);
  char exe[PATH_MAX] = {};
  ASSERT_GT(::readlink("/proc/self/exe", exe, sizeof exe - 1), 0);
  EXPECT_EQ(s->exe, exe);
  EXPECT_EQ(s->user, UserName(me.uid));
  ASSERT_FALSE(s->gids.empty());
  EXPECT_EQ(s->gids.front(), me.gid);
}

TEST(PeerIdentityTest, AGonePidKeepsItsKernelIdentityAndNothingElse) {
  PeerCredentials gone{0x3FFFFFF0, 0, 0};
  std::string partial;
  Subject s = SubjectFromPeer(gone, "/proc", &partial);
  EXPECT_NE(partial, "");
  EXPECT_EQ(s.uid, 0U);
  EXPECT_EQ(s.gid, 0U);
  EXPECT_EQ(s.pid, 0x3FFFFFF0);
  EXPECT_EQ(s.user, "root");
  EXPECT_TRUE(s.HasGroup("root"));
  EXPECT_EQ(s.unit, "");
  EXPECT_EQ(s.exe, "");
}

// ProtectProc=invisible hides other users' /proc/<pid> entirely: the caller is still its
// SO_PEERCRED uid and gid, without a unit, exe or supplementary groups.
TEST(PeerIdentityTest, AHiddenProcEntryStillYieldsTheKernelUidAndGid) {
  testing::TempDir proc("proc");
  ::mkdir(proc.Join("41").c_str(), 0700);  // another process is visible; 42 is not
  testing::WriteFile(proc.Join("41/cgroup"), "0::/system.slice/other.service\n");
  testing::WriteFile(proc.Join("41/status"), "Uid:\t1000\t1000\t1000\t1000\nGroups:\t10\n");
  PeerCredentials peer{42, 1000, 1001};
  std::string partial;
  Subject s = SubjectFromPeer(peer, proc.path(), &partial);
  EXPECT_NE(partial.find(proc.Join("42")), std::string::npos) << partial;
  EXPECT_EQ(s.uid, 1000U);
  EXPECT_EQ(s.gid, 1001U);
  EXPECT_EQ(s.pid, 42);
  EXPECT_EQ(s.gids, (std::vector<std::uint32_t>{1001}));
  EXPECT_EQ(s.unit, "");
  EXPECT_EQ(s.exe, "");
  // Half visible (status hidden, cgroup readable) is no better: nothing from /proc.
  ::mkdir(proc.Join("42").c_str(), 0700);
  testing::WriteFile(proc.Join("42/cgroup"), "0::/system.slice/web.service\n");
  s = SubjectFromPeer(peer, proc.path(), &partial);
  EXPECT_NE(partial, "");
  EXPECT_EQ(s.uid, 1000U);
  EXPECT_EQ(s.unit, "");
}

TEST(PeerIdentityTest, AReusedPidWithAnotherUidLendsItNothing) {
  testing::TempDir proc("proc");
  ::mkdir(proc.Join("42").c_str(), 0700);
  testing::WriteFile(proc.Join("42/cgroup"), "0::/system.slice/web.service\n");
  testing::WriteFile(proc.Join("42/status"), "Uid:\t0\t0\t0\t0\nGroups:\t10\n");
  PeerCredentials peer{42, 1000, 1000};
  std::string partial;
  Subject s = SubjectFromPeer(peer, proc.path(), &partial);
  EXPECT_NE(partial, "");
  EXPECT_EQ(s.uid, 1000U) << "the kernel's uid, not the reused pid's";
  EXPECT_EQ(s.unit, "") << "the unit of whatever now has the pid is not the caller's";
  EXPECT_EQ(s.gids, (std::vector<std::uint32_t>{1000}));
  testing::WriteFile(proc.Join("42/status"), "Uid:\t1000\t1000\t1000\t1000\nGroups:\t10 1000\n");
  s = SubjectFromPeer(peer, proc.path(), &partial);
  EXPECT_EQ(partial, "");
  EXPECT_EQ(s.unit, "web.service");
  EXPECT_EQ(s.gids, (std::vector<std::uint32_t>{1000, 10}));
  EXPECT_EQ(s.exe, "");  // no exe link in the fake /proc
}

TEST(PeerIdentityTest, SubjectForUserUsesTheUserDatabase) {
  Subject root = SubjectForUser(0);
  EXPECT_EQ(root.user, "root");
  EXPECT_EQ(root.gid, 0U);
  EXPECT_TRUE(root.HasGroup("root"));
  Subject nameless = SubjectForUser(54321);
  EXPECT_EQ(nameless.user, "");
  EXPECT_EQ(nameless.gid, 54321U);
}

}  // namespace
}  // namespace sk::policy
