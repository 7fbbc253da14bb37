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

TEST(CgroupParserTest, UnitsAreNamedAsSystemdNamesThem) {
  EXPECT_EQ(ParseSystemdUnit("0::/user.slice/user-1000.slice/session-3.scope\n"), "session-3.scope");
  EXPECT_EQ(ParseSystemdUnit("0::/init.scope\n"), "init.scope");
  // A sub-cgroup below the unit still belongs to the unit.
  EXPECT_EQ(ParseSystemdUnit("0::/system.slice/web.service/worker\n"), "web.service");
  EXPECT_EQ(ParseSystemdUnit("0::/system.slice/getty@tty1.service\n"), "getty@tty1.service");
  EXPECT_EQ(ParseSystemdUnit("0::/system.slice/dbus.socket\n"), "dbus.socket");
  EXPECT_EQ(ParseSystemdUnit("0::/system.slice/_cpu.service\n"), "cpu.service");  // cg_escape()d
  EXPECT_EQ(ParseSystemdUnit("0::/system.slice/dbus-org.freedesktop.login1.service\n"),
            "dbus-org.freedesktop.login1.service");
  EXPECT_EQ(ParseSystemdUnit("0::/a.slice/b.slice/c-d.slice/x.service\n"), "x.service");
}

// What anyone can arrange below a unit they own is theirs, not another unit's: a user's
// own manager, a Delegate=yes service, a container's tree.
TEST(CgroupParserTest, NothingBelowAUnitNamesAnotherSystemUnit) {
  CgroupUnits u =
      ParseSystemdUnits("0::/user.slice/user-1000.slice/user@1000.service/app.slice/web.service\n");
  EXPECT_EQ(u.unit, "user@1000.service");
  EXPECT_EQ(u.user_unit, "web.service");
  EXPECT_EQ(u.user_manager_uid, 1000U);
  u = ParseSystemdUnits("0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope/deeper\n");
  EXPECT_EQ(u.unit, "user@1000.service");
  EXPECT_EQ(u.user_unit, "x.scope");
  u = ParseSystemdUnits("0::/user.slice/user-1000.slice/user@1000.service/init.scope\n");
  EXPECT_EQ(u.user_unit, "init.scope");
  u = ParseSystemdUnits("0::/system.slice/docker.service/c1/system.slice/web.service\n");
  EXPECT_EQ(u.unit, "docker.service");
  EXPECT_EQ(u.user_unit, "");
  u = ParseSystemdUnits("0::/machine.slice/machine-ct1.scope/payload/system.slice/web.service\n");
  EXPECT_EQ(u.unit, "machine-ct1.scope");
  EXPECT_EQ(u.user_unit, "");
  // The v1 named hierarchy of a hybrid host follows the same rule.
  EXPECT_EQ(ParseSystemdUnit("9:name=systemd:/sk-test.slice/deleg.service/payload/web.service\n0::/\n"),
            "deleg.service");
  // Only a user manager's tree has user units; a session's does not.
  u = ParseSystemdUnits("0::/user.slice/user-1000.slice/session-3.scope/web.service\n");
  EXPECT_EQ(u.unit, "session-3.scope");
  EXPECT_EQ(u.user_unit, "");
  u = ParseSystemdUnits("0::/user.slice/user-1000.slice/user@x.service/app.slice/web.service\n");
  EXPECT_EQ(u.unit, "user@x.service");
  EXPECT_EQ(u.user_unit, "") << "not a uid";
}

