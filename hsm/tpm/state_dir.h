// The TPM backend's state folder (TpmConfig::state_dir): the record (record_format.h) and
// one sealed file per live generation (sealed_file_format.h). Nothing in it is secret in
// the clear; the folder is still created 0700 and files 0600.
//
// Every write is atomic: a temp file ".<name>.tmp" in the same folder, written, fsync'd,
// renamed over <name>, then the folder fsync'd, so after a crash a reader finds either
// the old or the new file. Removal and renaming fsync the folder afterwards.
//
// This class is the one seam for the backend's file I/O: a test may install a fault hook
// that fails a chosen operation (SetFaultHookForTesting). Not thread-safe; callers
// serialise writes (the backend does it under its admin mutex).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/bytes.h"
#include "crypto/status.h"

namespace sk::hsm::tpm {

class StateDir {
 public:
  explicit StateDir(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

  // Creates the folder (and missing parents) with mode 0700; ok if it exists.
  Status Create() const;
  bool Exists(const std::string& name) const;
  // nullopt when the file does not exist; malformed_state when it is larger than cap.
  Result<std::optional<Bytes>> Read(const std::string& name, std::size_t cap) const;
  Status WriteAtomic(const std::string& name, ByteView data) const;
  Status Remove(const std::string& name) const;
  // Renames `from` over `to` (both in the folder), then fsyncs the folder: after a crash
  // a reader finds either the old `to` or the new one. For a file written with
  // WriteAtomic under another name first (a staged re-seal).
  Status Rename(const std::string& from, const std::string& to) const;
  // Generations that have a sealed file, ascending.
  Result<std::vector<std::uint32_t>> Generations() const;

  // Called before each write ("write", name), removal ("remove", name) or rename
  // ("rename", the target name); a non-OK result fails that operation before it touches
  // the disk. Empty function: no hook.
  using FaultHook = std::function<Status(std::string_view op, const std::string& name)>;
  static void SetFaultHookForTesting(FaultHook hook);

 private:
  std::string path_;
};

}  // namespace sk::hsm::tpm
