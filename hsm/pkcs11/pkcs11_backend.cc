#include "hsm/pkcs11/pkcs11_backend.h"

namespace sk::hsm::pkcs11 {

Result<std::unique_ptr<KeyBackend>> OpenPkcs11Backend(const Pkcs11Config&) {
  return Unimplemented("the PKCS#11 backend is not built yet");
}

}  // namespace sk::hsm::pkcs11
