#include "tools/cli/setup_host.h"

#include <fcntl.h>
#include <pwd.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

namespace sk::cli::setup {
namespace {

Status Errno(const std::string& what) {
  return Status(Code::kUnavailable, "setup_failed", what + ": " + std::strerror(errno));
}

Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open " + dir);
  int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? OkStatus() : Errno("cannot sync " + dir);
}

}  // namespace

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

bool SystemdRunning() { return Exists("/run/systemd/system"); }

Result<Account> LookUpAccount(const std::string& user) {
  passwd entry{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwnam_r(user.c_str(), &entry, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return Status(
        Code::kNotFound, "user_missing",
        "there is no user '" + user +
            "': install the package (its sysusers.d file makes it: systemd-sysusers sealkeep.conf)");
  }
  return Account{found->pw_uid, found->pw_gid, user};
}

Result<Step> WriteOnce(const std::string& what, const std::string& path, const std::string& content,
                       mode_t mode, uid_t uid, gid_t gid, bool keep_existing) {
  if (Exists(path)) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in && ss.str() == content) return Step{what, path, "unchanged"};
    if (keep_existing) return Step{what, path, "kept"};
    return Status(
        Code::kConflict, "setup_conflict",
        path +
            " exists and differs from what setup would write; setup never overwrites an admin's "
            "file: compare, then move it away to let setup write it, or finish by hand (docs/deploy.md)");
  }
  const std::string tmp = path + ".setup-tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Errno("cannot write " + tmp);
  bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
            ::fchown(fd, uid, gid) == 0 && ::fchmod(fd, mode) == 0 && ::fsync(fd) == 0;
  Status st = ok ? OkStatus() : Errno("cannot write " + tmp);
  ::close(fd);
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) st = Errno("cannot rename " + tmp);
  if (!st.ok()) {
    (void)::unlink(tmp.c_str());
    return st;
  }
  SK_RETURN_IF_ERROR(SyncDir(std::filesystem::path(path).parent_path().string()));
  return Step{what, path, "created"};
}

Status MakeDirs(const std::string& path, mode_t mode, uid_t uid, gid_t gid) {
  std::filesystem::path at;
  for (const auto& part : std::filesystem::path(path)) {
    at /= part;
    if (Exists(at.string())) continue;
    if (::mkdir(at.c_str(), mode) != 0) return Errno("cannot make " + at.string());
    if (::chown(at.c_str(), uid, gid) != 0 || ::chmod(at.c_str(), mode) != 0) {
      return Errno("cannot set the owner of " + at.string());
    }
  }
  return OkStatus();
}

Status ChownTree(const std::string& path, uid_t uid, gid_t gid) {
  if (::lchown(path.c_str(), uid, gid) != 0) return Errno("cannot chown " + path);
  std::error_code ec;
  if (!std::filesystem::is_directory(std::filesystem::symlink_status(path, ec))) return OkStatus();
  for (auto it = std::filesystem::recursive_directory_iterator(path, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (::lchown(it->path().c_str(), uid, gid) != 0) return Errno("cannot chown " + it->path().string());
  }
  if (ec) return Status(Code::kUnavailable, "setup_failed", "cannot walk " + path + ": " + ec.message());
  return OkStatus();
}

Status Run(const std::vector<std::string>& argv, const SecretBytes* input) {
  int in[2] = {-1, -1};
  if (::pipe2(in, O_CLOEXEC) != 0) return Errno("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(in[0]);
  if (rc != 0) {
    ::close(in[1]);
    return Status(Code::kUnavailable, "setup_failed", "cannot run " + argv[0] + ": " + std::strerror(rc));
  }
  bool written = true;
  if (input != nullptr) {
    auto bytes = input->Expose();
    std::size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(in[1], bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        written = false;
        break;
      }
      done += static_cast<std::size_t>(n);
    }
  }
  ::close(in[1]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::string cmd = argv[0];
  for (std::size_t i = 1; i < argv.size(); ++i) cmd += " " + argv[i];
  if (!written || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Status(Code::kUnavailable, "setup_failed",
                  cmd + " failed (" +
                      (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status)) : "killed") +
                      ")");
  }
  return OkStatus();
}

Status EncryptCredential(const std::string& name, const SecretBytes& value, const std::string& path) {
  const std::string tmp = path + ".setup-tmp";
  (void)::unlink(tmp.c_str());
  Status st = Run({"/usr/bin/systemd-creds", "encrypt", "--name=" + name, "-", tmp}, &value);
  if (st.ok() && (::chown(tmp.c_str(), 0, 0) != 0 || ::chmod(tmp.c_str(), 0600) != 0)) {
    st = Errno("cannot set the owner of " + tmp);
  }
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) st = Errno("cannot rename " + tmp);
  if (!st.ok()) {
    (void)::unlink(tmp.c_str());
    return st;
  }
  return SyncDir(std::filesystem::path(path).parent_path().string());
}

}  // namespace sk::cli::setup
