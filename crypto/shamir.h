// Shamir's secret sharing over GF(2^8) (the AES field, x^8 + x^4 + x^3 + x + 1), byte by
// byte: a secret of any length is split into n shares, any m of which rebuild it and
// fewer of which say nothing about it. Share i is f(i) for a random polynomial f of
// degree m - 1 with f(0) = the secret byte; indexes are 1..n (n <= 255).
//
// Only the arithmetic lives here; the recovery shares' text form (a line a person can
// type, with a checksum) is agent/recovery/share_text.h. The field arithmetic runs in
// constant time (no table lookups indexed by secret bytes). Thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk {

struct ShamirShare {
  std::uint8_t index = 0;  // x, 1..255
  SecretBytes y;           // as long as the secret
};

// Errors: invalid_argument when threshold < 2, shares < threshold, shares > 255, or the
// secret is empty.
Result<std::vector<ShamirShare>> ShamirSplit(const SecretBytes& secret, int threshold, int shares);

// Rebuilds the secret from exactly the shares given (the caller checks there are at least
// the threshold: with fewer, the answer is a wrong secret, not an error). Errors:
// invalid_argument when empty, lengths differ, an index is 0 or repeats.
Result<SecretBytes> ShamirCombine(const std::vector<ShamirShare>& shares);

}  // namespace sk
