#include "hsm/pkcs11/sync_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

namespace sk::hsm::pkcs11 {
namespace {

Status SyncFailed(const std::string& path, int err) {
  return Status(Code::kUnavailable, "sync_failed", "cannot sync " + path + ": " + std::strerror(err));
}

Status SyncPath(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return OkStatus();  // removed meanwhile: nothing left to make durable
    return SyncFailed(path, errno);
  }
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return SyncFailed(path, err);
  return OkStatus();
}

Status SyncLevel(const std::string& dir, int depth) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return SyncFailed(dir, errno);
  std::vector<std::string> files, dirs;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string path = dir + "/" + name;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) continue;
    if (S_ISREG(st.st_mode)) files.push_back(path);
    if (S_ISDIR(st.st_mode) && depth > 0) dirs.push_back(path);
  }
  ::closedir(d);
  for (const auto& f : files) SK_RETURN_IF_ERROR(SyncPath(f, false));
  for (const auto& sub : dirs) SK_RETURN_IF_ERROR(SyncLevel(sub, depth - 1));
  return SyncPath(dir, true);
}

std::mutex& HookMutex() {
  static std::mutex mu;
  return mu;
}

SyncHook& Hook() {
  static SyncHook hook;
  return hook;
}

}  // namespace

void SetSyncHookForTesting(SyncHook hook) {
  std::lock_guard<std::mutex> lock(HookMutex());
  Hook() = std::move(hook);
}

Status SyncTree(const std::string& dir) {
  {
    std::lock_guard<std::mutex> lock(HookMutex());
    if (Hook()) SK_RETURN_IF_ERROR(Hook()(dir));
  }
  return SyncLevel(dir, 1);
}

}  // namespace sk::hsm::pkcs11
