#include "crypto/aead.h"

#include <mbedtls/gcm.h>

#include <array>
#include <string>

#include "crypto/locked_pool.h"
#include "crypto/random.h"

namespace sk {
namespace {

// Owns an mbedTLS GCM context; mbedtls_gcm_free wipes the key schedule.
class Gcm {
 public:
  Gcm() { mbedtls_gcm_init(&ctx_); }
  ~Gcm() { mbedtls_gcm_free(&ctx_); }
  Gcm(const Gcm&) = delete;
  Gcm& operator=(const Gcm&) = delete;
  mbedtls_gcm_context* get() { return &ctx_; }

 private:
  mbedtls_gcm_context ctx_;
};

Status CheckKeyNonce(const SecretBytes& key, ByteView nonce) {
  if (key.size() != kAeadKeySize) {
    return InvalidArgument("AES-256-GCM needs a 32-byte key, got " + std::to_string(key.size()),
                           "bad_key_size");
  }
  if (nonce.size() != kAeadNonceSize) {
    return InvalidArgument("AES-256-GCM needs a 12-byte nonce, got " + std::to_string(nonce.size()),
                           "bad_nonce_size");
  }
  return OkStatus();
}

Status SetKey(Gcm& gcm, const SecretBytes& key) {
  if (mbedtls_gcm_setkey(gcm.get(), MBEDTLS_CIPHER_ID_AES, key.Expose().data(), 256) != 0) {
    return Internal("mbedtls_gcm_setkey failed");
  }
  return OkStatus();
}

// AAD for the blob format: version byte then the caller's AAD.
Bytes BlobAad(ByteView aad) {
  Bytes full;
  full.reserve(aad.size() + 1);
  full.push_back(kAeadBlobVersion);
  full.insert(full.end(), aad.begin(), aad.end());
  return full;
}

}  // namespace

Status AesGcmSeal(const SecretBytes& key, ByteView nonce, ByteView aad, ByteView plaintext,
                  std::span<std::uint8_t> out) {
  SK_RETURN_IF_ERROR(CheckKeyNonce(key, nonce));
  if (out.size() != plaintext.size() + kAeadTagSize) return Internal("AesGcmSeal: output size mismatch");
  Gcm gcm;
  SK_RETURN_IF_ERROR(SetKey(gcm, key));
  int rc = mbedtls_gcm_crypt_and_tag(gcm.get(), MBEDTLS_GCM_ENCRYPT, plaintext.size(), nonce.data(),
                                     nonce.size(), aad.data(), aad.size(), plaintext.data(), out.data(),
                                     kAeadTagSize, out.data() + plaintext.size());
  if (rc != 0) return Internal("mbedtls_gcm_crypt_and_tag failed");
  return OkStatus();
}

Status AesGcmOpen(const SecretBytes& key, ByteView nonce, ByteView aad, ByteView in,
                  std::span<std::uint8_t> out) {
  SK_RETURN_IF_ERROR(CheckKeyNonce(key, nonce));
  if (in.size() < kAeadTagSize)
    return Status(Code::kCorruption, "does_not_verify", "ciphertext shorter than its tag");
  std::size_t n = in.size() - kAeadTagSize;
  if (out.size() != n) return Internal("AesGcmOpen: output size mismatch");
  Gcm gcm;
  SK_RETURN_IF_ERROR(SetKey(gcm, key));
  int rc = mbedtls_gcm_auth_decrypt(gcm.get(), n, nonce.data(), nonce.size(), aad.data(), aad.size(),
                                    in.data() + n, kAeadTagSize, in.data(), out.data());
  if (rc != 0) {
    SecureWipe(out.data(), out.size());  // mbedTLS wipes too; do not rely on it
    return Status(Code::kCorruption, "does_not_verify", "authentication tag does not verify");
  }
  return OkStatus();
}

Result<Bytes> AeadSeal(const SecretBytes& key, ByteView aad, ByteView plaintext) {
  Bytes blob(kAeadBlobOverhead + plaintext.size());
  blob[0] = kAeadBlobVersion;
  std::span<std::uint8_t> nonce(blob.data() + 1, kAeadNonceSize);
  SK_RETURN_IF_ERROR(FillRandom(nonce));
  SK_RETURN_IF_ERROR(AesGcmSeal(key, nonce, BlobAad(aad), plaintext,
                                std::span<std::uint8_t>(blob).subspan(1 + kAeadNonceSize)));
  return blob;
}

Result<Bytes> AeadSeal(const SecretBytes& key, ByteView aad, const SecretBytes& plaintext) {
  return AeadSeal(key, aad, plaintext.Expose());
}

Result<SecretBytes> AeadOpen(const SecretBytes& key, ByteView aad, ByteView blob) {
  if (blob.size() < kAeadBlobOverhead) {
    return Status(Code::kCorruption, "does_not_verify", "sealed blob is truncated");
  }
  if (blob[0] != kAeadBlobVersion) {
    return Status(Code::kCorruption, "does_not_verify",
                  "sealed blob has unknown format version " + std::to_string(blob[0]));
  }
  SecretBytes out(blob.size() - kAeadBlobOverhead);
  SK_RETURN_IF_ERROR(AesGcmOpen(key, blob.subspan(1, kAeadNonceSize), BlobAad(aad),
                                blob.subspan(1 + kAeadNonceSize), out.Expose()));
  return out;
}

}  // namespace sk
