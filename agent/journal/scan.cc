#include "agent/journal/scan.h"

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "agent/journal/sealer.h"

namespace sk::journal {
namespace {

constexpr std::size_t kChunk = 2048;

struct Chunk {
  std::vector<store::JournalRecord> rows;
  std::vector<ScannedEntry> out;
};

// Decodes and checks the seals of rows[begin, end) of a chunk.
void SealWork(Sealer& sealer, Chunk& c, std::size_t begin, std::size_t end) {
  for (std::size_t i = begin; i < end; ++i) {
    store::JournalRecord& r = c.rows[i];
    ScannedEntry& s = c.out[i];
    s.seq = r.seq;
    s.row_path = std::move(r.path);
    s.stored_seal = r.seal;
    auto decoded = DecodeEntry(r.entry);
    if (decoded.ok()) {
      s.seal_ok = decoded->seq == r.seq && sealer.EntrySealMatches(r.entry, r.seal);
      s.entry = std::move(decoded).value();
    }
  }
}

// A fixed pool: each chunk is split into `n` slices, worker k takes slice k.
class Pool {
 public:
  Pool(const SecretBytes& key, int n) : n_(static_cast<std::size_t>(n)) {
    for (std::size_t k = 0; k < n_; ++k) sealers_.push_back(std::make_unique<Sealer>(key));
    for (std::size_t k = 0; k < n_; ++k) threads_.emplace_back([this, k] { Run(k); });
  }
  ~Pool() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  void Start(Chunk* c) {
    std::lock_guard lock(mu_);
    chunk_ = c;
    pending_ = n_;
    ++generation_;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock lock(mu_);
    done_cv_.wait(lock, [this] { return pending_ == 0; });
  }

 private:
  void Run(std::size_t k) {
    std::uint64_t seen = 0;
    for (;;) {
      Chunk* c = nullptr;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        c = chunk_;
      }
      std::size_t n = c->rows.size();
      std::size_t per = (n + n_ - 1) / n_;
      std::size_t begin = std::min(n, k * per), end = std::min(n, begin + per);
      SealWork(*sealers_[k], *c, begin, end);
      std::lock_guard lock(mu_);
      if (--pending_ == 0) done_cv_.notify_all();
    }
  }

  std::size_t n_;
  std::vector<std::unique_ptr<Sealer>> sealers_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  Chunk* chunk_ = nullptr;
  std::size_t pending_ = 0;
  std::uint64_t generation_ = 0;
  bool stop_ = false;
};

}  // namespace

Result<ScanSummary> ScanJournal(store::Reader& reader, const SecretBytes& journal_key, int threads,
                                const std::function<void(ScannedEntry&)>& fn) {
  ScanSummary sum;
  Pool pool(journal_key, std::max(1, threads));
  Chunk chunks[2];
  int filling = 0;
  Chunk* in_flight = nullptr;
  Digest prev_seal{};
  std::uint64_t prev_seq = 0;

  // Chains and hands on a chunk the pool has finished with.
  auto apply = [&](Chunk& c) {
    for (ScannedEntry& s : c.out) {
      s.link_ok = s.seq == prev_seq + 1 && s.entry.has_value() && s.entry->prev_hash == prev_seal;
      if (!s.seal_ok) ++sum.bad_seals;
      if (!s.link_ok) ++sum.broken_links;
      prev_seq = s.seq;
      prev_seal = s.stored_seal;
      ++sum.entries;
      fn(s);
    }
    c.rows.clear();
    c.out.clear();
  };
  auto finish = [&](Chunk& c) {
    pool.Wait();
    apply(c);
  };
  auto launch = [&](Chunk& c) {
    c.out.assign(c.rows.size(), ScannedEntry{});
    pool.Start(&c);
    in_flight = &c;
  };

  Status st = reader.ScanJournal(1, [&](store::JournalRecord& r) {
    Chunk& c = chunks[filling];
    c.rows.push_back(std::move(r));
    if (c.rows.size() == kChunk) {
      // The pool starts on this chunk while this thread hands on the previous one.
      Chunk* previous = in_flight;
      if (previous != nullptr) pool.Wait();
      launch(c);
      if (previous != nullptr) apply(*previous);
      filling ^= 1;
    }
    return true;
  });
  if (in_flight != nullptr) finish(*in_flight);
  if (!st.ok()) return st;
  if (!chunks[filling].rows.empty()) {
    launch(chunks[filling]);
    finish(chunks[filling]);
  }
  sum.last_seq = prev_seq;
  sum.last_hash = prev_seal;
  return sum;
}

}  // namespace sk::journal
