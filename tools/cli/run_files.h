// Where `sealkeep run` puts --file and --template outputs (docs/cli.md, "run"): a private
// folder (0700, a fresh name) on a memory-backed file system, never on disk: under
// $XDG_RUNTIME_DIR, else /run/user/<uid>, else /dev/shm, the first that is tmpfs or ramfs.
// Files are written 0600 through a temporary name and rename(), so a reader sees the old
// bytes or the new, never a part. The folder and what is in it go when the object does.
//
// Not thread-safe: the supervisor's main thread owns it.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "crypto/status.h"

namespace sk::cli {

class PrivateDir {
 public:
  // Errors: no_tmpfs (kFailedPrecondition) when no candidate is memory-backed, or
  // private_dir_failed (kUnavailable) with the OS error.
  static Result<PrivateDir> Create();
  PrivateDir(PrivateDir&& other) noexcept;
  PrivateDir& operator=(PrivateDir&&) = delete;
  PrivateDir(const PrivateDir&) = delete;
  PrivateDir& operator=(const PrivateDir&) = delete;
  ~PrivateDir();

  const std::string& path() const { return path_; }
  // Writes `name` (a plain file name) atomically, mode 0600.
  Status Write(const std::string& name, std::span<const std::uint8_t> bytes);
  // Removes the folder with everything in it, also what the child put there (also done by
  // the destructor).
  void Remove();

 private:
  explicit PrivateDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
  std::vector<std::string> names_;
};

// A --file/--template output name: 1-255 bytes of [A-Za-z0-9._-], not "." or "..".
bool IsPlainFileName(const std::string& name);

}  // namespace sk::cli
