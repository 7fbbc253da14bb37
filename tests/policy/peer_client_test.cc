// Real clients: child processes under other uids (nobody, and a uid with no passwd
// entry), in unit-shaped cgroups, running other executables or in other namespaces,
// connect to a Unix socket; the test identifies them the way the daemon does
// (IdentifyConnection: SO_PEERCRED, a pidfd, /proc), sometimes from a non-root process or
// with the SO_PEERPIDFD fallback forced, and asks the policy.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "agent/policy/peer_identity.h"
#include "agent/policy/policy.h"
#include "tests/fixtures/temp_dir.h"
#include "tests/fixtures/test_user.h"

namespace sk::policy {
namespace {

constexpr std::uint32_t kNobody = 65534;
constexpr std::uint32_t kNameless = 54321;  // a uid with no passwd entry

const char* kPolicy = R"toml(
version = 1
[roles.web-reader]
grants = [ { capabilities = ["read", "list"], paths = ["apps/web/**"] } ]
[roles.ops]
grants = [ { capabilities = ["read", "write", "delete"], paths = ["apps/**"] } ]

[[bindings]]
name = "web"
roles = ["web-reader"]
match = { unit = "web.service" }

[[bindings]]
name = "tester"
roles = ["ops"]
match = { uid = 54321 }
)toml";

// Writes `pid` ("0": the caller) into a cgroup; false when it cannot.
bool JoinCgroup(const std::string& dir) {
  int fd = ::open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
  bool ok = fd >= 0 && ::write(fd, "0\n", 2) == 2;
  if (fd >= 0) ::close(fd);
  return ok;
}

std::string ReadLink(const std::string& path) {
  char buf[PATH_MAX] = {};
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

class PeerClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0U) << "running clients under other uids needs root";
    ::chmod(dir_.path().c_str(), 0755);
    sock_path_ = dir_.Join("api.sock");
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(listen_fd_, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, sock_path_.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
    ::chmod(sock_path_.c_str(), 0777);
    ASSERT_EQ(::listen(listen_fd_, 4), 0);
    Result<std::shared_ptr<const Policy>> p = ParsePolicy(kPolicy, "clients.toml");
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    policy_ = *p;
  }
  void TearDown() override {
    if (listen_fd_ >= 0) ::close(listen_fd_);
    for (auto it = cgroups_.rbegin(); it != cgroups_.rend(); ++it) ::rmdir(it->c_str());
  }

  // A cgroup below the host's name=systemd hierarchy, at `rel` below a slice of this
  // test's own ("web.service", "user-65534.slice/user@65534.service/app.slice/web.service").
  std::string MakeCgroup(const std::string& rel) {
    std::string dir = "/sys/fs/cgroup/systemd/sk-test-" + std::to_string(::getpid()) + ".slice";
    std::string at = dir;
    if (::mkdir(at.c_str(), 0755) == 0) cgroups_.push_back(at);
    for (const auto& part : std::filesystem::path(rel)) {
      at += "/" + part.string();
      if (::mkdir(at.c_str(), 0755) == 0) cgroups_.push_back(at);
    }
    EXPECT_TRUE(std::filesystem::is_directory(at))
        << "cannot make the cgroup " << at << ": " << std::strerror(errno) << " (see notes on cgroups)";
    return at;
  }

  struct Client {
    pid_t pid = -1;
    int conn = -1;  // the accepted end
  };

