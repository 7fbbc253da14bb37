#include "agent/secrets/dek_cache.h"

namespace sk::secrets {

std::string DekCache::Key(const std::string& path, std::uint64_t version, std::uint64_t seq) {
  return path + '\0' + std::to_string(version) + '\0' + std::to_string(seq);
}

std::optional<CachedVersion> DekCache::Get(const std::string& path, std::uint64_t version,
                                           std::uint64_t seq) {
  if (capacity_ == 0) return std::nullopt;
  std::lock_guard lock(mu_);
  auto it = map_.find(Key(path, version, seq));
  if (it == map_.end()) {
    ++misses_;
    return std::nullopt;
  }
  if (now_() >= it->second->expires) {
    lru_.erase(it->second);
    map_.erase(it);
    ++misses_;
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  ++hits_;
  return it->second->v;
}

void DekCache::Put(const std::string& path, std::uint64_t version, std::uint64_t seq, CachedVersion v) {
  if (capacity_ == 0) return;
  std::string key = Key(path, version, seq);
  std::lock_guard lock(mu_);
  auto it = map_.find(key);
  if (it != map_.end()) {
    lru_.erase(it->second);
    map_.erase(it);
  }
  lru_.push_front(Item{key, std::move(v), now_() + ttl_});
  map_.emplace(std::move(key), lru_.begin());
  while (map_.size() > capacity_) {
    map_.erase(lru_.back().key);
    lru_.pop_back();
  }
}

void DekCache::Erase(const std::string& path, std::uint64_t version) {
  std::string prefix = path + '\0' + std::to_string(version) + '\0';
  std::lock_guard lock(mu_);
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (it->key.compare(0, prefix.size(), prefix) == 0) {
      map_.erase(it->key);
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
}

void DekCache::Clear() {
  std::lock_guard lock(mu_);
  map_.clear();
  lru_.clear();
}

std::size_t DekCache::SweepExpired() {
  std::lock_guard lock(mu_);
  const Clock::time_point now = now_();
  std::size_t dropped = 0;
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (now >= it->expires) {
      map_.erase(it->key);
      it = lru_.erase(it);
      ++dropped;
    } else {
      ++it;
    }
  }
  return dropped;
}

std::uint64_t DekCache::hits() const {
  std::lock_guard lock(mu_);
  return hits_;
}
std::uint64_t DekCache::misses() const {
  std::lock_guard lock(mu_);
  return misses_;
}
std::size_t DekCache::size() const {
  std::lock_guard lock(mu_);
  return map_.size();
}

}  // namespace sk::secrets
