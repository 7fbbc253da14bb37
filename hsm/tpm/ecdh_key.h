// A P-256 ECDH key made by the TPM under sealkeep's primary (hsm/tpm/primary.h): the fleet
// host key (docs/fleet.md) on a host whose master key is in a TPM. Its private half exists
// only as a TPM2B_PRIVATE wrapped by the primary, so it loads in this TPM alone (until the
// owner hierarchy is cleared). ECDH is TPM2_ECDH_ZGen in a session salted with the primary
// whose response is encrypted: the shared secret never crosses the bus in clear.
//
// Template: type ECC, nameAlg SHA-256, fixedTPM | fixedParent | sensitiveDataOrigin |
// userWithAuth | noDA | decrypt (not restricted, no sign), symmetric NULL, scheme NULL,
// curve NIST P-256, kdf NULL, empty auth.
//
// Key blob (not secret: the TPM wraps its private part), which the caller keeps in a file:
//   "SKTE" | u16 length | TPM2B_PUBLIC (marshalled) | u16 length | TPM2B_PRIVATE (marshalled)
//
// Errors: those of EsysContext::Open and LoadPrimary; malformed_state (kCorruption) for a
// blob that does not parse or is not such a key; tpm_error for the TPM's refusals.
// Each key holds its own ESYS context and serves one caller at a time (RecoveryOpener
// serialises); every object and session it makes is flushed before a call returns.
#pragma once

#include <tss2/tss2_esys.h>

#include <functional>
#include <memory>

#include "crypto/recovery_wrap.h"
#include "hsm/backend_config.h"

namespace sk::hsm::tpm {

[[nodiscard]] Result<Bytes> CreateTpmEcdhKey(const TpmConfig& config);
[[nodiscard]] Result<std::unique_ptr<EcdhPrivateKey>> OpenTpmEcdhKey(const TpmConfig& config, ByteView blob);

// The same over a connection the caller owns, for the TPM backend, which holds the TPM's
// one connection (a TPM without a resource manager, like swtpm, serves one at a time):
// CreateTpmEcdhKeyIn runs on `ctx`; the key calls `lend` for each ECDH, which runs the
// function it is given on the connection, serialised with the connection's other uses.
using EsysUser = std::function<Result<SecretBytes>(ESYS_CONTEXT*)>;
using LendEsys = std::function<Result<SecretBytes>(const EsysUser&)>;
[[nodiscard]] Result<Bytes> CreateTpmEcdhKeyIn(ESYS_CONTEXT* ctx, std::uint32_t primary_handle);
[[nodiscard]] Result<std::unique_ptr<EcdhPrivateKey>> OpenTpmEcdhKeyLent(ByteView blob,
                                                                         std::uint32_t primary_handle,
                                                                         LendEsys lend);

}  // namespace sk::hsm::tpm
