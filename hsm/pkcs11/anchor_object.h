// The anchor on a PKCS#11 token: one private token data object holding the value of
// anchor_format.h (internal to hsm/pkcs11/).
//
//   CKA_CLASS CKO_DATA, CKA_TOKEN true, CKA_PRIVATE true, CKA_MODIFIABLE true,
//   CKA_LABEL "sealkeep-anchor", CKA_APPLICATION "sealkeep", CKA_VALUE the 89-byte value.
//
// Only private objects are considered, so a public object of the same label (which
// anyone who can open the token may create without the PIN) is never mistaken for it.
// Sealing and verifying use a master key inside the token (GMAC), so the value cannot
// be forged or edited without the PIN; see docs/pkcs11.md for what this does and does
// not protect against.
//
// Errors: anchor_missing (kFailedPrecondition), anchor_duplicate (kCorruption),
// anchor_invalid (kCorruption: malformed, another keyset, sealed by a generation that
// is gone, or the tag does not verify), pkcs11_error.
//
// The session must be logged in, read-write for writes, and used by one thread.
#pragma once

#include <optional>
#include <string_view>

#include "crypto/bytes.h"
#include "crypto/status.h"
#include "hsm/pkcs11/anchor_format.h"
#include "hsm/pkcs11/master_key.h"
#include "hsm/pkcs11/token.h"

namespace sk::hsm::pkcs11 {

inline constexpr std::string_view kAnchorLabel = "sealkeep-anchor";
inline constexpr std::string_view kAnchorApplication = "sealkeep";

// The anchor object's handle; nullopt when the token has none.
Result<std::optional<ck_object_handle_t>> FindAnchorObject(const Session& session);

// The object's value, parsed and verified against `keyset` and the live `keys`.
Result<AnchorRecord> ReadAnchor(const Session& session, ck_object_handle_t object, const KeysetId& keyset,
                                const KeyHandles& keys);

// Seals `record` with the key of record.generation (`key`) and makes the 89-byte value.
Result<Bytes> SealAnchor(const Session& session, ck_object_handle_t key, const AnchorRecord& record);

// Creates the anchor object holding `value`.
Result<ck_object_handle_t> CreateAnchorObject(const Session& session, ByteView value);

// Replaces the object's value, then reads it back: returns only once the token
// answers with exactly `value` (anchor_write_lost, kUnavailable, otherwise).
Status WriteAnchorValue(const Session& session, ck_object_handle_t object, ByteView value);

}  // namespace sk::hsm::pkcs11
