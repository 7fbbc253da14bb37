// Tokens, sessions and login (internal to hsm/pkcs11/).
//
// sealkeep finds a token by its label, never by slot number: slot numbers change (SoftHSM2
// renumbers a slot when its token is initialised; readers move between USB ports).
// Labels are compared after trimming PKCS#11's space padding; two tokens with one label
// are refused (token_ambiguous) rather than guessed between.
//
// Login state in PKCS#11 belongs to the application (process) and token, not to one
// session: logging in on one session logs in all of them, and it ends when the last
// session with the token closes. So sealkeep never calls C_Logout or
// C_CloseAllSessions (either would cut off another backend of the same process on the
// same token); it closes its own sessions one by one. A consequence: when another part
// of this process is already logged in to the token, C_Login answers
// CKR_USER_ALREADY_LOGGED_IN without checking the PIN, and Login() accepts that.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "crypto/secret_bytes.h"
#include "crypto/status.h"
#include "hsm/pkcs11/module.h"
#include "hsm/pkcs11/p11.h"

namespace sk::hsm::pkcs11 {

struct TokenInfo {
  ck_slot_id_t slot = 0;
  std::string label;  // trimmed
  std::string serial;
  std::string manufacturer;
  std::string model;
  ck_flags_t flags = 0;  // CKF_USER_PIN_LOCKED, CKF_TOKEN_INITIALIZED...

  // "token 'sealkeep' (serial 61a8af4449835b85)"
  std::string Describe() const;
};

// The token labelled `label` among slots with a token present.
// Errors: token_not_found (kNotFound, listing the labels seen), token_ambiguous.
Result<TokenInfo> FindToken(const Module& module, std::string_view label);

// A slot whose token is present but not initialised (SoftHSM2 always offers one).
// Error: no_free_slot (kFailedPrecondition).
Result<ck_slot_id_t> FindFreeSlot(const Module& module);

// An open session; closes it (C_CloseSession) when destroyed. Move-only.
class Session {
 public:
  Session() = default;
  Session(std::shared_ptr<Module> module, ck_session_handle_t handle)
      : module_(std::move(module)), handle_(handle) {}
  Session(Session&& other) noexcept;
  Session& operator=(Session&& other) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() { Close(); }

  ck_session_handle_t handle() const { return handle_; }
  const Module& module() const { return *module_; }
  const ck_function_list& fn() const { return module_->fn(); }
  bool open() const { return module_ != nullptr; }
  void Close();

 private:
  std::shared_ptr<Module> module_;
  ck_session_handle_t handle_ = CK_INVALID_HANDLE;
};

// Opens a session on `slot`; read-write when `rw`.
Result<Session> OpenSession(std::shared_ptr<Module> module, ck_slot_id_t slot, bool rw);

// C_Login. Errors: pin_incorrect, pin_locked (both kUnauthenticated), pin_expired,
// pin_not_initialized (kFailedPrecondition); pkcs11_error otherwise.
// CKR_USER_ALREADY_LOGGED_IN counts as success for CKU_USER (see the file comment).
Status Login(const Session& session, ck_user_type_t user, SecretBytes& pin);

// pin_locked when the token's flags say the user PIN is locked: checked before a login
// attempt, so sealkeep never spends a try on a locked token.
Status CheckUserPinUsable(const TokenInfo& token);

// Label as PKCS#11 wants it for C_InitToken: 32 bytes, space padded.
// Error: label_too_long (kInvalidArgument) over 32 bytes.
Result<std::string> PaddedLabel(std::string_view label);

}  // namespace sk::hsm::pkcs11
