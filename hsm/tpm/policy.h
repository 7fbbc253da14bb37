// The authorisation policy of a sealed master key.
//
//   PolicyPCR(sha256 bank: selection, composite digest)   only when the selection is not empty
//   PolicyAuthValue                                         always
//
// PolicyAuthValue is always part of the policy so there is one shape of it; the object's
// auth value is empty unless the key was sealed with an auth credential, so without one
// the step only asks for the empty value. The digest (TPM 2.0 Part 3, 23.7 and 23.18):
//
//   d0 = 32 zero bytes
//   d1 = SHA-256(d0 || 0x0000017F (TPM_CC_PolicyPCR) || TPML_PCR_SELECTION || composite)
//        (d1 = d0 when no PCR is selected)
//   d2 = SHA-256(d1 || 0x0000016B (TPM_CC_PolicyAuthValue))
//
// where TPML_PCR_SELECTION is marshalled as count (u32 = 1), hash (u16 = 0x000B sha256),
// sizeofSelect (u8 = 3) and the 3 select bytes, and composite is pcr.h's PcrComposite().
// It is computed here in software, so sealing needs no trial session and open can check
// a sealed file's recorded policy against the authPolicy of the object it holds.
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>

#include "crypto/mac.h"
#include "crypto/status.h"

namespace sk::hsm::tpm {

Digest PolicyDigest(std::uint32_t pcr_mask, const Digest& pcr_composite);

// Runs the policy's commands in `session` (a policy session). PolicyPCR is given an empty
// digest, so the TPM uses the current PCR values; a changed boot state therefore shows as
// TPM_RC_POLICY_FAIL on the command the session authorises.
Status ApplyPolicy(ESYS_CONTEXT* ctx, ESYS_TR session, std::uint32_t pcr_mask);

}  // namespace sk::hsm::tpm
