// WipingAllocator: a std::allocator that wipes (SecureWipe) what it gives back, for the
// containers that pass a secret through on its way into SecretBytes or out to a socket:
// request read buffers, a chunked request body as it grows, a JSON string being decoded.
// Growth reallocates as usual, and every block left behind is wiped before it is freed.
// Unlike SecretBytes its memory is not locked: use it only for bytes in transit.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "crypto/locked_pool.h"

namespace sk {

template <class T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() = default;
  template <class U>
  WipingAllocator(const WipingAllocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)
  T* allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept {
    SecureWipe(p, n * sizeof(T));
    std::allocator<T>().deallocate(p, n);
  }
  template <class U>
  bool operator==(const WipingAllocator<U>&) const noexcept {
    return true;
  }
};

using WipingString = std::basic_string<char, std::char_traits<char>, WipingAllocator<char>>;
using WipingBytes = std::vector<std::uint8_t, WipingAllocator<std::uint8_t>>;

}  // namespace sk
