#include "agent/policy/default_policy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/policy/peer_identity.h"
#include "agent/policy/policy.h"

namespace sk::policy {
namespace {

Status Errno(const std::string& what) {
  return Unavailable(what + ": " + std::strerror(errno), "policy_unwritable");
}

Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Errno("writing the policy");
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return OkStatus();
}

}  // namespace

std::string DefaultPolicyText(std::uint32_t uid, std::string_view user_name) {
  std::string text =
      "# sealkeep policy, written by the quick start. Format: docs/policy.md.\n"
      "# Check an edit with `sealkeep policy check policy.toml`; the agent reloads it on SIGHUP\n"
      "# (a broken file keeps the running policy). Default deny: only the bindings below grant.\n"
      "version = 1\n"
      "\n"
      "[roles.admin]\n"
      "description = \"Every capability on every path\"\n"
      "grants = [\n"
      "  { capabilities = [\"read\", \"list\", \"write\", \"delete\", \"destroy\", \"rollback\", "
      "\"snapshot\", "
      "\"admin\", \"lease\"], paths = [\"**\"] },\n"
      "]\n"
      "\n"
      "[[bindings]]\n"
      "name = \"root\"\n"
      "roles = [\"admin\"]\n"
      "match = { uid = 0 }\n";
  if (uid != 0) {
    text += "\n[[bindings]]\nname = \"quickstart-user\"\n";
    if (!user_name.empty()) text += "# " + std::string(user_name) + ", who ran the quick start\n";
    text += "roles = [\"admin\"]\nmatch = { uid = " + std::to_string(uid) + " }\n";
  }
  return text;
}

Result<bool> EnsureDefaultPolicy(const std::string& state_dir, std::uint32_t uid) {
  const std::string path = state_dir + "/policy.toml";
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return false;
  if (errno != ENOENT) return Errno("checking " + path);

  const std::string text = DefaultPolicyText(uid, UserName(uid));
  // The generated text must always parse; a failure here is a bug, not bad input.
  if (Result<std::shared_ptr<const Policy>> p = ParsePolicy(text, path); !p.ok()) {
    return Internal("default policy does not parse: " + std::string(p.status().message()));
  }
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return Errno("creating " + tmp);
  Status st_write = WriteAll(fd, text);
  if (st_write.ok() && ::fchmod(fd, 0640) != 0) st_write = Errno("chmod " + tmp);
  if (st_write.ok() && ::fsync(fd) != 0) st_write = Errno("syncing " + tmp);
  ::close(fd);
  if (st_write.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) st_write = Errno("renaming " + tmp);
  if (!st_write.ok()) {
    ::unlink(tmp.c_str());
    return st_write;
  }
  int dfd = ::open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Errno("opening " + state_dir);
  int rc = ::fsync(dfd);
  ::close(dfd);
  if (rc != 0) return Errno("syncing " + state_dir);
  return true;
}

}  // namespace sk::policy
