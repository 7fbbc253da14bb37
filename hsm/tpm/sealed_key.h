// Sealing a master-key generation into a TPM keyed-hash object, and unsealing it.
//
// The sealed object:
//   type KEYEDHASH (scheme NULL, unique empty), nameAlg SHA-256,
//   attributes fixedTPM | fixedParent | adminWithPolicy, plus noDA when no auth value is
//   required (with one, wrong guesses count toward the TPM's dictionary-attack lockout);
//   userWithAuth clear, so only a policy session satisfying policy.h's policy authorises
//   TPM2_Unseal; authPolicy = PolicyDigest(selection, composite);
//   auth value = the derived auth value (below) or empty;
//   sensitive data = the 77-byte payload of sealed_file_format.h.
// It is created under the primary (primary.h) in a salted session that encrypts the
// payload and auth value on their way in, and unsealed in a salted policy session that
// encrypts the payload on its way out. Every object and session is flushed on return, and
// every ESYS buffer that held payload bytes is wiped and freed.
//
// Auth value: SHA-256("sealkeep tpm auth value v1" || credential bytes), so a credential of
// any length (up to 4 KiB) fits the 32-byte limit of a SHA-256 object.
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <vector>

#include "crypto/mac.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"
#include "hsm/tpm/sealed_file_format.h"

namespace sk::hsm::tpm {

// What a generation is sealed to.
struct SealPolicy {
  std::uint32_t pcr_mask = 0;
  std::vector<Digest> pcr_values;  // ascending PCR order
  Digest pcr_composite{};
  bool auth_required = false;
};

// The policy of the current PCR values of `pcr_mask`.
Result<SealPolicy> PolicyForCurrentPcrs(ESYS_CONTEXT* ctx, std::uint32_t pcr_mask, bool auth_required);
// The policy a sealed file records.
SealPolicy PolicyOf(const SealedFile& file);

SecretBytes DeriveAuthValue(const SecretBytes& credential);

// Seals payload under `primary`. auth_value is used only when policy.auth_required.
Result<SealedFile> SealGeneration(ESYS_CONTEXT* ctx, ESYS_TR primary, const SealPolicy& policy,
                                  const SecretBytes& auth_value, const SealedPayload& payload);

// Loads and unseals `file`. Errors: malformed_state (the file's policy record does not match
// its object, or the payload does not match the file), wrong_tpm (the object does not load
// under this TPM's primary), boot_state_changed (names the PCRs that differ), auth_incorrect,
// auth_locked_out, tpm_error.
Result<SealedPayload> UnsealGeneration(ESYS_CONTEXT* ctx, ESYS_TR primary, const SealedFile& file,
                                       const SecretBytes& auth_value);

}  // namespace sk::hsm::tpm
