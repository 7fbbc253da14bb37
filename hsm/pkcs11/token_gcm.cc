#include "hsm/pkcs11/token_gcm.h"

#include <string>

#include "crypto/locked_pool.h"
#include "crypto/reasons.h"
#include "hsm/pkcs11/errors.h"

namespace sk::hsm::pkcs11 {
namespace {

// PKCS#11 takes non-const pointers for input it does not modify; and some modules
// refuse a null pointer even with length 0.
unsigned char* In(ByteView v) {
  static unsigned char empty = 0;
  return v.empty() ? &empty : const_cast<unsigned char*>(v.data());
}

ck_gcm_params Params(ByteView iv, ByteView aad) {
  ck_gcm_params p{};
  p.iv_ptr = In(iv);
  p.iv_len = iv.size();
  p.iv_bits = iv.size() * 8;
  p.aad_ptr = aad.empty() ? nullptr : In(aad);
  p.aad_len = aad.size();
  p.tag_bits = kGcmTagBytes * 8;
  return p;
}

Status KeyInitError(ck_rv_t rv, const char* step) {
  if (rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID) {
    return Status(Code::kFailedPrecondition, "key_retired",
                  "the master key generation is no longer on the token");
  }
  return RvError(rv, step);
}

}  // namespace

Status GcmEncrypt(const ck_function_list& fn, ck_session_handle_t session, ck_object_handle_t key,
                  ByteView iv, ByteView aad, ByteView plaintext, std::span<std::uint8_t> out) {
  if (iv.size() != kGcmIvBytes || out.size() != plaintext.size() + kGcmTagBytes) {
    return Internal("GcmEncrypt called with wrong buffer sizes");
  }
  ck_gcm_params params = Params(iv, aad);
  ck_mechanism mech{CKM_AES_GCM, &params, sizeof params};
  ck_rv_t rv = fn.C_EncryptInit(session, &mech, key);
  if (rv != CKR_OK) return KeyInitError(rv, "C_EncryptInit (AES-GCM)");
  unsigned long len = out.size();
  rv = fn.C_Encrypt(session, In(plaintext), plaintext.size(), out.data(), &len);
  if (rv != CKR_OK) return RvError(rv, "C_Encrypt (AES-GCM)");
  if (len != out.size()) {
    return Internal("C_Encrypt (AES-GCM) wrote " + std::to_string(len) + " bytes, expected " +
                    std::to_string(out.size()));
  }
  return OkStatus();
}

Status GcmDecrypt(const ck_function_list& fn, ck_session_handle_t session, ck_object_handle_t key,
                  ByteView iv, ByteView aad, ByteView in, std::span<std::uint8_t> out, std::size_t* written) {
  *written = 0;
  if (iv.size() != kGcmIvBytes || in.size() < kGcmTagBytes || out.size() < in.size()) {
    return Internal("GcmDecrypt called with wrong buffer sizes");
  }
  ck_gcm_params params = Params(iv, aad);
  ck_mechanism mech{CKM_AES_GCM, &params, sizeof params};
  ck_rv_t rv = fn.C_DecryptInit(session, &mech, key);
  if (rv != CKR_OK) return KeyInitError(rv, "C_DecryptInit (AES-GCM)");
  unsigned long len = out.size();
  rv = fn.C_Decrypt(session, In(in), in.size(), out.data(), &len);
  if (rv != CKR_OK) {
    SecureWipe(out.data(), out.size());
    if (rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_GENERAL_ERROR) {
      return Status(Code::kCorruption, "does_not_verify",
                    "the wrapped key does not verify (tampered, or wrong AAD)");
    }
    return RvError(rv, "C_Decrypt (AES-GCM)");
  }
  if (len != in.size() - kGcmTagBytes) {
    SecureWipe(out.data(), out.size());
    return Internal("C_Decrypt (AES-GCM) wrote " + std::to_string(len) + " bytes, expected " +
                    std::to_string(in.size() - kGcmTagBytes));
  }
  *written = len;
  return OkStatus();
}

bool SessionStillUsable(const Status& status) {
  return status.ok() || status.reason() == sk::reason::kDoesNotVerify ||
         status.reason() == sk::reason::kKeyRetired;
}

}  // namespace sk::hsm::pkcs11
