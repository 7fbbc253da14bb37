// Envelope encryption of secret values (docs/design.md) and the store's own keys.
//
// Each version gets a fresh 256-bit data key (DEK). The value is sealed with
// AeadSeal(DEK, aad) and the DEK is wrapped by the backend's master key, each bound by
// its AAD to where it belongs:
//   value AAD = "sealkeep value v1" 0x00 | store_id (16) | u16 len | path | u64 version
//   DEK AAD   = "sealkeep dek v1"   0x00 | store_id (16) | u16 len | path | u64 version
// (big-endian), so a ciphertext or wrapped key copied to another path, version or store
// does not open. The master-key generation is bound by the wrapped blob's own header.
// The journal key JK and audit key AK are wrapped with AAD
//   "sealkeep journal key v1" 0x00 | store_id   and   "sealkeep audit key v1" 0x00 | store_id.
#pragma once

#include <string_view>

#include "crypto/bytes.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"
#include "hsm/key_backend.h"

namespace sk::secrets {

inline constexpr std::size_t kStoreIdSize = 16;

Bytes ValueAad(ByteView store_id, std::string_view path, std::uint64_t version);
Bytes DekAad(ByteView store_id, std::string_view path, std::uint64_t version);
Bytes JournalKeyAad(ByteView store_id);
Bytes AuditKeyAad(ByteView store_id);

struct SealedValue {
  Bytes ciphertext;
  Bytes wrapped_dek;
  SecretBytes dek;  // kept so the caller can commit to it and cache it
};

// Draws a DEK, seals `value` under it and wraps the DEK with the backend.
Result<SealedValue> SealValue(hsm::KeyBackend& backend, ByteView store_id, std::string_view path,
                              std::uint64_t version, ByteView value);

// Generation recorded in a wrapped blob's header, or 0 when the blob is malformed.
std::uint32_t WrappedGeneration(ByteView wrapped);

}  // namespace sk::secrets
