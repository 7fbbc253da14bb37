#include "crypto/secret_bytes.h"

#include <cstring>
#include <new>

#include "crypto/ct.h"
#include "crypto/locked_pool.h"

namespace sk {

SecretBytes::SecretBytes(std::size_t n) : size_(n), capacity_(n) {
  if (n == 0) return;
  data_ = static_cast<std::uint8_t*>(LockedPool::Instance().Allocate(n));
  if (data_ == nullptr) throw std::bad_alloc();  // out of memory is fatal, as for new
}

SecretBytes SecretBytes::CopyFrom(std::span<const std::uint8_t> src) {
  SecretBytes s(src.size());
  if (!src.empty()) std::memcpy(s.data_, src.data(), src.size());
  return s;
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(other.data_), size_(other.size_), capacity_(other.capacity_) {
  other.data_ = nullptr;
  other.size_ = 0;
  other.capacity_ = 0;
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = other.data_;
    size_ = other.size_;
    capacity_ = other.capacity_;
    other.data_ = nullptr;
    other.size_ = 0;
    other.capacity_ = 0;
  }
  return *this;
}

SecretBytes::~SecretBytes() { Release(); }

void SecretBytes::Release() {
  if (data_ != nullptr) LockedPool::Instance().Free(data_, capacity_);  // Free() wipes
  data_ = nullptr;
  size_ = 0;
  capacity_ = 0;
}

SecretBytes SecretBytes::Clone() const { return CopyFrom(Expose()); }

void SecretBytes::Truncate(std::size_t n) {
  if (n >= size_) return;
  SecureWipe(data_ + n, size_ - n);
  size_ = n;
}

bool SecretBytes::Equals(const SecretBytes& other) const {
  return ConstantTimeEqual(Expose(), other.Expose());
}

}  // namespace sk
