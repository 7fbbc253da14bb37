// PKCS#11 implementation of KeyBackend (placeholder until the PKCS#11 issue lands).
#pragma once

#include <memory>

#include "hsm/backend_config.h"
#include "hsm/key_backend.h"

namespace sk::hsm::pkcs11 {

Result<std::unique_ptr<KeyBackend>> OpenPkcs11Backend(const Pkcs11Config& config);

}  // namespace sk::hsm::pkcs11
