// Errors of the TPM backend: the stable reasons it puts on a Status, and the mapping
// from tpm2-tss response codes to them.
//
// Reasons (Status::reason()), each with one meaning:
//   boot_state_changed  the PCR policy of a sealed key no longer holds (kSealed)
//   auth_incorrect      the auth value of a sealed key is wrong (kUnauthenticated)
//   auth_locked_out     the TPM is in dictionary-attack lockout (kUnauthenticated)
//   tpm_unavailable     the TCTI cannot reach a TPM (kUnavailable)
//   wrong_tpm           a sealed object, NV index or blob belongs to another TPM or keyset
//                       (kCorruption, like the PKCS#11 backend's wrong_token)
//   not_provisioned     the state folder or the NV indices are missing (kFailedPrecondition)
//   malformed_blob      a wrapped blob does not parse (kCorruption)
//   malformed_state     a file of the state folder does not parse or does not match the
//                       sealed object it describes (kCorruption)
//   key_retired         a blob's generation is not live (kFailedPrecondition)
//   does_not_verify     a blob's GCM tag does not check (kCorruption; from crypto/aead.h)
//   tpm_error           any other TPM or tpm2-tss failure; the message names the command,
//                       the response code in hex and its Tss2_RC_Decode() text (kUnavailable)
// Messages never contain key or auth bytes.
#pragma once

#include <tss2/tss2_common.h>
#include <tss2/tss2_tpm2_types.h>

#include <string_view>

#include "crypto/status.h"

namespace sk::hsm::tpm {

inline constexpr const char* kBootStateChanged = "boot_state_changed";
inline constexpr const char* kAuthIncorrect = "auth_incorrect";
inline constexpr const char* kAuthLockedOut = "auth_locked_out";
inline constexpr const char* kTpmUnavailable = "tpm_unavailable";
inline constexpr const char* kWrongTpm = "wrong_tpm";
inline constexpr const char* kNotProvisioned = "not_provisioned";
inline constexpr const char* kMalformedBlob = "malformed_blob";
inline constexpr const char* kMalformedState = "malformed_state";
inline constexpr const char* kKeyRetired = "key_retired";
inline constexpr const char* kTpmError = "tpm_error";

// A TPM-layer response code without its handle, session or parameter number, so it can be
// compared with the TPM2_RC_* constants (0x99D -> TPM2_RC_POLICY_FAIL). Codes of the other
// tpm2-tss layers are returned unchanged.
TSS2_RC BaseRc(TSS2_RC rc);

// True when rc came from the TCTI layer or says the TPM could not be reached.
bool IsConnectionError(TSS2_RC rc);

// "0x0000099d (tpm:session(1):a policy check failed)"
std::string DescribeRc(TSS2_RC rc);

// The generic mapping for a failed command `what` ("TPM2_Load of generation 2"):
// connection errors -> tpm_unavailable, lockout -> auth_locked_out, else tpm_error.
Status TpmError(std::string_view what, TSS2_RC rc);

}  // namespace sk::hsm::tpm
