#include "crypto/mac.h"

#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <mbedtls/sha256.h>

#include <cstdlib>
#include <string>

#include "crypto/ct.h"

namespace sk {
namespace {

const mbedtls_md_info_t* Sha256Info() { return mbedtls_md_info_from_type(MBEDTLS_MD_SHA256); }

// mbedTLS only fails these calls on bad parameters or allocation failure; both are
// bugs or out-of-memory here, which sealkeep treats as fatal like operator new.
void Check(int rc) {
  if (rc != 0) std::abort();
}

}  // namespace

Digest Sha256(ByteView data) {
  Digest out{};
  Check(mbedtls_sha256_ret(data.data(), data.size(), out.data(), 0));
  return out;
}

struct Sha256Hasher::Ctx {
  mbedtls_sha256_context c;
};

Sha256Hasher::Sha256Hasher() : ctx_(std::make_unique<Ctx>()) {
  mbedtls_sha256_init(&ctx_->c);
  Check(mbedtls_sha256_starts_ret(&ctx_->c, 0));
}
Sha256Hasher::~Sha256Hasher() { mbedtls_sha256_free(&ctx_->c); }

Sha256Hasher& Sha256Hasher::Update(ByteView data) {
  Check(mbedtls_sha256_update_ret(&ctx_->c, data.data(), data.size()));
  return *this;
}

Digest Sha256Hasher::Finish() {
  Digest out{};
  Check(mbedtls_sha256_finish_ret(&ctx_->c, out.data()));
  Check(mbedtls_sha256_starts_ret(&ctx_->c, 0));
  return out;
}

struct Hmac::Ctx {
  mbedtls_md_context_t md;
};

Hmac::Hmac(const SecretBytes& key) : ctx_(std::make_unique<Ctx>()) {
  mbedtls_md_init(&ctx_->md);
  Check(mbedtls_md_setup(&ctx_->md, Sha256Info(), 1));
  Check(mbedtls_md_hmac_starts(&ctx_->md, key.Expose().data(), key.size()));
}

Hmac::~Hmac() { mbedtls_md_free(&ctx_->md); }  // wipes the keyed pads

void Hmac::Begin() { Check(mbedtls_md_hmac_reset(&ctx_->md)); }
void Hmac::Update(ByteView data) { Check(mbedtls_md_hmac_update(&ctx_->md, data.data(), data.size())); }
Digest Hmac::End() {
  Digest out{};
  Check(mbedtls_md_hmac_finish(&ctx_->md, out.data()));
  return out;
}

Digest Hmac::Compute(ByteView message) {
  Begin();
  Update(message);
  return End();
}

bool Hmac::Verify(ByteView message, ByteView tag) {
  if (tag.size() != kDigestSize) return false;
  Digest mac = Compute(message);
  return ConstantTimeEqual(mac, tag);
}

Digest HmacSha256(const SecretBytes& key, ByteView message) { return Hmac(key).Compute(message); }

Result<SecretBytes> HkdfSha256(const SecretBytes& ikm, ByteView salt, ByteView info, std::size_t length) {
  if (length == 0 || length > kHkdfMaxOutput) {
    return InvalidArgument("HKDF-SHA256 output length must be 1.." + std::to_string(kHkdfMaxOutput) +
                               " bytes, got " + std::to_string(length),
                           "bad_length");
  }
  SecretBytes out(length);
  int rc = mbedtls_hkdf(Sha256Info(), salt.data(), salt.size(), ikm.Expose().data(), ikm.size(), info.data(),
                        info.size(), out.Expose().data(), length);
  if (rc != 0) return Internal("mbedtls_hkdf failed");
  return out;
}

}  // namespace sk
