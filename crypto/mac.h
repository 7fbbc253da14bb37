// SHA-256, HMAC-SHA256 and HKDF-SHA256 (RFC 2104, RFC 5869), on mbedTLS 2.28.
//
// Digests and MAC tags are public values (Digest). Keys are SecretBytes. HMAC tags
// are full 32 bytes: sealkeep never truncates a tag, and Verify refuses a shorter one.
// Hmac keeps the keyed state (inner and outer hash states after the key pads) between
// calls, in locked memory, which makes sealing many journal entries cheap; the state is
// wiped when the Hmac is destroyed. Hmac is not thread-safe
// (one per thread); the free functions are.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "crypto/bytes.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk {

inline constexpr std::size_t kDigestSize = 32;
using Digest = std::array<std::uint8_t, kDigestSize>;

Digest Sha256(ByteView data);

// Incremental SHA-256.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;
  Sha256Hasher& Update(ByteView data);
  Digest Finish();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

class Hmac {
 public:
  // Any key length (RFC 2104); sealkeep uses 32-byte keys.
  explicit Hmac(const SecretBytes& key);
  ~Hmac();
  Hmac(const Hmac&) = delete;
  Hmac& operator=(const Hmac&) = delete;

  // Streams parts of one message: Begin(), Update()..., End().
  void Begin();
  void Update(ByteView data);
  Digest End();

  Digest Compute(ByteView message);
  // Constant-time; false when tag is not exactly 32 bytes.
  bool Verify(ByteView message, ByteView tag);

 private:
  struct Ctx;
  Ctx* ctx_;  // in the locked pool
};

Digest HmacSha256(const SecretBytes& key, ByteView message);

inline constexpr std::size_t kHkdfMaxOutput = 255 * kDigestSize;

// HKDF-SHA256 extract-and-expand. Fails with invalid_argument when length is 0 or
// exceeds 255 * 32 bytes.
Result<SecretBytes> HkdfSha256(const SecretBytes& ikm, ByteView salt, ByteView info, std::size_t length);

}  // namespace sk
