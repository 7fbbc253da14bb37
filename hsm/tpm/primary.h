// The primary key sealkeep's objects live under, and the sessions it talks to the TPM in.
//
// The primary is created in the owner hierarchy from one fixed template, the ECC storage
// root key template of the TCG "TPM 2.0 Provisioning Guidance" (7.5.1):
//   type ECC, nameAlg SHA-256,
//   attributes fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | noDA |
//              restricted | decrypt (0x00030472), empty authPolicy,
//   symmetric AES-128-CFB, scheme NULL, curve NIST P-256, kdf NULL, unique empty,
//   empty auth value, no outside info, no creation PCRs.
// A TPM derives a primary from its owner seed and the template, so the same template gives
// the same key at every start (until the owner hierarchy is cleared); it is created when
// needed and flushed after use. Owner auth is empty unless `owner_auth` is given; hosts
// whose owner hierarchy has a password can instead persist the key (tpm2_evictcontrol) and
// configure its handle (TpmConfig::primary_handle; 0x81000001 is the shared SRK handle).
//
// Sessions: every session that carries a secret is salted with the primary (ECDH on
// P-256) and uses AES-128-CFB parameter encryption, so neither the sealed key nor an auth
// value crosses the bus in clear.
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>

#include "crypto/secret_bytes.h"
#include "crypto/status.h"
#include "hsm/tpm/esys_context.h"

namespace sk::hsm::tpm {

inline constexpr TPMA_OBJECT kPrimaryAttributes =
    TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
    TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;

TPM2B_PUBLIC PrimaryTemplate();

// persistent_handle 0: creates the primary from the template (flushed when the result goes
// away); else refers to that persistent handle (closed, never flushed). not_provisioned when
// the persistent handle holds nothing.
Result<ScopedTr> LoadPrimary(ESYS_CONTEXT* ctx, std::uint32_t persistent_handle,
                             const SecretBytes* owner_auth = nullptr);

// A session salted with `primary`, SHA-256, continueSession set (the ScopedTr flushes it),
// AES-128-CFB parameter encryption as `crypt` asks: TPMA_SESSION_DECRYPT for the first
// command parameter (a secret sent), TPMA_SESSION_ENCRYPT for the first response parameter
// (a secret received), or both. type TPM2_SE_HMAC or TPM2_SE_POLICY.
Result<ScopedTr> StartSaltedSession(ESYS_CONTEXT* ctx, ESYS_TR primary, TPM2_SE type, TPMA_SESSION crypt);

// An unsalted, unbound HMAC session (SHA-256, no parameter encryption) for authorising
// with an auth value that is high-entropy (the NV anchor's): the value itself never
// travels, only HMACs keyed with it.
Result<ScopedTr> StartHmacSession(ESYS_CONTEXT* ctx);

}  // namespace sk::hsm::tpm
