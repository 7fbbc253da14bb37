// Opening the backend fails with a distinct, actionable reason for each thing a user
// can get wrong: the module, the token label, the PIN, the master key.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "hsm/pkcs11/pkcs11_backend.h"
#include "hsm/pkcs11/provision.h"
#include "tests/fixtures/temp_dir.h"
#include "tests/hsm/pkcs11/test_util.h"

namespace sk::hsm {
namespace {

using sk::testing::ReadFile;
using sk::testing::SoftHsmToken;
using sk::testing::TempDir;
using sk::testing::WriteFile;

Status OpenStatus(const Pkcs11Config& config) { return pkcs11::OpenPkcs11Backend(config).status(); }

// The path of a shared library this process has loaded that is not a PKCS#11 module.
std::string SomeLoadedLibrary() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    auto pos = line.find('/');
    if (pos == std::string::npos) continue;
    std::string path = line.substr(pos);
    if (path.find("/libc.so") != std::string::npos || path.find("/libc-") != std::string::npos) return path;
  }
  return "";
}

TEST(OpenErrors, MissingModuleIsModuleNotFound) {
  TempDir dir("p11-err");
  SoftHsmToken token(dir.path());
  Pkcs11Config config = token.Config();
  config.module = dir.Join("no-such-module.so");
  Status st = OpenStatus(config);
  EXPECT_EQ(st.reason(), "module_not_found") << st.ToString();
  EXPECT_EQ(st.code(), Code::kNotFound);
}

TEST(OpenErrors, TextFileIsNotAPkcs11Module) {
  TempDir dir("p11-err");
  SoftHsmToken token(dir.path());
  Pkcs11Config config = token.Config();
  config.module = dir.Join("fake.so");
  WriteFile(config.module, "this is not a shared library\n", 0755);
  Status st = OpenStatus(config);
  EXPECT_EQ(st.reason(), "not_a_pkcs11_module") << st.ToString();
}

TEST(OpenErrors, SharedLibraryWithoutGetFunctionListIsNotAPkcs11Module) {
  TempDir dir("p11-err");
  SoftHsmToken token(dir.path());
  Pkcs11Config config = token.Config();
  config.module = SomeLoadedLibrary();
  ASSERT_FALSE(config.module.empty()) << "no libc in /proc/self/maps";
  Status st = OpenStatus(config);
  EXPECT_EQ(st.reason(), "not_a_pkcs11_module") << st.ToString();
  EXPECT_NE(st.message().find("C_GetFunctionList"), std::string_view::npos) << st.ToString();
}

TEST(OpenErrors, MissingTokenIsTokenNotFound) {
  TempDir dir("p11-err");
  SoftHsmToken token(dir.path());
  Pkcs11Config config = token.Config();
  config.token_label = "no-such-token";
  Status st = OpenStatus(config);
  EXPECT_EQ(st.reason(), "token_not_found") << st.ToString();
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_NE(st.message().find("'sealkeep'"), std::string_view::npos)
      << "lists the labels seen: " << st.ToString();
}

TEST(OpenErrors, WrongPinIsPinIncorrectAndNeverShowsAPin) {
  TempDir dir("p11-err");
  SoftHsmToken token(dir.path());
  Pkcs11Config config = token.Config();
  const std::string right = ReadFile(token.pin_file());
  config.pin_file = dir.Join("wrong.pin");
  WriteFile(config.pin_file, "99999999\n");
  Status st = OpenStatus(config);
  EXPECT_EQ(st.reason(), "pin_incorrect") << st.ToString();
  EXPECT_EQ(st.code(), Code::kUnauthenticated);
  EXPECT_EQ(st.message().find("99999999"), std::string_view::npos);
  EXPECT_EQ(st.message().find(right.substr(0, 16)), std::string_view::npos);
}

