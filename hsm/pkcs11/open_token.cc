#include "hsm/pkcs11/open_token.h"

#include "hsm/credential.h"

namespace sk::hsm::pkcs11 {

Result<OpenToken> OpenAndLogin(const Pkcs11Config& config, const SecretBytes* given_pin) {
  OpenToken t;
  SK_ASSIGN_OR_RETURN(t.module, LoadModule(config.module));
  SK_ASSIGN_OR_RETURN(t.info, FindToken(*t.module, config.token_label));
  SK_RETURN_IF_ERROR(CheckUserPinUsable(t.info));
  SK_ASSIGN_OR_RETURN(t.session, OpenSession(t.module, t.info.slot, /*rw=*/true));
  {
    SecretBytes pin;
    if (given_pin != nullptr) {
      pin = given_pin->Clone();
    } else {
      SK_ASSIGN_OR_RETURN(pin, ReadCredential(config.pin_file, kPinCredentialName));
    }
    Status st = Login(t.session, CKU_USER, pin);
    if (!st.ok()) return st.WithContext(t.info.Describe());
  }
  return t;
}

}  // namespace sk::hsm::pkcs11
