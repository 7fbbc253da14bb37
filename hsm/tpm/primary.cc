#include "hsm/tpm/primary.h"

#include <cstdio>
#include <string>

#include "hsm/tpm/tpm_errors.h"

namespace sk::hsm::tpm {

TPM2B_PUBLIC PrimaryTemplate() {
  TPM2B_PUBLIC t{};
  t.publicArea.type = TPM2_ALG_ECC;
  t.publicArea.nameAlg = TPM2_ALG_SHA256;
  t.publicArea.objectAttributes = kPrimaryAttributes;
  TPMS_ECC_PARMS& ecc = t.publicArea.parameters.eccDetail;
  ecc.symmetric.algorithm = TPM2_ALG_AES;
  ecc.symmetric.keyBits.aes = 128;
  ecc.symmetric.mode.aes = TPM2_ALG_CFB;
  ecc.scheme.scheme = TPM2_ALG_NULL;
  ecc.curveID = TPM2_ECC_NIST_P256;
  ecc.kdf.scheme = TPM2_ALG_NULL;
  return t;
}

Result<ScopedTr> LoadPrimary(ESYS_CONTEXT* ctx, std::uint32_t persistent_handle,
                             const SecretBytes* owner_auth) {
  if (persistent_handle != 0) {
    ESYS_TR tr = ESYS_TR_NONE;
    TSS2_RC rc = Esys_TR_FromTPMPublic(ctx, persistent_handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr);
    if (rc != TSS2_RC_SUCCESS) {
      char hex[16];
      std::snprintf(hex, sizeof hex, "0x%08x", persistent_handle);
      if (BaseRc(rc) == TPM2_RC_HANDLE) {
        return Status(Code::kFailedPrecondition, kNotProvisioned,
                      std::string("the configured persistent primary key ") + hex + " does not exist");
      }
      return TpmError(std::string("reading the persistent primary key ") + hex, rc);
    }
    return ScopedTr(ctx, tr, ScopedTr::Kind::kClose);
  }
  // With an owner auth value, authorise by HMAC so the value itself never travels.
  ScopedTr hmac;
  ESYS_TR auth_session = ESYS_TR_PASSWORD;
  if (owner_auth != nullptr && !owner_auth->empty()) {
    SK_RETURN_IF_ERROR(SetAuth(ctx, ESYS_TR_RH_OWNER, owner_auth->Expose().data(), owner_auth->size()));
    SK_ASSIGN_OR_RETURN(hmac, StartHmacSession(ctx));
    auth_session = hmac.get();
  }
  TPM2B_SENSITIVE_CREATE sensitive{};
  TPM2B_PUBLIC in_public = PrimaryTemplate();
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION creation_pcr{};
  ESYS_TR tr = ESYS_TR_NONE;
  TSS2_RC rc =
      Esys_CreatePrimary(ctx, ESYS_TR_RH_OWNER, auth_session, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                         &in_public, &outside, &creation_pcr, &tr, nullptr, nullptr, nullptr, nullptr);
  if (owner_auth != nullptr && !owner_auth->empty()) (void)SetAuth(ctx, ESYS_TR_RH_OWNER, nullptr, 0);
  if (rc != TSS2_RC_SUCCESS) {
    if (BaseRc(rc) == TPM2_RC_BAD_AUTH || BaseRc(rc) == TPM2_RC_AUTH_FAIL) {
      return Status(Code::kUnauthenticated, kAuthIncorrect,
                    "the owner hierarchy auth is wrong or set; give it (--owner-auth-file) or configure a "
                    "persistent primary key: " +
                        DescribeRc(rc));
    }
    return TpmError("TPM2_CreatePrimary (owner hierarchy, fixed template)", rc);
  }
  return ScopedTr(ctx, tr, ScopedTr::Kind::kFlush);
}

Result<ScopedTr> StartSaltedSession(ESYS_CONTEXT* ctx, ESYS_TR primary, TPM2_SE type, TPMA_SESSION crypt) {
  TPMT_SYM_DEF sym{};
  sym.algorithm = TPM2_ALG_AES;
  sym.keyBits.aes = 128;
  sym.mode.aes = TPM2_ALG_CFB;
  ESYS_TR session = ESYS_TR_NONE;
  TSS2_RC rc = Esys_StartAuthSession(ctx, primary, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                     nullptr, type, &sym, TPM2_ALG_SHA256, &session);
  if (rc != TSS2_RC_SUCCESS) return TpmError("TPM2_StartAuthSession (salted)", rc);
  ScopedTr guard(ctx, session, ScopedTr::Kind::kFlush);
  TPMA_SESSION attrs = static_cast<TPMA_SESSION>(TPMA_SESSION_CONTINUESESSION | crypt);
  rc = Esys_TRSess_SetAttributes(ctx, session, attrs, 0xFF);
  if (rc != TSS2_RC_SUCCESS) return TpmError("Esys_TRSess_SetAttributes", rc);
  return guard;
}

Result<ScopedTr> StartHmacSession(ESYS_CONTEXT* ctx) {
  TPMT_SYM_DEF sym{};
  sym.algorithm = TPM2_ALG_NULL;
  ESYS_TR session = ESYS_TR_NONE;
  TSS2_RC rc = Esys_StartAuthSession(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                     ESYS_TR_NONE, nullptr, TPM2_SE_HMAC, &sym, TPM2_ALG_SHA256, &session);
  if (rc != TSS2_RC_SUCCESS) return TpmError("TPM2_StartAuthSession (HMAC)", rc);
  ScopedTr guard(ctx, session, ScopedTr::Kind::kFlush);
  rc = Esys_TRSess_SetAttributes(ctx, session, TPMA_SESSION_CONTINUESESSION, 0xFF);
  if (rc != TSS2_RC_SUCCESS) return TpmError("Esys_TRSess_SetAttributes", rc);
  return guard;
}

}  // namespace sk::hsm::tpm
