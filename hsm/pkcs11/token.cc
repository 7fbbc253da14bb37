#include "hsm/pkcs11/token.h"

#include <vector>

#include "hsm/pkcs11/errors.h"

namespace sk::hsm::pkcs11 {
namespace {

// PKCS#11 fixed-width text fields are padded with spaces (some modules use NULs).
std::string Trimmed(const unsigned char* p, std::size_t n) {
  std::string s(reinterpret_cast<const char*>(p), n);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

Result<std::vector<ck_slot_id_t>> SlotsWithToken(const Module& module) {
  unsigned long count = 0;
  ck_rv_t rv = module.fn().C_GetSlotList(1, nullptr, &count);
  if (rv != CKR_OK) return RvError(rv, "C_GetSlotList");
  std::vector<ck_slot_id_t> slots(count);
  rv = module.fn().C_GetSlotList(1, slots.data(), &count);
  if (rv != CKR_OK) return RvError(rv, "C_GetSlotList");
  slots.resize(count);
  return slots;
}

Result<TokenInfo> ReadTokenInfo(const Module& module, ck_slot_id_t slot) {
  ck_token_info raw{};
  ck_rv_t rv = module.fn().C_GetTokenInfo(slot, &raw);
  if (rv != CKR_OK) return RvError(rv, "C_GetTokenInfo");
  TokenInfo t;
  t.slot = slot;
  t.label = Trimmed(raw.label, sizeof raw.label);
  t.serial = Trimmed(raw.serial_number, sizeof raw.serial_number);
  t.manufacturer = Trimmed(raw.manufacturer_id, sizeof raw.manufacturer_id);
  t.model = Trimmed(raw.model, sizeof raw.model);
  t.flags = raw.flags;
  return t;
}

}  // namespace

std::string TokenInfo::Describe() const { return "token '" + label + "' (serial " + serial + ")"; }

Result<TokenInfo> FindToken(const Module& module, std::string_view label) {
  SK_ASSIGN_OR_RETURN(auto slots, SlotsWithToken(module));
  std::vector<TokenInfo> found;
  std::string seen;
  for (ck_slot_id_t slot : slots) {
    auto info = ReadTokenInfo(module, slot);
    // A token removed between the two calls is not the one we look for.
    if (!info.ok()) continue;
    if (!(info->flags & CKF_TOKEN_INITIALIZED)) continue;
    if (info->label == label) {
      found.push_back(std::move(info).value());
    } else {
      seen += (seen.empty() ? "'" : ", '") + info->label + "'";
    }
  }
  if (found.size() > 1) {
    return Status(Code::kConflict, "token_ambiguous",
                  std::to_string(found.size()) + " tokens are labelled '" + std::string(label) +
                      "'; give each token a distinct label");
  }
  if (found.empty()) {
    return Status(Code::kNotFound, "token_not_found",
                  "no initialised token labelled '" + std::string(label) + "' in " + module.path() +
                      (seen.empty() ? " (it shows no initialised tokens)" : " (tokens seen: " + seen + ")"));
  }
  return std::move(found.front());
}

Result<ck_slot_id_t> FindFreeSlot(const Module& module) {
  SK_ASSIGN_OR_RETURN(auto slots, SlotsWithToken(module));
  for (ck_slot_id_t slot : slots) {
    auto info = ReadTokenInfo(module, slot);
    if (info.ok() && !(info->flags & CKF_TOKEN_INITIALIZED)) return slot;
  }
  return Status(Code::kFailedPrecondition, "no_free_slot",
                module.path() + " offers no slot with an uninitialised token");
}

Session::Session(Session&& other) noexcept : module_(std::move(other.module_)), handle_(other.handle_) {
  other.handle_ = CK_INVALID_HANDLE;
}

Session& Session::operator=(Session&& other) noexcept {
  if (this != &other) {
    Close();
    module_ = std::move(other.module_);
    handle_ = other.handle_;
    other.handle_ = CK_INVALID_HANDLE;
  }
  return *this;
}

void Session::Close() {
  if (module_ != nullptr) {
    module_->fn().C_CloseSession(handle_);  // nothing useful to do if it fails
    module_.reset();
  }
  handle_ = CK_INVALID_HANDLE;
}

Result<Session> OpenSession(std::shared_ptr<Module> module, ck_slot_id_t slot, bool rw) {
  ck_flags_t flags = CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0);
  ck_session_handle_t h = CK_INVALID_HANDLE;
  ck_rv_t rv = module->fn().C_OpenSession(slot, flags, nullptr, nullptr, &h);
  if (rv != CKR_OK) return RvError(rv, "C_OpenSession");
  return Session(std::move(module), h);
}

Status Login(const Session& session, ck_user_type_t user, SecretBytes& pin) {
  auto p = pin.Expose();
  ck_rv_t rv = session.fn().C_Login(session.handle(), user, p.data(), p.size());
  const char* who = user == CKU_SO ? "security officer" : "user";
  switch (rv) {
    case CKR_OK:
      return OkStatus();
    case CKR_USER_ALREADY_LOGGED_IN:
      if (user == CKU_USER) return OkStatus();
      break;
    case CKR_PIN_INCORRECT:
      return Status(Code::kUnauthenticated, "pin_incorrect", std::string("the ") + who + " PIN is incorrect");
    case CKR_PIN_LOCKED:
      return Status(Code::kUnauthenticated, "pin_locked",
                    std::string("the ") + who + " PIN is locked; the security officer must reset it");
    case CKR_PIN_EXPIRED:
      return Status(Code::kFailedPrecondition, "pin_expired",
                    std::string("the ") + who + " PIN has expired; set a new one first");
    case CKR_USER_PIN_NOT_INITIALIZED:
      return Status(Code::kFailedPrecondition, "pin_not_initialized",
                    "the token has no user PIN yet (provision with --init, or C_InitPIN as SO)");
    default:
      break;
  }
  return RvError(rv, std::string("C_Login as ") + who);
}

Status CheckUserPinUsable(const TokenInfo& token) {
  if (token.flags & CKF_USER_PIN_LOCKED) {
    return Status(Code::kUnauthenticated, "pin_locked",
                  "the user PIN of " + token.Describe() + " is locked; the security officer must reset it");
  }
  if (!(token.flags & CKF_USER_PIN_INITIALIZED)) {
    return Status(Code::kFailedPrecondition, "pin_not_initialized",
                  token.Describe() + " has no user PIN yet (provision with --init, or C_InitPIN as SO)");
  }
  return OkStatus();
}

Result<std::string> PaddedLabel(std::string_view label) {
  if (label.size() > 32) {
    return Status(Code::kInvalidArgument, "label_too_long",
                  "token label '" + std::string(label) + "' is longer than 32 bytes");
  }
  std::string padded(label);
  padded.resize(32, ' ');
  return padded;
}

}  // namespace sk::hsm::pkcs11
