#include "agent/policy/peer_identity.h"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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

bool StillAlive(int pidfd) {
#ifdef SYS_pidfd_send_signal
  return ::syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0) == 0;
#else
  (void)pidfd;
  return true;
#endif
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
  if (!ReadSmallFile(dir + "/cgroup", cgroup) || !ReadSmallFile(dir + "/status", status)) {
    // Gone, or hidden (ProtectProc=invisible, hidepid=): no unit, exe or supplementary groups.
    return finish("cannot read " + dir + " (the process is gone or /proc hides it)");
  }
  std::string unit = ParseSystemdUnit(cgroup);
  std::string exe = ReadLink(dir + "/exe");  // EACCES (another uid, daemon not root) leaves it empty
  Result<std::uint32_t> euid = ParseStatusEffectiveUid(status);
  Result<std::vector<std::uint32_t>> supplementary = ParseStatusGroups(status);
  if (!euid.ok() || !supplementary.ok()) return finish(dir + "/status is not as expected");

  // The reads above describe the peer only if its pid still names the same process.
  if (peer.pidfd >= 0 ? !StillAlive(peer.pidfd) : *euid != peer.uid) {
    return finish("process " + std::to_string(peer.pid) + " exited or changed identity since it connected");
  }
  s.unit = std::move(unit);
  s.exe = std::move(exe);
  for (std::uint32_t g : *supplementary) AddGid(s, g);
  return finish("");
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
