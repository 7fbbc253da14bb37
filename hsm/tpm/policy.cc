#include "hsm/tpm/policy.h"

#include <tss2/tss2_mu.h>

#include <array>

#include "crypto/bytes.h"
#include "hsm/tpm/pcr.h"
#include "hsm/tpm/tpm_errors.h"

namespace sk::hsm::tpm {

Digest PolicyDigest(std::uint32_t pcr_mask, const Digest& pcr_composite) {
  Digest d{};
  if (pcr_mask != 0) {
    TPML_PCR_SELECTION sel = PcrSelection(pcr_mask);
    std::array<std::uint8_t, sizeof(TPML_PCR_SELECTION)> buf{};
    std::size_t n = 0;
    // Cannot fail: the buffer holds any selection.
    (void)Tss2_MU_TPML_PCR_SELECTION_Marshal(&sel, buf.data(), buf.size(), &n);
    ByteWriter w;
    w.Raw(d);
    w.U32(TPM2_CC_PolicyPCR);
    w.Raw(ByteView(buf.data(), n));
    w.Raw(pcr_composite);
    d = Sha256(w.bytes());
  }
  ByteWriter w;
  w.Raw(d);
  w.U32(TPM2_CC_PolicyAuthValue);
  return Sha256(w.bytes());
}

Status ApplyPolicy(ESYS_CONTEXT* ctx, ESYS_TR session, std::uint32_t pcr_mask) {
  if (pcr_mask != 0) {
    TPML_PCR_SELECTION sel = PcrSelection(pcr_mask);
    TPM2B_DIGEST empty{};
    TSS2_RC rc = Esys_PolicyPCR(ctx, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &empty, &sel);
    if (rc != TSS2_RC_SUCCESS) return TpmError("TPM2_PolicyPCR", rc);
  }
  TSS2_RC rc = Esys_PolicyAuthValue(ctx, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE);
  if (rc != TSS2_RC_SUCCESS) return TpmError("TPM2_PolicyAuthValue", rc);
  return OkStatus();
}

}  // namespace sk::hsm::tpm
