// A P-256 ECDH key pair kept in the token: the fleet host key (docs/fleet.md) on a host
// whose master key is in a PKCS#11 token. Made once by C_GenerateKeyPair
// (CKM_EC_KEY_PAIR_GEN) with the private half CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, not
// CKA_EXTRACTABLE, and usable only for CKA_DERIVE; found again by its label afterwards.
// SharedSecret is one C_DeriveKey (CKM_ECDH1_DERIVE, CKD_NULL) into a session object
// whose value (the x-coordinate, 32 bytes) is read into locked memory and which is
// destroyed at once. The private scalar never leaves the token.
//
// The two halves share a random CKA_ID, checked at every open.
//
// Errors: those of OpenAndLogin; ecdh_key_not_found (kNotFound) when `create` is false and
// there is none; ecdh_key_ambiguous (kFailedPrecondition) for two with the label;
// ecdh_key_incomplete (kFailedPrecondition) when only one half is there (none is made beside
// it); ecdh_key_mismatch when the halves' CKA_IDs differ; pkcs11_error for the token's refusals. Thread-safe
// only as RecoveryOpener uses it (one caller at a time); it holds one logged-in session of its own.
#pragma once

#include <memory>
#include <string>

#include "crypto/recovery_wrap.h"
#include "hsm/backend_config.h"

namespace sk::hsm::pkcs11 {

Result<std::unique_ptr<EcdhPrivateKey>> OpenEcdhKey(const Pkcs11Config& config, const std::string& label,
                                                    bool create);

}  // namespace sk::hsm::pkcs11
