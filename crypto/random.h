// The random source: the kernel's getrandom(2), which blocks only until the kernel's
// pool is first initialised at boot. Every nonce, data key and identifier comes from here.
// Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "crypto/bytes.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk {

// Fills `out` entirely, or fails with kUnavailable.
Status FillRandom(std::span<std::uint8_t> out);
// n random bytes for public values (nonces, ids).
Result<Bytes> RandomBytes(std::size_t n);
// n random bytes for keys, in locked memory.
Result<SecretBytes> RandomSecret(std::size_t n);

}  // namespace sk
