#include "agent/policy/peer_identity.h"

#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <type_traits>
#include <vector>

namespace sk::policy {
namespace {

bool ReadSmallFile(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return !in.bad();
}

std::string ReadLink(const std::string& path) {
  std::vector<char> buf(4096);
  ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
  if (n <= 0 || static_cast<std::size_t>(n) >= buf.size()) return "";
  return std::string(buf.data(), static_cast<std::size_t>(n));
}

// Runs an NSS *_r lookup, growing the buffer on ERANGE.
template <typename Entry, typename Lookup>
std::string LookupName(Lookup&& lookup) {
  std::vector<char> buf(1024);
  while (buf.size() <= (1U << 20)) {
    Entry entry{};
    Entry* found = nullptr;
    int rc = lookup(&entry, buf.data(), buf.size(), &found);
    if (rc == ERANGE) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (rc != 0 || found == nullptr) return "";
    if constexpr (std::is_same_v<Entry, passwd>) {
      return found->pw_name != nullptr ? found->pw_name : "";
    } else {
      return found->gr_name != nullptr ? found->gr_name : "";
    }
  }
  return "";
}

void AddGroupNames(Subject& s) {
  s.groups.clear();
  for (std::uint32_t g : s.gids) {
    std::string name = GroupName(g);
    if (!name.empty() && !s.HasGroup(name)) s.groups.push_back(std::move(name));
  }
}

void AddGid(Subject& s, std::uint32_t g) {
  if (std::find(s.gids.begin(), s.gids.end(), g) == s.gids.end()) s.gids.push_back(g);
}

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

// Whether the process behind `pidfd` has not exited: a pidfd polls readable once it has.
// Unlike pidfd_send_signal(pidfd, 0), this needs no permission over the process.
bool StillAlive(int pidfd) {
  pollfd p{pidfd, POLLIN, 0};
  int n = ::poll(&p, 1, 0);
  return n == 0;
}

// The executable path of the process under `dir`, when the file at that path, as this
// process sees it, is the one it runs (same device and inode) and it shares this
// process's user namespace; "" otherwise (unreadable: another uid and the agent not root;
// deleted or replaced on disk; a bind mount or private /usr in another namespace).
std::string VerifiedExe(const std::string& proc_root, const std::string& dir) {
  std::string path = ReadLink(dir + "/exe");
  if (path.empty() || path.front() != '/') return "";
  std::string caller_ns = ReadLink(dir + "/ns/user");
  std::string own_ns = ReadLink(proc_root + "/self/ns/user");
  if (caller_ns.empty() || caller_ns != own_ns) return "";
  struct stat running {};
  struct stat named {};
  if (::stat((dir + "/exe").c_str(), &running) != 0 || ::stat(path.c_str(), &named) != 0) return "";
  if (running.st_dev != named.st_dev || running.st_ino != named.st_ino) return "";
  return path;
}

std::uint64_t NsPerTick() {
  static const std::uint64_t ns = [] {
    long hz = ::sysconf(_SC_CLK_TCK);
    return static_cast<std::uint64_t>(1'000'000'000 / (hz > 0 ? hz : 100));
  }();
  return ns;
}

}  // namespace

std::string UserName(std::uint32_t uid) {
  return LookupName<passwd>([uid](passwd* e, char* b, std::size_t n, passwd** r) {
    return ::getpwuid_r(static_cast<uid_t>(uid), e, b, n, r);
  });
}

std::string GroupName(std::uint32_t gid) {
  return LookupName<group>([gid](group* e, char* b, std::size_t n, group** r) {
    return ::getgrgid_r(static_cast<gid_t>(gid), e, b, n, r);
  });
}

std::uint64_t BoottimeNowNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

Subject SubjectFromPeer(const PeerCredentials& peer, const std::string& proc_root, std::string* partial) {
  // What the kernel recorded at connect() is the identity; nothing below can change it.
  Subject s;
  s.uid = peer.uid;
  s.gid = peer.gid;
  s.pid = peer.pid;
  s.gids.push_back(peer.gid);
  s.user = UserName(peer.uid);
  auto finish = [&](const std::string& why) {
    if (partial != nullptr) *partial = why;
    AddGroupNames(s);
    return s;
  };
  if (peer.pid <= 0) return finish("the kernel gave no pid (another pid namespace)");

  const std::string dir = proc_root + "/" + std::to_string(peer.pid);
  std::string cgroup;
  std::string status;
  std::string stat;
  if (!ReadSmallFile(dir + "/cgroup", cgroup) || !ReadSmallFile(dir + "/status", status) ||
      !ReadSmallFile(dir + "/stat", stat)) {
    // Gone, or hidden (ProtectProc=invisible, hidepid=): no unit, exe or supplementary groups.
    return finish("cannot read " + dir + " (the process is gone or /proc hides it)");
  }
  CgroupUnits units = ParseSystemdUnits(cgroup);
  std::string exe = VerifiedExe(proc_root, dir);
  Result<std::uint32_t> euid = ParseStatusEffectiveUid(status);
  Result<std::vector<std::uint32_t>> supplementary = ParseStatusGroups(status);
  Result<std::uint64_t> start_ticks = ParseStatStartTicks(stat);
  if (!euid.ok() || !supplementary.ok() || !start_ticks.ok()) {
    return finish(dir + "/status or stat is not as expected");
  }

  // The reads above describe the peer only if its pid still names the same process.
  const std::string who = "process " + std::to_string(peer.pid);
  if (!peer.pidfd_from_peer) {
    // A pid alone: whoever has it now must have existed when the connection was made.
    if (peer.accepted_boottime_ns == 0 || *start_ticks * NsPerTick() > peer.accepted_boottime_ns) {
      return finish(who + " started after the connection was accepted: its pid was reused");
    }
  }
  if (*euid != peer.uid) return finish(who + " changed identity since it connected");
  if (peer.pidfd >= 0 && !StillAlive(peer.pidfd)) return finish(who + " exited since it connected");
  s.unit = std::move(units.unit);
  if (!units.user_unit.empty() && units.user_manager_uid == peer.uid)
    s.user_unit = std::move(units.user_unit);
  s.exe = std::move(exe);
  for (std::uint32_t g : *supplementary) AddGid(s, g);
  return finish("");
}

Result<Subject> IdentifyConnection(int fd, const IdentifyOptions& options, std::string* partial) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return Status(Code::kUnavailable, "peer_unknown",
                  std::string("cannot read the peer's credentials: ") + std::strerror(errno));
  }
  PeerCredentials peer{cred.pid, cred.uid, cred.gid};
  peer.accepted_boottime_ns = BoottimeNowNs();
  if (options.after_peer_credentials) options.after_peer_credentials(cred.pid);
  if (options.use_peer_pidfd) {
    int pidfd = -1;
    socklen_t plen = sizeof pidfd;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &plen) == 0 && pidfd >= 0) {
      peer.pidfd = pidfd;
      peer.pidfd_from_peer = true;
    }
  }
  if (peer.pidfd < 0 && cred.pid > 0) peer.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, cred.pid, 0));
  Subject s = SubjectFromPeer(peer, options.proc_root, partial);
  if (peer.pidfd >= 0) ::close(peer.pidfd);
  return s;
}

Subject SubjectForUser(std::uint32_t uid, std::optional<std::uint32_t> gid) {
  Subject s;
  s.uid = uid;
  s.user = UserName(uid);
  passwd entry{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  bool have_pw = ::getpwuid_r(static_cast<uid_t>(uid), &entry, buf.data(), buf.size(), &found) == 0 && found;
  s.gid = gid.value_or(have_pw ? static_cast<std::uint32_t>(found->pw_gid) : uid);
  s.gids.push_back(s.gid);
  if (have_pw && found->pw_name != nullptr) {
    int n = 64;
    std::vector<gid_t> list(static_cast<std::size_t>(n));
    if (::getgrouplist(found->pw_name, static_cast<gid_t>(s.gid), list.data(), &n) < 0 && n > 0) {
      list.resize(static_cast<std::size_t>(n));
      ::getgrouplist(found->pw_name, static_cast<gid_t>(s.gid), list.data(), &n);
    }
    for (int i = 0; i < n && static_cast<std::size_t>(i) < list.size(); ++i) {
      AddGid(s, static_cast<std::uint32_t>(list[static_cast<std::size_t>(i)]));
    }
  }
  AddGroupNames(s);
  return s;
}

}  // namespace sk::policy
