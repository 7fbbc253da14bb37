// Real clients: child processes under other uids (nobody, and a uid with no passwd
// entry), one in a unit-shaped cgroup, connect to a Unix socket; the test reads their
// identity the way the daemon will (SO_PEERCRED + pidfd + /proc) and asks the policy.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <climits>
#include <cstring>
#include <string>

#include "agent/policy/peer_identity.h"
#include "agent/policy/policy.h"
#include "tests/fixtures/temp_dir.h"

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

class PeerClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "running clients under other uids needs root";
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
  }

  // Forks a client that joins `cgroup_dir` (if any), drops to uid/gid, connects, and
  // waits for the test to finish looking at it. Returns the Subject the daemon would see.
  Result<Subject> Connect(std::uint32_t uid, std::uint32_t gid, const std::string& cgroup_dir = "") {
    pid_t child = ::fork();
    if (child == 0) {
      if (!cgroup_dir.empty()) {
        int fd = ::open((cgroup_dir + "/cgroup.procs").c_str(), O_WRONLY);
        if (fd < 0 || ::write(fd, "0\n", 2) != 2) ::_exit(10);
        ::close(fd);
      }
      if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) ::_exit(11);
      int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::strncpy(addr.sun_path, sock_path_.c_str(), sizeof addr.sun_path - 1);
      if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) ::_exit(12);
      char c = 0;
      if (::read(s, &c, 1) != 1) ::_exit(13);  // the test is done with us
      ::_exit(0);
    }
    if (child < 0) return Internal("fork failed");
    pollfd pfd{listen_fd_, POLLIN, 0};
    if (::poll(&pfd, 1, 10000) != 1) return Internal("the client did not connect");
    int conn = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    ucred cred{};
    socklen_t len = sizeof cred;
    if (conn < 0 || ::getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
      return Internal("no SO_PEERCRED");
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, cred.pid, 0));
    PeerCredentials peer{cred.pid, cred.uid, cred.gid, pidfd};
    Result<Subject> subject = SubjectFromPeer(peer);
    if (pidfd >= 0) ::close(pidfd);
    (void)!::write(conn, "x", 1);
    ::close(conn);
    int status = 0;
    ::waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return Internal("client failed with status " + std::to_string(status));
    }
    return subject;
  }

  bool Allowed(const Subject& s, Capability cap, const char* path) {
    return policy_->Evaluate(Request{s, cap, path}).allowed;
  }

  testing::TempDir dir_{"clients"};
  std::string sock_path_;
  int listen_fd_ = -1;
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
  const std::string slice = "/sys/fs/cgroup/systemd/sk-test-" + std::to_string(::getpid()) + ".slice";
  const std::string unit_dir = slice + "/web.service";
  if (::mkdir(slice.c_str(), 0755) != 0 || ::mkdir(unit_dir.c_str(), 0755) != 0) {
    ::rmdir(slice.c_str());
    GTEST_SKIP() << "neither cgroup hierarchy is writable here (" << std::strerror(errno)
                 << "); see notes/hardware.md";
  }
  Result<Subject> s = Connect(kNobody, kNobody, unit_dir);
  ::rmdir(unit_dir.c_str());
  ::rmdir(slice.c_str());
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

}  // namespace
}  // namespace sk::policy
