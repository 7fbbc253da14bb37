#include "hsm/backend_config.h"
#include "hsm/pkcs11/pkcs11_backend.h"
#include "hsm/tpm/tpm_backend.h"

namespace sk::hsm {

Result<std::unique_ptr<KeyBackend>> OpenBackend(const BackendConfig& config) {
  if (config.kind == "pkcs11") return pkcs11::OpenPkcs11Backend(config.pkcs11);
  if (config.kind == "tpm") return tpm::OpenTpmBackend(config.tpm);
  return InvalidArgument("unknown backend kind '" + config.kind + "' (expected pkcs11 or tpm)", "bad_config");
}

}  // namespace sk::hsm
