// TPM 2.0 implementation of KeyBackend (placeholder until the TPM issue lands).
#pragma once

#include <memory>

#include "hsm/backend_config.h"
#include "hsm/key_backend.h"

namespace sk::hsm::tpm {

Result<std::unique_ptr<KeyBackend>> OpenTpmBackend(const TpmConfig& config);

}  // namespace sk::hsm::tpm
