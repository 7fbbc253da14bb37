#include "agent/api/watch.h"

#include <algorithm>

#include "agent/secrets/path.h"

namespace sk::api {

Reply WatchTimeout(std::uint64_t seq) {
  Reply r;
  r.answer.status = 204;
  r.answer.headers.emplace_back("X-Sealkeep-Seq", std::to_string(seq));
  return r;
}

std::optional<Reply> WatchHub::Check(secrets::SecretService& svc, Waiter& w) {
  const std::uint64_t head = svc.HeadSeq();
  while (w.after < head) {
    auto feed = svc.ChangesSince(w.after, kMaxScan);
    if (!feed.ok()) return Failure(feed.status());
    Json changes = Json::array();
    for (const secrets::Change& c : feed->changes) {
      if (!secrets::PathMatchesPrefix(c.path, w.prefix) || !w.visible(c.path)) continue;
      changes.push_back({{"seq", c.seq}, {"path", c.path}, {"version", c.version}, {"kind", c.kind}});
    }
    const bool moved = feed->scanned_to > w.after;
    w.after = std::max(w.after, feed->scanned_to);
    if (!changes.empty()) return Json200({{"seq", w.after}, {"changes", changes}});
    if (!moved) break;  // nothing more to read now
  }
  return std::nullopt;
}

void WatchHub::Sweep(secrets::SecretService& svc, std::list<Waiter>& batch) {
  const std::uint64_t head = svc.HeadSeq();
  // Rounds of kMaxScan entries from the lowest `after`, read once for every waiter behind.
  for (;;) {
    std::uint64_t from = head;
    for (const Waiter& w : batch) from = std::min(from, w.after);
    if (from >= head) return;
    auto feed = svc.ChangesSince(from, kMaxScan);
    for (auto it = batch.begin(); it != batch.end();) {
      if (it->after >= head) {
        ++it;
        continue;
      }
      std::optional<Reply> answer;
      if (!feed.ok()) {
        answer = Failure(feed.status());
      } else {
        Json changes = Json::array();
        for (const secrets::Change& c : feed->changes) {
          if (c.seq <= it->after || !secrets::PathMatchesPrefix(c.path, it->prefix) || !it->visible(c.path))
            continue;
          changes.push_back({{"seq", c.seq}, {"path", c.path}, {"version", c.version}, {"kind", c.kind}});
        }
        it->after = std::max(it->after, feed->scanned_to);
        if (!changes.empty()) answer = Json200({{"seq", it->after}, {"changes", changes}});
      }
      if (answer) {
        it->done(std::move(*answer));
        it = batch.erase(it);
      } else {
        ++it;
      }
    }
    if (!feed.ok() || feed->scanned_to <= from) return;  // answered with the error, or nothing to read
  }
}

WatchHub::WatchHub(std::function<std::shared_ptr<secrets::SecretService>()> service)
    : service_(std::move(service)), thread_([this] { Run(); }) {}

WatchHub::~WatchHub() {
  Stop();
  thread_.join();
}

std::size_t WatchHub::parked() const {
  std::lock_guard lock(mu_);
  return waiters_.size();
}

void WatchHub::Watch(Waiter w) {
  std::uint64_t commits_before = 0;
  {
    std::lock_guard lock(mu_);
    commits_before = commits_;
  }
  std::shared_ptr<secrets::SecretService> svc = service_();
  if (svc) {
    if (std::optional<Reply> now = Check(*svc, w)) return w.done(std::move(*now));
  }
  if (w.deadline <= Clock::now()) return w.done(WatchTimeout(w.after));  // timeout_s=0: a look, no wait
  std::unique_lock lock(mu_);
  if (stopping_) {
    lock.unlock();
    return w.done(Failure(Status(Code::kUnavailable, "shutting_down", "sealkeepd is stopping")));
  }
  waiters_.push_back(std::move(w));
  // A commit between the check above and now may already have been handled without this
  // waiter: the hub looks again.
  if (commits_ != commits_before) recheck_ = true;
  cv_.notify_one();
}

void WatchHub::Forget() {
  std::lock_guard lock(mu_);
  forget_ = true;
  cv_.notify_one();
}

void WatchHub::Notify() {
  std::lock_guard lock(mu_);
  ++commits_;
  cv_.notify_one();
}

void WatchHub::Stop() {
  std::list<Waiter> all;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    all.swap(waiters_);
    cv_.notify_one();
  }
  for (Waiter& w : all) w.done(Failure(Status(Code::kUnavailable, "shutting_down", "sealkeepd is stopping")));
}

void WatchHub::Run() {
  std::uint64_t seen = 0;
  std::unique_lock lock(mu_);
  for (;;) {
    if (stopping_) return;
    if (forget_) {
      // Every waiter is in waiters_ here (a batch is only out within one turn below).
      forget_ = false;
      std::list<Waiter> dropped;
      for (auto it = waiters_.begin(); it != waiters_.end();) {
        auto next = std::next(it);
        if (it->gone && it->gone->load()) dropped.splice(dropped.end(), waiters_, it);
        it = next;
      }
      lock.unlock();
      dropped.clear();  // their connections may go with them: not under the lock
      lock.lock();
      continue;
    }
    Clock::time_point now = Clock::now();
    Clock::time_point next = Clock::time_point::max();
    for (const Waiter& w : waiters_) next = std::min(next, w.deadline);
    const bool committed = commits_ != seen || recheck_;
    if (!committed && next > now) {
      // Nothing to do before the next commit, waiter or deadline (or Stop).
      if (next == Clock::time_point::max()) {
        cv_.wait(lock);
      } else {
        cv_.wait_until(lock, next);
      }
      continue;
    }
    // Work without the lock: Watch and Notify go on meanwhile.
    seen = commits_;
    recheck_ = false;
    std::list<Waiter> batch;
    batch.swap(waiters_);
    lock.unlock();
    std::shared_ptr<secrets::SecretService> svc = committed ? service_() : nullptr;
    if (svc) Sweep(*svc, batch);
    now = Clock::now();
    for (auto it = batch.begin(); it != batch.end();) {
      std::optional<Reply> answer;
      if (it->deadline <= now) answer = WatchTimeout(it->after);
      if (answer) {
        it->done(std::move(*answer));
        it = batch.erase(it);
      } else {
        ++it;
      }
    }
    lock.lock();
    waiters_.splice(waiters_.end(), batch);
  }
}

}  // namespace sk::api
