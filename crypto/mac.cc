#include "crypto/mac.h"

#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <mbedtls/sha256.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "crypto/ct.h"
#include "crypto/locked_pool.h"

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

// The keyed state is key-equivalent: it lives in the locked pool, and is wiped on free.
// Precomputing the states after the ipad and opad blocks saves two of the compressions
// each MAC would otherwise spend re-absorbing the key.
struct Hmac::Ctx {
  mbedtls_sha256_context inner_start;  // after absorbing key ^ ipad
  mbedtls_sha256_context outer_start;  // after absorbing key ^ opad
  mbedtls_sha256_context work;
};

Hmac::Hmac(const SecretBytes& key) {
  void* mem = LockedPool::Instance().Allocate(sizeof(Ctx));
  if (mem == nullptr) std::abort();
  ctx_ = new (mem) Ctx;
  mbedtls_sha256_init(&ctx_->inner_start);
  mbedtls_sha256_init(&ctx_->outer_start);
  mbedtls_sha256_init(&ctx_->work);
  std::array<std::uint8_t, 64> block{};
  if (key.size() > block.size()) {
    Check(mbedtls_sha256_ret(key.Expose().data(), key.size(), block.data(), 0));
  } else if (!key.empty()) {
    std::memcpy(block.data(), key.Expose().data(), key.size());
  }
  for (auto& b : block) b ^= 0x36;
  Check(mbedtls_sha256_starts_ret(&ctx_->inner_start, 0));
  Check(mbedtls_sha256_update_ret(&ctx_->inner_start, block.data(), block.size()));
  for (auto& b : block) b ^= 0x36 ^ 0x5c;
  Check(mbedtls_sha256_starts_ret(&ctx_->outer_start, 0));
  Check(mbedtls_sha256_update_ret(&ctx_->outer_start, block.data(), block.size()));
  SecureWipe(block.data(), block.size());
  Begin();
}

Hmac::~Hmac() {
  mbedtls_sha256_free(&ctx_->inner_start);
  mbedtls_sha256_free(&ctx_->outer_start);
  mbedtls_sha256_free(&ctx_->work);
  ctx_->~Ctx();
  LockedPool::Instance().Free(ctx_, sizeof(Ctx));  // wipes
}

void Hmac::Begin() { mbedtls_sha256_clone(&ctx_->work, &ctx_->inner_start); }
void Hmac::Update(ByteView data) { Check(mbedtls_sha256_update_ret(&ctx_->work, data.data(), data.size())); }
Digest Hmac::End() {
  Digest inner{};
  Check(mbedtls_sha256_finish_ret(&ctx_->work, inner.data()));
  mbedtls_sha256_clone(&ctx_->work, &ctx_->outer_start);
  Check(mbedtls_sha256_update_ret(&ctx_->work, inner.data(), inner.size()));
  Digest out{};
  Check(mbedtls_sha256_finish_ret(&ctx_->work, out.data()));
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
