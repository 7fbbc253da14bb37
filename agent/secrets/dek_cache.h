// A bounded cache of unwrapped data keys, in locked memory, with a time-to-live, so a hot
// secret is not unwrapped by the HSM on every read. Only data keys are cached, never
// plaintext values. Keys are (path, version, seq of the entry that wrote it): a seq is
// never reused, so a cached key can never answer for different bytes.
// Beside each key the cache keeps what its sealed journal entry said (the ciphertext
// digest and the labels), as verified when the key was unwrapped: entries never change,
// so a hot read need not re-read and re-seal its entry; it still reads the ciphertext
// and checks it against that digest.
// Bounded: beyond `capacity` entries the least recently used one is dropped. An entry
// older than `ttl` is never returned; Get drops it when it meets it, and SweepExpired()
// drops every expired one (call it from a periodic tick, so an unread key does not stay
// in memory past its time-to-live).
// Thread-safe. Clear() drops every key (sys/seal).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "crypto/mac.h"
#include "crypto/secret_bytes.h"

namespace sk::secrets {

struct CachedVersion {
  std::shared_ptr<const SecretBytes> dek;
  Digest content_digest{};
  std::string labels;  // canonical, from the entry
};

class DekCache {
 public:
  using Clock = std::chrono::steady_clock;
  // The time source; a seam so tests can move time (the agent uses the default).
  using Now = std::function<Clock::time_point()>;

  DekCache(std::size_t capacity, std::chrono::milliseconds ttl, Now now = &Clock::now)
      : capacity_(capacity), ttl_(ttl), now_(std::move(now)) {}

  // A copy of the cached facts (the key itself is shared, not copied).
  std::optional<CachedVersion> Get(const std::string& path, std::uint64_t version, std::uint64_t seq);
  void Put(const std::string& path, std::uint64_t version, std::uint64_t seq, CachedVersion v);
  void Erase(const std::string& path, std::uint64_t version);
  void Clear();
  // Drops every entry whose time-to-live has passed; returns how many.
  std::size_t SweepExpired();

  std::uint64_t hits() const;
  std::uint64_t misses() const;
  std::size_t size() const;

 private:
  struct Item {
    std::string key;
    CachedVersion v;
    Clock::time_point expires;
  };
  static std::string Key(const std::string& path, std::uint64_t version, std::uint64_t seq);

  const std::size_t capacity_;
  const std::chrono::milliseconds ttl_;
  const Now now_;
  mutable std::mutex mu_;
  std::list<Item> lru_;  // front: most recent
  std::unordered_map<std::string, std::list<Item>::iterator> map_;
  std::uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace sk::secrets
