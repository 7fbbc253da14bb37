// A bounded cache of unwrapped data keys, in locked memory, with a time-to-live, so a hot
// secret is not unwrapped by the HSM on every read. Only data keys are cached, never
// plaintext values. Keys are (path, version, seq of the entry that wrote it): a seq is
// never reused, so a cached key can never answer for different bytes.
// Thread-safe. Clear() drops every key (sys/seal).
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "crypto/secret_bytes.h"

namespace sk::secrets {

class DekCache {
 public:
  DekCache(std::size_t capacity, std::chrono::milliseconds ttl) : capacity_(capacity), ttl_(ttl) {}

  std::shared_ptr<const SecretBytes> Get(const std::string& path, std::uint64_t version, std::uint64_t seq);
  void Put(const std::string& path, std::uint64_t version, std::uint64_t seq, std::shared_ptr<const SecretBytes> dek);
  void Erase(const std::string& path, std::uint64_t version);
  void Clear();

  std::uint64_t hits() const;
  std::uint64_t misses() const;
  std::size_t size() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Item {
    std::string key;
    std::shared_ptr<const SecretBytes> dek;
    Clock::time_point expires;
  };
  static std::string Key(const std::string& path, std::uint64_t version, std::uint64_t seq);

  const std::size_t capacity_;
  const std::chrono::milliseconds ttl_;
  mutable std::mutex mu_;
  std::list<Item> lru_;  // front: most recent
  std::unordered_map<std::string, std::list<Item>::iterator> map_;
  std::uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace sk::secrets