// SoftHSM2 never locks a user PIN (Token::loginUser only raises CKF_USER_PIN_COUNT_LOW),
// so wrong PINs stay pin_incorrect and the right one still works.
TEST(OpenErrors, RepeatedWrongPinsStayPinIncorrectOnSoftHsm2) {
  TempDir dir("p11-err");
  SoftHsmToken token(dir.path());
  Pkcs11Config wrong = token.Config();
  wrong.pin_file = dir.Join("wrong.pin");
  WriteFile(wrong.pin_file, "00000000\n");
  for (int i = 0; i < 6; ++i) EXPECT_EQ(OpenStatus(wrong).reason(), "pin_incorrect") << "try " << i;
  EXPECT_TRUE(token.Open().ok());
}

// Sets CKF_USER_PIN_LOCKED in the token's stored flags, as a hardware token reports a
// locked PIN. SoftHSM2 2.6 keeps them in token.object as attribute CKA_OS_TOKENFLAGS
// (0x8000534B, kind 2 = unsigned long, 8-byte big-endian value).
bool MarkUserPinLocked(const SoftHsmToken& token) {
  for (const auto& entry : std::filesystem::directory_iterator(token.tokens_dir())) {
    const std::string path = entry.path().string() + "/token.object";
    std::string bytes = ReadFile(path);
    std::string padded_label = token.label() + std::string(32 - token.label().size(), ' ');
    if (bytes.find(padded_label) == std::string::npos) continue;
    const std::string tag("\0\0\0\0\x80\0\x53\x4b\0\0\0\0\0\0\0\x02", 16);
    auto pos = bytes.find(tag);
    if (pos == std::string::npos || pos + 24 > bytes.size()) return false;
    bytes[pos + 16 + 5] = static_cast<char>(bytes[pos + 16 + 5] | 0x04);  // 1 << 18 in the big-endian u64
    WriteFile(path, bytes, 0600);
    return true;
  }
  return false;
}

TEST(OpenErrors, LockedPinIsPinLockedWithoutATry) {
  TempDir dir("p11-err");
  SoftHsmToken token(dir.path());
  ASSERT_TRUE(MarkUserPinLocked(token));
  Status st = token.Open().status();
  EXPECT_EQ(st.reason(), "pin_locked") << st.ToString();
  EXPECT_EQ(st.code(), Code::kUnauthenticated);
}

TEST(OpenErrors, MissingPinFileIsCredentialMissing) {
  TempDir dir("p11-err");
  SoftHsmToken token(dir.path());
  Pkcs11Config config = token.Config();
  config.pin_file = dir.Join("absent.pin");
  EXPECT_EQ(OpenStatus(config).reason(), "credential_missing");
}

// A PIN file is a secret: one others may read or change, or a link to somewhere else, is
// refused before a byte of it is read, with what to fix.
TEST(OpenErrors, APinFileOthersMayReadIsRefusedAsUnsafe) {
  TempDir dir("p11-err");
  SoftHsmToken token(dir.path());
  Pkcs11Config config = token.Config();
  const std::string pin = ReadFile(config.pin_file);
  ASSERT_TRUE(OpenStatus(config).ok()) << "the fixture's 0600 file opens";
  for (mode_t mode : {0640U, 0604U, 0660U, 0622U}) {
    ::chmod(config.pin_file.c_str(), mode);
    Status st = OpenStatus(config);
    EXPECT_EQ(st.reason(), "credential_unsafe") << std::oct << mode;
    EXPECT_NE(st.message().find("chmod 600"), std::string::npos) << st.message();
    EXPECT_EQ(st.message().find(pin.substr(0, 8)), std::string::npos) << "a PIN in an error";
  }
  ::chmod(config.pin_file.c_str(), 0400);
  EXPECT_TRUE(OpenStatus(config).ok()) << "0400 is private too";
  // Another owner (neither root nor us).
  ASSERT_EQ(::chown(config.pin_file.c_str(), 4242, 4242), 0);
  EXPECT_EQ(OpenStatus(config).reason(), "credential_unsafe");
  ASSERT_EQ(::chown(config.pin_file.c_str(), 0, 0), 0);
  // A symbolic link, even to the right file.
  std::string link = dir.Join("link.pin");
  ASSERT_EQ(::symlink(config.pin_file.c_str(), link.c_str()), 0);
  Pkcs11Config linked = config;
  linked.pin_file = link;
  EXPECT_EQ(OpenStatus(linked).reason(), "credential_unsafe");
  // A FIFO would block the reader: refused without waiting.
  std::string fifo = dir.Join("fifo.pin");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  Pkcs11Config piped = config;
  piped.pin_file = fifo;
  EXPECT_EQ(OpenStatus(piped).reason(), "credential_unsafe");
}

