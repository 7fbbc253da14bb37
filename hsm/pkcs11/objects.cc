#include "hsm/pkcs11/objects.h"

#include <cstdio>

#include "hsm/pkcs11/errors.h"

namespace sk::hsm::pkcs11 {
namespace {

std::string AttributeName(ck_attribute_type_t type) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%lx", type);
  return buf;
}

Status AttributeError(ck_rv_t rv, ck_attribute_type_t type) {
  if (rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE) {
    return Status(Code::kFailedPrecondition, "attribute_unavailable",
                  "object attribute " + AttributeName(type) + " is not available: " + RvName(rv));
  }
  return RvError(rv, "C_GetAttributeValue");
}

}  // namespace

Result<std::vector<ck_object_handle_t>> FindObjects(const Session& session, std::span<ck_attribute> tmpl) {
  const auto& fn = session.fn();
  ck_rv_t rv = fn.C_FindObjectsInit(session.handle(), tmpl.data(), tmpl.size());
  if (rv != CKR_OK) return RvError(rv, "C_FindObjectsInit");
  std::vector<ck_object_handle_t> found;
  ck_object_handle_t batch[32];
  for (;;) {
    unsigned long n = 0;
    rv = fn.C_FindObjects(session.handle(), batch, std::size(batch), &n);
    if (rv != CKR_OK) {
      fn.C_FindObjectsFinal(session.handle());
      return RvError(rv, "C_FindObjects");
    }
    found.insert(found.end(), batch, batch + n);
    if (n < std::size(batch)) break;
  }
  rv = fn.C_FindObjectsFinal(session.handle());
  if (rv != CKR_OK) return RvError(rv, "C_FindObjectsFinal");
  return found;
}

Result<Bytes> GetBytes(const Session& session, ck_object_handle_t object, ck_attribute_type_t type) {
  ck_attribute a{type, nullptr, 0};
  ck_rv_t rv = session.fn().C_GetAttributeValue(session.handle(), object, &a, 1);
  if (rv != CKR_OK) return AttributeError(rv, type);
  if (a.value_len == static_cast<unsigned long>(-1)) return AttributeError(CKR_ATTRIBUTE_SENSITIVE, type);
  Bytes out(a.value_len);
  a.value = out.data();
  rv = session.fn().C_GetAttributeValue(session.handle(), object, &a, 1);
  if (rv != CKR_OK) return AttributeError(rv, type);
  out.resize(a.value_len);
  return out;
}

Result<std::string> GetString(const Session& session, ck_object_handle_t object, ck_attribute_type_t type) {
  SK_ASSIGN_OR_RETURN(Bytes b, GetBytes(session, object, type));
  return std::string(AsChars(b));
}

Result<bool> GetBool(const Session& session, ck_object_handle_t object, ck_attribute_type_t type) {
  unsigned char v = 0;
  ck_attribute a{type, &v, sizeof v};
  ck_rv_t rv = session.fn().C_GetAttributeValue(session.handle(), object, &a, 1);
  if (rv != CKR_OK) return AttributeError(rv, type);
  return v != 0;
}

Result<unsigned long> GetUlong(const Session& session, ck_object_handle_t object, ck_attribute_type_t type) {
  unsigned long v = 0;
  ck_attribute a{type, &v, sizeof v};
  ck_rv_t rv = session.fn().C_GetAttributeValue(session.handle(), object, &a, 1);
  if (rv != CKR_OK) return AttributeError(rv, type);
  return v;
}

Status DestroyObject(const Session& session, ck_object_handle_t object) {
  ck_rv_t rv = session.fn().C_DestroyObject(session.handle(), object);
  if (rv != CKR_OK) return RvError(rv, "C_DestroyObject");
  return OkStatus();
}

}  // namespace sk::hsm::pkcs11
