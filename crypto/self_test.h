// Known-answer self-test of the crypto layer, run by both programs at start-up: a wrong
// build or a broken library refuses to handle secrets rather than produce bad output.
#pragma once

#include "crypto/status.h"

namespace sk {

// AES-256-GCM seal and open (NIST GCM test case 16), HMAC-SHA256 (RFC 4231 case 2),
// HKDF-SHA256 (RFC 5869 case 1), SHA-256 ("abc"), and a tamper check.
Status RunCryptoSelfTest();

}  // namespace sk