TEST(CgroupParserTest, ProcessUnitNames) {
  for (const char* good :
       {"web.service", "a:b.service", "getty@tty1.service", "x.scope", "dbus.socket", "home.mount",
        "dev-sda2.swap", "org.gnome.Shell@wayland.service", "a\\x2db.service"}) {
    EXPECT_TRUE(IsProcessUnitName(good)) << good;
  }
  for (const char* bad : {"", ".service", "web", "web.slice", "web.timer", "getty@.service", "@x.service",
                          "a@b@c.service", "we b.service", "we/b.service", "web.service.d"}) {
    EXPECT_FALSE(IsProcessUnitName(bad)) << bad;
  }
  EXPECT_FALSE(IsProcessUnitName(std::string(250, 'a') + ".service"));
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
  me.accepted_boottime_ns = BoottimeNowNs();
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

// "42 (cat) S ..." with the start time (field 22) given.
std::string StatText(std::uint64_t start_ticks) {
  std::string fields = "S 1 42 42 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 " + std::to_string(start_ticks) +
                       " 1000 100 18446744073709551615\n";
  return "42 (we ird) ) " + fields;
}

TEST(StatParserTest, StartTimeIsField22WhateverTheCommandHolds) {
  Result<std::uint64_t> t = ParseStatStartTicks(StatText(123456));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(*t, 123456U);
  EXPECT_FALSE(ParseStatStartTicks("42 (x) S 1 2 3\n").ok());
  EXPECT_FALSE(ParseStatStartTicks("no parenthesis").ok());
  EXPECT_FALSE(ParseStatStartTicks("42 (x) S 1 42 42 0 -1 4 1 0 0 0 0 0 0 0 20 0 1 0 12x 1\n").ok());
}

TEST(PeerIdentityTest, AReusedPidWithAnotherUidLendsItNothing) {
  testing::TempDir proc("proc");
  ::mkdir(proc.Join("42").c_str(), 0700);
  testing::WriteFile(proc.Join("42/cgroup"), "0::/system.slice/web.service\n");
  testing::WriteFile(proc.Join("42/status"), "Uid:\t0\t0\t0\t0\nGroups:\t10\n");
  testing::WriteFile(proc.Join("42/stat"), StatText(1));
  PeerCredentials peer{42, 1000, 1000};
  peer.accepted_boottime_ns = BoottimeNowNs();
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

// Without a pidfd from SO_PEERPIDFD the pid is only a number: a process that started after
// the connection was accepted cannot have made it, whatever its uid.
TEST(PeerIdentityTest, WithoutAPeerPidfdAProcessStartedAfterTheConnectionIsSomeoneElse) {
  testing::TempDir proc("proc");
  ::mkdir(proc.Join("42").c_str(), 0700);
  testing::WriteFile(proc.Join("42/cgroup"), "0::/system.slice/web.service\n");
  testing::WriteFile(proc.Join("42/status"), "Uid:\t1000\t1000\t1000\t1000\nGroups:\t10\n");
  const std::uint64_t tick_ns = 1'000'000'000ULL / static_cast<std::uint64_t>(::sysconf(_SC_CLK_TCK));
  PeerCredentials peer{42, 1000, 1000};
  peer.accepted_boottime_ns = 1000 * tick_ns;
  testing::WriteFile(proc.Join("42/stat"), StatText(1001));
  std::string partial;
  Subject s = SubjectFromPeer(peer, proc.path(), &partial);
  EXPECT_NE(partial.find("reused"), std::string::npos) << partial;
  EXPECT_EQ(s.unit, "");
  EXPECT_EQ(s.gids, (std::vector<std::uint32_t>{1000}));
  testing::WriteFile(proc.Join("42/stat"), StatText(1000));
  s = SubjectFromPeer(peer, proc.path(), &partial);
  EXPECT_EQ(partial, "");
  EXPECT_EQ(s.unit, "web.service");
  // An unknown accept time proves nothing.
  peer.accepted_boottime_ns = 0;
  s = SubjectFromPeer(peer, proc.path(), &partial);
  EXPECT_EQ(s.unit, "");
  // A pidfd from SO_PEERPIDFD is the caller itself: no start time needed.
  peer.pidfd_from_peer = true;
  s = SubjectFromPeer(peer, proc.path(), &partial);
  EXPECT_EQ(partial, "");
  EXPECT_EQ(s.unit, "web.service");
}

TEST(PeerIdentityTest, AUserUnitIsKeptOnlyForTheManagersOwnUid) {
  testing::TempDir proc("proc");
  ::mkdir(proc.Join("42").c_str(), 0700);
  testing::WriteFile(proc.Join("42/cgroup"),
                     "0::/user.slice/user-1000.slice/user@1000.service/app.slice/web.service\n");
  testing::WriteFile(proc.Join("42/stat"), StatText(1));
  PeerCredentials peer{42, 1000, 1000};
  peer.accepted_boottime_ns = BoottimeNowNs();
  testing::WriteFile(proc.Join("42/status"), "Uid:\t1000\t1000\t1000\t1000\nGroups:\t\n");
  Subject s = SubjectFromPeer(peer, proc.path());
  EXPECT_EQ(s.unit, "user@1000.service");
  EXPECT_EQ(s.user_unit, "web.service");
  peer.uid = 0;  // root inside another user's manager tree
  testing::WriteFile(proc.Join("42/status"), "Uid:\t0\t0\t0\t0\nGroups:\t\n");
  s = SubjectFromPeer(peer, proc.path());
  EXPECT_EQ(s.unit, "user@1000.service");
  EXPECT_EQ(s.user_unit, "");
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
