#include "hsm/tpm/tpm_errors.h"

#include <tss2/tss2_rc.h>

#include <cstdio>
#include <string>

namespace sk::hsm::tpm {

TSS2_RC BaseRc(TSS2_RC rc) {
  if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER) return rc;
  // Format one (bit 7): bits 0-5 are the error, bits 6 and 8-11 name the parameter,
  // handle or session it concerns.
  if ((rc & TPM2_RC_FMT1) != 0) return TPM2_RC_FMT1 | (rc & 0x3F);
  return rc & 0xFFF;
}

bool IsConnectionError(TSS2_RC rc) {
  if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TCTI_RC_LAYER) return true;
  TSS2_RC base = rc & ~TSS2_RC_LAYER_MASK;
  bool tss_layer = (rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER;
  return tss_layer &&
         (base == TSS2_BASE_RC_IO_ERROR || base == TSS2_BASE_RC_NO_CONNECTION || base == TSS2_BASE_RC_NO_TPM);
}

std::string DescribeRc(TSS2_RC rc) {
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%08x", static_cast<unsigned>(rc));
  const char* text = Tss2_RC_Decode(rc);
  return std::string(hex) + " (" + (text != nullptr ? text : "unknown") + ")";
}

Status TpmError(std::string_view what, TSS2_RC rc) {
  std::string detail = std::string(what) + " failed: " + DescribeRc(rc);
  if (IsConnectionError(rc))
    return Status(Code::kUnavailable, kTpmUnavailable, "cannot reach the TPM: " + detail);
  if (BaseRc(rc) == TPM2_RC_LOCKOUT) {
    return Status(Code::kUnauthenticated, kAuthLockedOut,
                  "the TPM is in dictionary-attack lockout after repeated wrong auth values; wait for "
                  "its recovery interval or clear it with the lockout auth (tpm2_dictionarylockout "
                  "--clear-lockout): " +
                      detail);
  }
  return Status(Code::kUnavailable, kTpmError, detail);
}

}  // namespace sk::hsm::tpm
