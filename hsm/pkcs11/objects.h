// Finding token objects and reading their attributes (internal to hsm/pkcs11/).
// Thin, checked wrappers over C_FindObjects* and C_GetAttributeValue; none of them
// ever asks for CKA_VALUE of a key.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "crypto/bytes.h"
#include "crypto/status.h"
#include "hsm/pkcs11/p11.h"
#include "hsm/pkcs11/token.h"

namespace sk::hsm::pkcs11 {

// Every object matching `tmpl` that the session can see.
Result<std::vector<ck_object_handle_t>> FindObjects(const Session& session, std::span<ck_attribute> tmpl);

// One attribute's value. Errors: attribute_unavailable (kFailedPrecondition) when the
// object does not have it or will not show it; pkcs11_error otherwise.
Result<Bytes> GetBytes(const Session& session, ck_object_handle_t object, ck_attribute_type_t type);
Result<std::string> GetString(const Session& session, ck_object_handle_t object, ck_attribute_type_t type);
Result<bool> GetBool(const Session& session, ck_object_handle_t object, ck_attribute_type_t type);
Result<unsigned long> GetUlong(const Session& session, ck_object_handle_t object, ck_attribute_type_t type);

// C_DestroyObject.
Status DestroyObject(const Session& session, ck_object_handle_t object);

}  // namespace sk::hsm::pkcs11