  // Forks a client: it runs `setup` (join a cgroup, unshare a namespace...), drops to
  // uid/gid (unless both are 0), connects, and waits until the test writes a byte (or closes). `exec_argv`,
  // when given, replaces the connecting part: the program it runs connects instead.
  Client Start(std::uint32_t uid, std::uint32_t gid, const std::function<bool()>& setup = {},
               const std::vector<std::string>& exec_argv = {}) {
    Client c;
    c.pid = ::fork();
    if (c.pid == 0) {
      if (setup && !setup()) ::_exit(10);
      const bool stay_root = uid == 0 && gid == 0;  // also where ids cannot be set (a new user namespace)
      if (!stay_root && (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0))
        ::_exit(11);
      if (!exec_argv.empty()) {
        std::vector<char*> argv;
        for (const std::string& a : exec_argv) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execv(argv[0], argv.data());
        ::_exit(14);
      }
      int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::strncpy(addr.sun_path, sock_path_.c_str(), sizeof addr.sun_path - 1);
      if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) ::_exit(12);
      char ch = 0;
      if (::read(s, &ch, 1) < 0) ::_exit(13);  // the test is done with us
      ::_exit(0);
    }
    EXPECT_GT(c.pid, 0) << "fork failed";
    pollfd pfd{listen_fd_, POLLIN, 0};
    EXPECT_EQ(::poll(&pfd, 1, 10000), 1) << "the client did not connect";
    c.conn = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    EXPECT_GE(c.conn, 0);
    return c;
  }

  // Lets the client go; returns its exit status (0 when all went well).
  static int Finish(Client& c) {
    if (c.conn >= 0) {
      (void)!::write(c.conn, "x", 1);
      ::close(c.conn);
      c.conn = -1;
    }
    int status = 0;
    if (c.pid > 0 && ::waitpid(c.pid, &status, 0) == c.pid) c.pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
  }

  // The Subject the daemon would see for a client started with Start(uid, gid, setup).
  Result<Subject> Connect(std::uint32_t uid, std::uint32_t gid, const std::function<bool()>& setup = {}) {
    Client c = Start(uid, gid, setup);
    Result<Subject> subject = IdentifyConnection(c.conn);
    int st = Finish(c);
    if (st != 0) return Internal("client failed with status " + std::to_string(st));
    return subject;
  }

  bool Allowed(const Subject& s, Capability cap, const char* path) {
    return policy_->Evaluate(Request{s, cap, path}).allowed;
  }

  testing::TempDir dir_{"clients"};
  std::string sock_path_;
  int listen_fd_ = -1;
  std::vector<std::string> cgroups_;
  std::shared_ptr<const Policy> policy_;
};

TEST_F(PeerClientTest, NobodyIsDeniedEverythingByDefault) {
  Result<Subject> s = Connect(kNobody, kNobody);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->uid, kNobody);
  EXPECT_EQ(s->user, "nobody");
  EXPECT_EQ(s->unit, "");
  char exe[PATH_MAX] = {};
  ASSERT_GT(::readlink("/proc/self/exe", exe, sizeof exe - 1), 0);
  EXPECT_EQ(s->exe, exe);
  for (Capability cap : kAllCapabilities) {
    Decision d = policy_->Evaluate(Request{*s, cap, "apps/web/db"});
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.Reason(), "no_binding");
  }
  EXPECT_FALSE(policy_->MayLearnExists(*s, "apps/web/db", nullptr, std::chrono::system_clock::now()));
}

TEST_F(PeerClientTest, AUidBindingAppliesToAUserWithoutAName) {
  Result<Subject> s = Connect(kNameless, kNameless);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->uid, kNameless);
  EXPECT_EQ(s->user, "");
  EXPECT_TRUE(Allowed(*s, Capability::kRead, "apps/db/password"));
  EXPECT_TRUE(Allowed(*s, Capability::kWrite, "apps/db/password"));
  EXPECT_TRUE(Allowed(*s, Capability::kDelete, "apps/db/password"));
  EXPECT_FALSE(Allowed(*s, Capability::kDestroy, "apps/db/password"));
  EXPECT_FALSE(Allowed(*s, Capability::kRead, "other/db"));
  // It may read but not list: a denied path and a missing one must look alike to it.
  EXPECT_FALSE(policy_->MayLearnExists(*s, "apps/db/password", nullptr, std::chrono::system_clock::now()));
}

TEST_F(PeerClientTest, AClientInAUnitShapedCgroupGetsTheUnitsRoles) {
  const std::string unit_dir = MakeCgroup("web.service");
  Result<Subject> s = Connect(kNobody, kNobody, [&] { return JoinCgroup(unit_dir); });
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->unit, "web.service");
  EXPECT_TRUE(Allowed(*s, Capability::kRead, "apps/web/db"));
  EXPECT_TRUE(Allowed(*s, Capability::kList, "apps/web/db"));
  EXPECT_TRUE(Allowed(*s, Capability::kRead, "apps/web"));  // ** includes zero segments
  EXPECT_FALSE(Allowed(*s, Capability::kWrite, "apps/web/db"));
  EXPECT_FALSE(Allowed(*s, Capability::kRead, "apps/db/password"));
  EXPECT_TRUE(policy_->MayLearnExists(*s, "apps/web/db", nullptr, std::chrono::system_clock::now()));
  EXPECT_FALSE(policy_->MayLearnExists(*s, "apps/db/password", nullptr, std::chrono::system_clock::now()));
}

