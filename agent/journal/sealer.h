// Sealer: seals and checks journal entries and the journal head with the journal key JK
// (journal_format.h gives the exact inputs). One Sealer per thread: it keeps the keyed
// HMAC state, in locked memory, and is not thread-safe.
#pragma once

#include "agent/journal/journal_format.h"
#include "crypto/mac.h"
#include "crypto/secret_bytes.h"

namespace sk::journal {

class Sealer {
 public:
  explicit Sealer(const SecretBytes& journal_key) : hmac_(journal_key) {}

  Digest SealEntry(ByteView encoded_entry);
  bool EntrySealMatches(ByteView encoded_entry, const Digest& seal);

  // body || seal, ready to store.
  Bytes SealHead(const Head& head);
  // Checks the seal of a stored head record: reason head_invalid (kCorruption) if it fails.
  Result<Head> OpenHead(ByteView record);

 private:
  Digest Domain(std::string_view domain, ByteView body);
  Hmac hmac_;
};

// HMAC-SHA256(dek, "sealkeep dek commit v1"): a version's commitment to its data key.
Digest DekCommit(const SecretBytes& dek);

}  // namespace sk::journal
