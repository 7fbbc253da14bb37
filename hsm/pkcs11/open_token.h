// Opening a token the way both the backend and provisioning do (internal to hsm/pkcs11/):
// load the module, find the token by label, read the user PIN (hsm/credential.h: from
// the configured file or $CREDENTIALS_DIRECTORY/hsm-pin, never argv or environment),
// refuse a locked PIN before spending a try, open a session and log in as CKU_USER.
// The PIN is wiped as soon as C_Login returns.
#pragma once

#include <memory>
#include <string>

#include "crypto/secret_bytes.h"
#include "crypto/status.h"
#include "hsm/backend_config.h"
#include "hsm/pkcs11/module.h"
#include "hsm/pkcs11/token.h"

namespace sk::hsm::pkcs11 {

inline constexpr char kPinCredentialName[] = "hsm-pin";

struct OpenToken {
  std::shared_ptr<Module> module;
  TokenInfo info;
  Session session;  // logged in as user; read-write
};

// Errors: those of LoadModule, FindToken, ReadCredential, CheckUserPinUsable, Login.
// `pin`, when given, is used instead of reading one (sealkeep setup holds the PIN it
// generated in locked memory only).
Result<OpenToken> OpenAndLogin(const Pkcs11Config& config, const SecretBytes* pin = nullptr);

}  // namespace sk::hsm::pkcs11
