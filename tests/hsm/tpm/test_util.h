// Shared helpers of the TPM backend tests: a fixture with its own swtpm and state folder.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "crypto/random.h"
#include "hsm/tpm/provision.h"
#include "hsm/tpm/tpm_backend.h"
#include "tests/fixtures/swtpm.h"
#include "tests/fixtures/temp_dir.h"

namespace sk::hsm::tpm {

inline SecretBytes NewKey(std::size_t n = 32) {
  auto k = RandomSecret(n);
  EXPECT_TRUE(k.ok());
  return std::move(k).value();
}

// A swtpm in a private temp folder, and a TPM config whose state folder is <dir>/state.
class TpmTest : public ::testing::Test {
 protected:
  explicit TpmTest(const std::string& tag = "tpm") : dir_(tag), swtpm_(dir_.path()) {
    config_ = swtpm_.Config(dir_.Join("state"));
  }

  // Provisions config_ (fails the test on error).
  void Provision() {
    auto report = ProvisionTpm(config_);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
  }
  Result<std::unique_ptr<TpmBackend>> Open() { return TpmBackend::Open(config_); }
  std::unique_ptr<TpmBackend> OpenOrFail() {
    auto b = Open();
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    return b.ok() ? std::move(b).value() : nullptr;
  }
  // Writes an auth credential file and makes config_ use it.
  void UseAuthFile(const std::string& value) {
    std::string path = dir_.Join("tpm-auth");
    sk::testing::WriteFile(path, value + "\n");
    config_.auth_file = path;
  }

  sk::testing::TempDir dir_;
  sk::testing::Swtpm swtpm_;
  TpmConfig config_;
};

}  // namespace sk::hsm::tpm
