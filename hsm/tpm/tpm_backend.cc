#include "hsm/tpm/tpm_backend.h"

namespace sk::hsm::tpm {

Result<std::unique_ptr<KeyBackend>> OpenTpmBackend(const TpmConfig&) {
  return Unimplemented("the TPM backend is not built yet");
}

}  // namespace sk::hsm::tpm
