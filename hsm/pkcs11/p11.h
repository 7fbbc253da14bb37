// The one place sealkeep includes the PKCS#11 header (internal to hsm/pkcs11/).
//
// p11-kit's header by default defines the standard names (CK_ULONG, pValue...) partly as
// macros, e.g. `#define value pValue`, which would rewrite every `value` token after it,
// Result<T>::value() included. CRYPTOKI_GNU selects p11-kit's macro-free spelling
// instead: `struct ck_attribute { type, value, value_len }`, `ck_rv_t`, and so on. The
// ABI is the same. Every file of this folder includes this header, never the other.
#pragma once

#ifndef CRYPTOKI_GNU
#define CRYPTOKI_GNU 1
#endif
#include <p11-kit/pkcs11.h>

#include <cstddef>

namespace sk::hsm::pkcs11 {

// PKCS#11 booleans are one byte; attributes point at one of these.
inline unsigned char kCkTrue = 1;
inline unsigned char kCkFalse = 0;

// A template entry. PKCS#11 takes non-const pointers even for input templates.
inline ck_attribute Attr(ck_attribute_type_t type, void* value, std::size_t len) {
  return ck_attribute{type, value, len};
}
inline ck_attribute BoolAttr(ck_attribute_type_t type, bool v) {
  return ck_attribute{type, v ? &kCkTrue : &kCkFalse, 1};
}

}  // namespace sk::hsm::pkcs11
