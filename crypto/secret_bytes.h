// SecretBytes: the only type that holds key material or plaintext secret values.
//
// - Memory comes from LockedPool: locked (no swap), excluded from core dumps and
//   forks, wiped when freed.
// - Move-only. A copy must be asked for by name (Clone()), so one never happens by
//   accident. Moving transfers the buffer (no bytes are copied); move-assignment wipes
//   the destination's old bytes first; a moved-from SecretBytes is empty.
// - No operator<<, no formatter, no conversion to string: logging one does not compile.
// - Reading the bytes goes through Expose(), so every read is findable with grep.
// - Equality is constant-time.
// Not thread-safe; treat like any value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <span>

namespace sk {

class SecretBytes {
 public:
  SecretBytes() = default;
  // n zero bytes.
  explicit SecretBytes(std::size_t n);
  // Copies `src`. The caller wipes the source if it was secret.
  static SecretBytes CopyFrom(std::span<const std::uint8_t> src);

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  ~SecretBytes();

  SecretBytes Clone() const;

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  std::span<std::uint8_t> Expose() { return {data_, size_}; }
  std::span<const std::uint8_t> Expose() const { return {data_, size_}; }

  // Shrinks to n <= size(), wiping the dropped tail.
  void Truncate(std::size_t n);

  // Constant-time in the contents (not in the sizes, which are public).
  bool Equals(const SecretBytes& other) const;

  friend std::ostream& operator<<(std::ostream&, const SecretBytes&) = delete;

 private:
  void Release();
  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace sk
