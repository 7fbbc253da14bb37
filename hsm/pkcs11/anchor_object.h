// The anchor on a PKCS#11 token: a private token data object holding the value of
// anchor_format.h (internal to hsm/pkcs11/).
//
//   CKA_CLASS CKO_DATA, CKA_TOKEN true, CKA_PRIVATE true, CKA_MODIFIABLE false,
//   CKA_LABEL "sealkeep-anchor", CKA_APPLICATION "sealkeep", CKA_VALUE the 89-byte value.
//
// The value is never changed in place. PKCS#11 does not let C_SetAttributeValue change
// a data object's CKA_VALUE (SoftHSM2 answers CKR_ATTRIBUTE_READ_ONLY), and an in-place
// rewrite could be torn by a crash, leaving no anchor at all. So StoreAnchor() creates a
// new object with the new value, reads it back, and only then destroys the older
// objects. A crash in between leaves two objects; ReadAnchor() takes the verified one
// with the highest counter, and the next StoreAnchor() removes the rest.
//
// Only private objects are considered, so a public object of the same label (which
// anyone who can open the token may create without the PIN) is never mistaken for it.
// Sealing and verifying use a master key inside the token (GMAC), so without the PIN
// no value can be forged or altered; docs/pkcs11.md says what this does and does not
// protect against.
//
// Errors: anchor_missing (kFailedPrecondition), anchor_invalid (kCorruption: no object
// verifies — malformed, another keyset, sealed by a generation that is gone, altered —
// or two verified objects disagree at one counter), pkcs11_error.
//
// The session must be logged in, read-write for StoreAnchor, and used by one thread.
#pragma once

#include <string_view>
#include <vector>

#include "crypto/bytes.h"
#include "crypto/status.h"
#include "hsm/pkcs11/anchor_format.h"
#include "hsm/pkcs11/master_key.h"
#include "hsm/pkcs11/token.h"

namespace sk::hsm::pkcs11 {

inline constexpr std::string_view kAnchorLabel = "sealkeep-anchor";
inline constexpr std::string_view kAnchorApplication = "sealkeep";

// Every anchor object on the token (normally one).
Result<std::vector<ck_object_handle_t>> FindAnchorObjects(const Session& session);

// The anchor: of the objects that verify against `keyset` and the live `keys`, the one
// with the highest counter.
Result<AnchorRecord> ReadAnchor(const Session& session, const KeysetId& keyset, const KeyHandles& keys);

// Seals `record` with `key` (the key of record.generation), stores it as a new anchor
// object, checks the token gives back exactly that value (anchor_write_lost,
// kUnavailable, otherwise), then destroys the older anchor objects. Returns once the
// token holds the new value; a failure to destroy an old object is left for the next
// call (the old one has a lower counter, so it never wins).
Status StoreAnchor(const Session& session, ck_object_handle_t key, const AnchorRecord& record);

}  // namespace sk::hsm::pkcs11