// `systemd-run --user --unit=web.service` puts any user's process at
// user@<uid>.service/app.slice/web.service: a user unit, not the system's web.service.
TEST_F(PeerClientTest, AUserManagersUnitIsNotTheSystemUnitOfTheSameName) {
  const std::string dir = MakeCgroup("user-65534.slice/user@65534.service/app.slice/web.service");
  Result<Subject> s = Connect(kNobody, kNobody, [&] { return JoinCgroup(dir); });
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->unit, "user@65534.service");
  EXPECT_EQ(s->user_unit, "web.service");
  EXPECT_FALSE(Allowed(*s, Capability::kRead, "apps/web/db"));
  // Another uid in that user's tree has no user unit at all.
  s = Connect(kNameless, kNameless, [&] { return JoinCgroup(dir); });
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->user_unit, "");
}

// Below a Delegate=yes service (or a container) its payload may make any cgroup tree.
TEST_F(PeerClientTest, ADelegatedSubtreeBelongsToTheDelegatingUnit) {
  const std::string dir = MakeCgroup("deleg.service/payload/system.slice/web.service");
  Result<Subject> s = Connect(kNobody, kNobody, [&] { return JoinCgroup(dir); });
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->unit, "deleg.service");
  EXPECT_FALSE(Allowed(*s, Capability::kRead, "apps/web/db"));
}

// The agent runs as User=sealkeep with no capability but CAP_IPC_LOCK: it must still learn
// the unit of a caller of another uid (liveness through poll() on the pidfd, not a signal).
TEST_F(PeerClientTest, ANonRootAgentLearnsTheUnitOfACallerOfAnotherUid) {
  const std::string unit_dir = MakeCgroup("web.service");
  for (bool peer_pidfd : {true, false}) {
    SCOPED_TRACE(peer_pidfd ? "SO_PEERPIDFD" : "pidfd_open fallback");
    Client c = Start(kNobody, kNobody, [&] { return JoinCgroup(unit_dir); });
    int status = 0;
    std::string seen =
        testing::OutputOfChild([] { return testing::BecomeUid(kNameless, kNameless); },
                               [&] {
                                 IdentifyOptions o;
                                 o.use_peer_pidfd = peer_pidfd;
                                 std::string partial;
                                 Result<Subject> s = IdentifyConnection(c.conn, o, &partial);
                                 return s.ok() ? s->unit + "|" + partial : "error " + s.status().ToString();
                               },
                               "", &status);
    EXPECT_EQ(status, 0);
    EXPECT_EQ(seen, "web.service|");
    EXPECT_EQ(Finish(c), 0);
  }
}

