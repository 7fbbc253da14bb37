// A SecretService on a real SQLite file and a real SoftHSM2 token in a private folder,
// with the corruption helpers the tamper and replay tests need. The helpers edit the
// store file with SQL from outside, as an attacker with the disk would, so they require
// the service to be closed (the store holds an exclusive lock while open).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "agent/secrets/service.h"
#include "crypto/bytes.h"
#include "tests/fixtures/softhsm.h"
#include "tests/fixtures/temp_dir.h"

namespace sk::testing {

class ServiceHarness {
 public:
  explicit ServiceHarness(const std::string& tag = "svc");

  // Opens the backend (if not open) and the service with `options`.
  Status Open();
  void Close() { service_.reset(); }
  // Closes the service and the backend, as a process exit would, then opens both again.
  Status Restart();
  void CloseBackend() {
    service_.reset();
    backend_.reset();
  }

  secrets::SecretService& svc() { return *service_; }
  bool is_open() const { return service_ != nullptr; }
  std::shared_ptr<hsm::KeyBackend>& backend() { return backend_; }
  const std::string& store_path() const { return options.store_path; }
  const TempDir& dir() const { return dir_; }
  const SoftHsmToken& token() const { return *token_; }

  // Writes a UTF-8 value; returns the version written (fails the test on error).
  std::uint64_t PutText(const std::string& path, const std::string& text);
  // Reads a value as text, or the error.
  Result<std::string> GetText(const std::string& path, std::optional<std::uint64_t> version = std::nullopt);

  // --- tampering with the closed store file ---
  void Sql(const std::string& sql);
  Bytes Blob(const std::string& sql);  // first column of the first row
  void SetBlob(const std::string& update_sql_with_param,
               ByteView value);  // "UPDATE ... SET x = ?1 WHERE ..."
  // The seq of the entry that wrote `path` version `v`.
  std::uint64_t EntrySeqOf(const std::string& path, std::uint64_t version);
  void SaveStoreCopy(const std::string& name);     // copies store.db (+ -wal) aside
  void RestoreStoreCopy(const std::string& name);  // puts a copy back (removing -wal/-shm first)

  secrets::ServiceOptions options;
  secrets::Actor actor{"uid=0 test"};

 private:
  TempDir dir_;
  std::unique_ptr<SoftHsmToken> token_;
  std::shared_ptr<hsm::KeyBackend> backend_;
  std::unique_ptr<secrets::SecretService> service_;
};

std::string Text(const SecretBytes& b);

// A put op of `value` (as text) to `path`, for Transact.
secrets::Op PutOp(const std::string& path, const std::string& value);

}  // namespace sk::testing