// systemd's credential directory holds files it made, granted to the service by
// ownership or an ACL (which shows in the group bits): those are read as they are.
TEST(OpenErrors, SystemdsCredentialDirectoryIsTrustedForItsModes) {
  TempDir dir("p11-err");
  SoftHsmToken token(dir.path());
  Pkcs11Config config = token.Config();
  std::string creds = dir.Join("credentials");
  ASSERT_EQ(::mkdir(creds.c_str(), 0500), 0);
  WriteFile(creds + "/hsm-pin", ReadFile(config.pin_file), 0440);
  config.pin_file = "";
  ::setenv("CREDENTIALS_DIRECTORY", creds.c_str(), 1);
  Status st = OpenStatus(config);
  ::unsetenv("CREDENTIALS_DIRECTORY");
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST(OpenErrors, UnprovisionedTokenIsMasterKeyMissing) {
  TempDir dir("p11-err");
  SoftHsmToken token(dir.path(), "bare", /*provision=*/false);
  Status st = token.Open().status();
  EXPECT_EQ(st.reason(), "master_key_missing") << st.ToString();
}

const char kKeysetHex[] = "0102030405060708";

TEST(OpenErrors, ExtractableMasterKeyIsRefused) {
  TempDir dir("p11-err");
  SoftHsmToken token(dir.path(), "sealkeep", /*provision=*/false);
  int rc = 0;
  std::string out =
      token.PkcsTool(std::string("--keygen --key-type AES:32 --label sealkeep-master-g1 --id ") + kKeysetHex +
                         " --private --extractable",
                     &rc);
  ASSERT_EQ(rc, 0) << out;
  Status st = token.Open().status();
  EXPECT_EQ(st.reason(), "master_key_extractable") << st.ToString();
  pkcs11::ProvisionOptions options;
  options.config = token.Config();
  Status prov = pkcs11::Provision(options).status();
  EXPECT_EQ(prov.reason(), "master_key_extractable") << "provisioning refuses it too: " << prov.ToString();
}

TEST(OpenErrors, ImportedMasterKeyIsRefusedEvenIfSensitiveNow) {
  TempDir dir("p11-err");
  SoftHsmToken token(dir.path(), "sealkeep", /*provision=*/false);
  const std::string key_file = dir.Join("key.bin");
  WriteFile(key_file, std::string(32, 'k'));
  int rc = 0;
  std::string out = token.PkcsTool("--write-object " + key_file +
                                       " --type secrkey --key-type AES:32 --label sealkeep-master-g1 --id " +
                                       kKeysetHex + " --sensitive --private",
                                   &rc);
  ASSERT_EQ(rc, 0) << out;
  Status st = token.Open().status();
  EXPECT_EQ(st.reason(), "master_key_extractable") << st.ToString();
  EXPECT_NE(st.message().find("never-extractable"), std::string_view::npos) << st.ToString();
}

TEST(OpenErrors, ExtractableKeyPosingAsANewGenerationIsRefused) {
  TempDir dir("p11-err");
  SoftHsmToken token(dir.path());
  auto backend = OpenOrDie(token);
  ASSERT_NE(backend, nullptr);
  const std::string keyset = backend->Info().keyset_id;
  backend.reset();
  int rc = 0;
  std::string out = token.PkcsTool(
      "--keygen --key-type AES:32 --label sealkeep-master-g2 --id " + keyset + " --private --extractable",
      &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(token.Open().status().reason(), "master_key_extractable");
}

}  // namespace
}  // namespace sk::hsm
