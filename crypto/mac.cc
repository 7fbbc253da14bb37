#include "crypto/mac.h"

#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "crypto/ct.h"
#include "crypto/locked_pool.h"
#include "crypto/sha256_engine.h"

namespace sk {
namespace {

const mbedtls_md_info_t* Sha256Info() { return mbedtls_md_info_from_type(MBEDTLS_MD_SHA256); }

}  // namespace

Digest Sha256(ByteView data) {
  internal::Sha256Engine e;
  e.Init();
  e.Update(data.data(), data.size());
  Digest out{};
  e.Final(out.data());
  return out;
}

struct Sha256Hasher::Ctx {
  internal::Sha256Engine e;
};

Sha256Hasher::Sha256Hasher() : ctx_(std::make_unique<Ctx>()) { ctx_->e.Init(); }
Sha256Hasher::~Sha256Hasher() = default;

Sha256Hasher& Sha256Hasher::Update(ByteView data) {
  ctx_->e.Update(data.data(), data.size());
  return *this;
}

Digest Sha256Hasher::Finish() {
  Digest out{};
  ctx_->e.Final(out.data());
  ctx_->e.Init();
  return out;
}

// The keyed state is key-equivalent: it lives in the locked pool, and is wiped on free.
// Precomputing the states after the ipad and opad blocks saves two of the compressions
// each MAC would otherwise spend re-absorbing the key.
struct Hmac::Ctx {
  internal::Sha256Engine inner_start;  // after absorbing key ^ ipad
  internal::Sha256Engine outer_start;  // after absorbing key ^ opad
  internal::Sha256Engine work;
};

Hmac::Hmac(const SecretBytes& key) {
  void* mem = LockedPool::Instance().Allocate(sizeof(Ctx));
  if (mem == nullptr) std::abort();
  ctx_ = new (mem) Ctx;
  std::array<std::uint8_t, 64> block{};
  if (key.size() > block.size()) {
    internal::Sha256Engine e;
    e.Init();
    e.Update(key.Expose().data(), key.size());
    e.Final(block.data());
    SecureWipe(&e, sizeof e);
  } else if (!key.empty()) {
    std::memcpy(block.data(), key.Expose().data(), key.size());
  }
  for (auto& b : block) b ^= 0x36;
  ctx_->inner_start.Init();
  ctx_->inner_start.Update(block.data(), block.size());
  for (auto& b : block) b ^= 0x36 ^ 0x5c;
  ctx_->outer_start.Init();
  ctx_->outer_start.Update(block.data(), block.size());
  SecureWipe(block.data(), block.size());
  Begin();
}

Hmac::~Hmac() {
  ctx_->~Ctx();
  LockedPool::Instance().Free(ctx_, sizeof(Ctx));  // wipes
}

void Hmac::Begin() { ctx_->work = ctx_->inner_start; }
void Hmac::Update(ByteView data) { ctx_->work.Update(data.data(), data.size()); }
Digest Hmac::End() {
  Digest inner{};
  ctx_->work.Final(inner.data());
  ctx_->work = ctx_->outer_start;
  ctx_->work.Update(inner.data(), inner.size());
  Digest out{};
  ctx_->work.Final(out.data());
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
