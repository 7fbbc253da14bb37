// Loading a state folder: its record, its sealed generation files, and unsealing them all.
// Shared by the backend (at open) and provisioning (to check what exists).
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <map>
#include <string>

#include "crypto/secret_bytes.h"
#include "crypto/status.h"
#include "hsm/backend_config.h"
#include "hsm/tpm/record_format.h"
#include "hsm/tpm/sealed_file_format.h"
#include "hsm/tpm/state_dir.h"

namespace sk::hsm::tpm {

// not_provisioned when the folder has no record.
Result<TpmRecord> LoadRecord(const StateDir& dir);

// Reads and parses the file of `generation`; wrong_tpm when it names another keyset than
// the record, malformed_state when its header disagrees with its name.
Result<SealedFile> LoadSealedFile(const StateDir& dir, const TpmRecord& record, std::uint32_t generation);

// The auth value for sealing or unsealing: DeriveAuthValue() of the credential read from
// auth_file, or $CREDENTIALS_DIRECTORY/tpm-auth when auth_file is empty (hsm/credential.h).
Result<SecretBytes> LoadAuthValue(const std::string& auth_file);

struct UnsealedKeyset {
  TpmRecord record;
  std::map<std::uint32_t, SealedFile> files;  // every live generation
  std::map<std::uint32_t, SecretBytes> keys;  // its master key
  SecretBytes anchor_auth;                    // the same in every generation (checked)
  SecretBytes auth_value;                     // empty unless a generation needs one
};

// Unseals every live generation under `primary` (the record's; primary.h LoadPrimary).
// not_provisioned when there is none; the errors of UnsealGeneration otherwise. Flushes
// everything it loads.
Result<UnsealedKeyset> UnsealKeyset(ESYS_CONTEXT* ctx, ESYS_TR primary, const StateDir& dir,
                                    const TpmRecord& record, const std::string& auth_file);

// bad_config when the configured NV indices or primary handle are not the record's.
Status CheckConfigMatchesRecord(const TpmConfig& config, const TpmRecord& record);

}  // namespace sk::hsm::tpm
