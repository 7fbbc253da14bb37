// SHA-256 as a plain, copyable state (FIPS 180-4), with the block function chosen once at
// start: the x86 SHA extensions when the CPU has them (about ten times faster than the
// portable code on the machines sealkeep targets), else mbedTLS's own block function.
// Both give identical digests; tests check them against each other and known answers.
//
// Internal to crypto/: use Sha256(), Sha256Hasher or Hmac from mac.h. Not thread-safe
// per object; the dispatch is (it is decided once, before main).
#pragma once

#include <cstddef>
#include <cstdint>

namespace sk::internal {

struct Sha256Engine {
  std::uint32_t h[8];
  std::uint64_t length = 0;  // bytes absorbed
  std::uint8_t buf[64];
  std::size_t buffered = 0;

  void Init();
  void Update(const std::uint8_t* data, std::size_t n);
  void Final(std::uint8_t out[32]);
};

// Runs the compression function over n whole 64-byte blocks.
void Sha256Blocks(std::uint32_t h[8], const std::uint8_t* data, std::size_t nblocks);
// The portable path, always available (for tests that compare the two).
void Sha256BlocksPortable(std::uint32_t h[8], const std::uint8_t* data, std::size_t nblocks);
// True when Sha256Blocks uses the CPU's SHA extensions.
bool Sha256UsesShaNi();

}  // namespace sk::internal
