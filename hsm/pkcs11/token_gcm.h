// AES-256-GCM inside the token: C_Encrypt / C_Decrypt with CKM_AES_GCM, a 12-byte IV
// and a 128-bit tag (internal to hsm/pkcs11/).
//
// Output layouts follow PKCS#11: encryption writes ciphertext || tag; decryption
// reads ciphertext || tag. SoftHSM2 wants a decryption output buffer at least as long
// as its input (ciphertext + tag) even though it writes only the plaintext, so
// GcmDecrypt takes `out` of in.size() bytes and reports how many it wrote.
//
// Errors of GcmDecrypt: does_not_verify (kCorruption) when C_Decrypt answers
// CKR_ENCRYPTED_DATA_INVALID or CKR_GENERAL_ERROR (SoftHSM2's answer to a bad tag or
// a wrong AAD); key_retired (kFailedPrecondition) when the key handle is no longer
// valid (its generation was destroyed); pkcs11_error otherwise. After any of these
// the session has no active operation (PKCS#11: a failed C_Decrypt ends it).
//
// `out` is wiped on any failure. The session must not be used by another thread
// during the call.
#pragma once

#include <cstddef>
#include <span>

#include "crypto/bytes.h"
#include "crypto/status.h"
#include "hsm/pkcs11/p11.h"

namespace sk::hsm::pkcs11 {

inline constexpr std::size_t kGcmIvBytes = 12;
inline constexpr std::size_t kGcmTagBytes = 16;

// out.size() must be plaintext.size() + 16.
Status GcmEncrypt(const ck_function_list& fn, ck_session_handle_t session, ck_object_handle_t key,
                  ByteView iv, ByteView aad, ByteView plaintext, std::span<std::uint8_t> out);

// in = ciphertext || tag (>= 16 bytes); out.size() must be >= in.size(). On success
// *written = in.size() - 16 (anything else is reported as an internal error).
Status GcmDecrypt(const ck_function_list& fn, ck_session_handle_t session, ck_object_handle_t key,
                  ByteView iv, ByteView aad, ByteView in, std::span<std::uint8_t> out, std::size_t* written);

// True when an error from GcmEncrypt/GcmDecrypt leaves the session fit for reuse.
bool SessionStillUsable(const Status& status);

}  // namespace sk::hsm::pkcs11