// A caller connects and exits; another process of the same uid, in web.service, gets its
// pid before the agent takes a pidfd or looks at /proc. Without SO_PEERPIDFD the pid is
// all the agent has (pidfd_open gives the newcomer's), and only the newcomer's start time,
// after the connection was accepted, gives it away. Either way the newcomer lends the
// caller nothing.
TEST_F(PeerClientTest, AReusedPidLendsTheCallerNothing) {
  const std::string unit_dir = MakeCgroup("web.service");
  const auto tick_ns = static_cast<std::uint64_t>(1'000'000'000 / ::sysconf(_SC_CLK_TCK));
  for (bool peer_pidfd : {false, true}) {
    SCOPED_TRACE(peer_pidfd ? "SO_PEERPIDFD" : "pidfd_open fallback");
    Client a = Start(kNobody, kNobody);
    pid_t reused = -1;
    int release[2] = {-1, -1};
    int ready[2] = {-1, -1};  // the newcomer says when it is in web.service as nobody
    ASSERT_EQ(::pipe2(release, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
    IdentifyOptions o;
    o.use_peer_pidfd = peer_pidfd;
    o.after_peer_credentials = [&](pid_t pid) {
      // The caller goes away...
      (void)!::write(a.conn, "x", 1);
      ASSERT_EQ(::waitpid(a.pid, nullptr, 0), a.pid);
      a.pid = -1;
      // ...time passes (the start time has a resolution of one tick)...
      for (std::uint64_t t0 = BoottimeNowNs(); BoottimeNowNs() < t0 + 3 * tick_ns;) {
      }
      // ...and a newcomer of the same uid, in web.service, takes its pid.
      for (int attempt = 0; attempt < 500 && reused != pid; ++attempt) {
        int last = ::open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
        ASSERT_GE(last, 0) << std::strerror(errno);
        std::string before = std::to_string(pid - 1);
        (void)!::write(last, before.data(), before.size());
        ::close(last);
        pid_t child = ::fork();
        if (child == 0) {
          ::close(release[1]);
          ::close(ready[0]);
          if (::getpid() != pid) ::_exit(0);
          if (!JoinCgroup(unit_dir) || ::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 ||
              ::setuid(kNobody) != 0) {
            ::_exit(20);
          }
          (void)!::write(ready[1], "r", 1);
          char ch = 0;
          (void)!::read(release[0], &ch, 1);
          ::_exit(0);
        }
        if (child == pid) {
          reused = child;
        } else if (child > 0) {
          ::waitpid(child, nullptr, 0);
        }
      }
      ASSERT_EQ(reused, pid) << "could not make a process with pid " << pid;
      // It must be in web.service and nobody before the agent looks: otherwise the agent
      // would refuse it for another reason (its uid) and the test would prove nothing.
      ::close(ready[1]);
      ready[1] = -1;
      char ch = 0;
      ASSERT_EQ(::read(ready[0], &ch, 1), 1) << "the newcomer could not join web.service as nobody";
      std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      ASSERT_EQ(ParseSystemdUnit(text), "web.service");
    };
    std::string partial;
    Result<Subject> s = IdentifyConnection(a.conn, o, &partial);
    ::close(release[1]);
    if (reused > 0) ::waitpid(reused, nullptr, 0);
    ::close(release[0]);
    ::close(ready[0]);
    if (ready[1] >= 0) ::close(ready[1]);
    ::close(a.conn);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ASSERT_GT(reused, 0);
    EXPECT_EQ(s->uid, kNobody);
    EXPECT_EQ(s->unit, "") << "the newcomer's unit was lent to the caller";
    EXPECT_NE(partial, "");
    if (!peer_pidfd) {
      EXPECT_NE(partial.find("reused"), std::string::npos) << partial;
    }
  }
}

// A policy naming an executable names a file: one bind-mounted over its path in the
// caller's own mount namespace is another file, whatever /proc/<pid>/exe says.
TEST_F(PeerClientTest, AnExecutableIsTheNamedFileNotJustItsPath) {
  const std::string trusted = dir_.Join("trusted-curl");
  std::filesystem::copy_file("/usr/bin/curl", trusted);
  ::chmod(trusted.c_str(), 0755);
  const std::vector<std::string> argv = {trusted,         "-s",       "--max-time",         "10",
                                         "--unix-socket", sock_path_, "http://sk/v1/health"};
  // The named file itself.
  Client c = Start(0, 0, {}, argv);
  Result<Subject> s = IdentifyConnection(c.conn);
  Finish(c);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->exe, trusted);
  // Another file (the original curl) mounted over the path in the caller's namespace.
  c = Start(
      0, 0,
      [&] {
        return ::unshare(CLONE_NEWNS) == 0 &&
               ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
               ::mount("/usr/bin/curl", trusted.c_str(), nullptr, MS_BIND, nullptr) == 0;
      },
      argv);
  EXPECT_EQ(ReadLink("/proc/" + std::to_string(c.pid) + "/exe"), trusted)
      << "the link shows the named path: only the file itself tells them apart";
  s = IdentifyConnection(c.conn);
  Finish(c);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->exe, "");
}

TEST_F(PeerClientTest, ACallerInAnotherUserNamespaceHasNoExecutable) {
  Result<Subject> s = Connect(0, 0, [] { return ::unshare(CLONE_NEWUSER) == 0; });
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->uid, 0U);
  EXPECT_EQ(s->exe, "");
  s = Connect(0, 0);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->exe, ReadLink("/proc/self/exe"));
}

}  // namespace
}  // namespace sk::policy
