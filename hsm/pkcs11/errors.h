// Errors of the PKCS#11 layer: CK_RV names and the generic Status for an unexpected
// return value (internal to hsm/pkcs11/).
//
// The reasons a user can act on (pin_incorrect, token_not_found, does_not_verify...)
// are chosen where the call is made, because one CK_RV means different things at
// different steps (SoftHSM2 answers CKR_GENERAL_ERROR both for a bad GCM tag in
// C_Decrypt and for internal failures elsewhere). Everything else becomes
// RvError(): reason "pkcs11_error", code kUnavailable, a message naming the step and
// the CK_RV. Messages never hold PINs or key bytes.
#pragma once

#include <string>
#include <string_view>

#include "crypto/status.h"
#include "hsm/pkcs11/p11.h"

namespace sk::hsm::pkcs11 {

// "CKR_PIN_INCORRECT (0xa0)"; unknown values print as "CKR_? (0x...)".
std::string RvName(ck_rv_t rv);

// kUnavailable, reason pkcs11_error: "<step> failed: CKR_... (0x..)".
Status RvError(ck_rv_t rv, std::string_view step);

}  // namespace sk::hsm::pkcs11
