// AuditEnv: the one seam through which the audit log touches the file system, so tests
// can make a write fail, come up short, or a sync fail (LevelDB's Env, cut to what the
// audit log needs). Every error is kUnavailable with reason "audit_unavailable" and the
// errno text, except a missing file for ReadFile (kNotFound).
//
// The real implementation (Posix()) is thread-safe; an AuditFile is used by one thread
// at a time (the writer holds its lock).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "crypto/bytes.h"
#include "crypto/status.h"

namespace sk::audit {

// A file open for appending.
class AuditFile {
 public:
  virtual ~AuditFile() = default;
  // Appends up to data.size() bytes; returns how many it wrote, which may be fewer (a
  // short write). An error means nothing more can be written now.
  virtual Result<std::size_t> Write(ByteView data) = 0;
  // fdatasync: everything written so far is on stable storage when it returns OK.
  virtual Status Sync() = 0;
  // Cuts the file to `size` bytes (undoing a partial append).
  virtual Status Truncate(std::uint64_t size) = 0;
};

class AuditEnv {
 public:
  virtual ~AuditEnv() = default;
  // Opens an existing file for appending.
  virtual Result<std::unique_ptr<AuditFile>> OpenAppend(const std::string& path) = 0;
  // Creates a new file (mode 0600), replacing one of the same name.
  virtual Result<std::unique_ptr<AuditFile>> Create(const std::string& path) = 0;
  virtual Result<std::string> ReadFile(const std::string& path) = 0;
  // Names (not paths) of the entries of `dir`, without "." and "..".
  virtual Result<std::vector<std::string>> ListDir(const std::string& dir) = 0;
  virtual bool IsDirectory(const std::string& path) = 0;
  // Creates `dir` (mode 0700) unless it exists.
  virtual Status CreateDir(const std::string& dir) = 0;
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual Status Remove(const std::string& path) = 0;
  // fsync of the folder, so creates and renames in it are durable.
  virtual Status SyncDir(const std::string& dir) = 0;

  // The real file system. Never null; lives for the whole program.
  static AuditEnv* Posix();
};

}  // namespace sk::audit
