#include "hsm/tpm/state_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>

#include "crypto/unique_fd.h"
#include "hsm/tpm/sealed_file_format.h"
#include "hsm/tpm/tpm_errors.h"

namespace sk::hsm::tpm {
namespace {

std::mutex& HookMutex() {
  static std::mutex mu;
  return mu;
}
StateDir::FaultHook& Hook() {
  static StateDir::FaultHook hook;
  return hook;
}

Status RunHook(std::string_view op, const std::string& name) {
  std::lock_guard<std::mutex> lock(HookMutex());
  if (!Hook()) return OkStatus();
  return Hook()(op, name);
}

Status IoError(const std::string& what, const std::string& path, int err) {
  return Unavailable(what + " " + path + ": " + std::strerror(err), "state_io_error");
}

Status FsyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return IoError("cannot open folder", dir, errno);
  if (::fsync(fd.get()) != 0) return IoError("cannot fsync folder", dir, errno);
  return OkStatus();
}

}  // namespace

void StateDir::SetFaultHookForTesting(FaultHook hook) {
  std::lock_guard<std::mutex> lock(HookMutex());
  Hook() = std::move(hook);
}

Status StateDir::Create() const {
  if (path_.empty()) return InvalidArgument("no TPM state folder configured", "bad_config");
  std::string partial;
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path_.find('/', pos + 1);
    partial = path_.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST)
      return IoError("cannot create", partial, errno);
  }
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return IoError("not a folder:", path_, ENOTDIR);
  return OkStatus();
}

bool StateDir::Exists(const std::string& name) const {
  struct stat st {};
  return ::stat(Join(name).c_str(), &st) == 0;
}

Result<std::optional<Bytes>> StateDir::Read(const std::string& name, std::size_t cap) const {
  std::string path = Join(name);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) {
    if (errno == ENOENT) return std::optional<Bytes>();
    return IoError("cannot open", path, errno);
  }
  Bytes out(cap + 1);
  std::size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::read(fd.get(), out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("cannot read", path, errno);
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got > cap) {
    return Status(
        Code::kCorruption, kMalformedState,
        path + " is larger than " + std::to_string(cap) + " bytes; it is not a sealkeep state file");
  }
  out.resize(got);
  return std::optional<Bytes>(std::move(out));
}

Status StateDir::WriteAtomic(const std::string& name, ByteView data) const {
  SK_RETURN_IF_ERROR(RunHook("write", name));
  std::string tmp = Join("." + name + ".tmp");
  std::string path = Join(name);
  ::unlink(tmp.c_str());  // a leftover of a crash
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) return IoError("cannot create", tmp, errno);
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      return IoError("cannot write", tmp, err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0 || fd.Close() != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return IoError("cannot sync", tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return IoError("cannot rename into place", path, err);
  }
  return FsyncDir(path_);
}

Status StateDir::Remove(const std::string& name) const {
  SK_RETURN_IF_ERROR(RunHook("remove", name));
  std::string path = Join(name);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return IoError("cannot remove", path, errno);
  return FsyncDir(path_);
}

Status StateDir::Rename(const std::string& from, const std::string& to) const {
  SK_RETURN_IF_ERROR(RunHook("rename", to));
  std::string src = Join(from);
  std::string dst = Join(to);
  if (::rename(src.c_str(), dst.c_str()) != 0) return IoError("cannot rename " + src + " to", dst, errno);
  return FsyncDir(path_);
}

Result<std::vector<std::uint32_t>> StateDir::Generations() const {
  DIR* d = ::opendir(path_.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return std::vector<std::uint32_t>();
    return IoError("cannot list", path_, errno);
  }
  std::vector<std::uint32_t> out;
  while (dirent* e = ::readdir(d)) {
    if (auto g = ParseSealedFileName(e->d_name)) out.push_back(*g);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace sk::hsm::tpm
