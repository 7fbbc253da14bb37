// A recovery share as text (docs/recovery.md): one line a person can read aloud or type.
//
//   SKR1-<threshold>-<index>-XXXX-XXXX-...-XXXX-CCCC
//
// The 16 groups of XXXX are the Crockford base32 of the key id (8 bytes) and the share's
// y bytes (32); CCCC is a 20-bit checksum, the first bits of SHA-256("sealkeep recovery
// share v1" 0x00 || the line up to it, upper case, without its dashes), so a mistyped or
// dropped character is caught before the share is used (1 in about a million slips by; a
// share that slips by still fails, later, as a key that does not match the store's).
// Parsing ignores case, spaces and dashes between groups, and reads O as 0 and I, L as 1.
//
// Errors (kInvalidArgument): share_malformed (not a share: prefix, length, a character
// outside the alphabet), share_checksum (a typo).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "crypto/bytes.h"
#include "crypto/shamir.h"
#include "crypto/status.h"

namespace sk {

struct RecoveryShare {
  int threshold = 0;
  Bytes key_id;  // 8 bytes: which recovery key the share belongs to
  ShamirShare share;
};

std::string EncodeRecoveryShare(const RecoveryShare& share);
Result<RecoveryShare> ParseRecoveryShare(std::string_view text);

// Rebuilds the private key from shares of one key: too_few_shares, shares_mismatch (of
// different keys or thresholds), duplicate_share (kInvalidArgument).
Result<SecretBytes> CombineRecoveryShares(const std::vector<RecoveryShare>& shares);

}  // namespace sk
