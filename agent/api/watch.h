// WatchHub: the parked requests of GET /v1/watch (docs/api.md, "Watch").
//
// A watcher waits for the first journal entry past `after` that touches a path under its
// prefix which the caller may `list`. The hub has one thread of its own: it sleeps until
// the next commit (Notify, from the committer through Agent::SetOnCommit) or the nearest
// deadline. A parked watcher costs an entry here and its connection, and holds no thread.
// On a commit each waiter reads the entries past its `after` (at most kMaxScan per wake),
// moves `after` over what it may not see, and is answered (200) when anything remains
// (the entries are read once per wake for all waiters, from the lowest `after`);
// at its deadline it gets 204 with the seq it got to. Stop() answers every waiter with
// 503 (the server drains at shutdown). Every waiter is answered exactly once.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "agent/api/handlers.h"

namespace sk::api {

class WatchHub {
 public:
  using Clock = std::chrono::steady_clock;
  struct Waiter {
    std::string prefix;
    std::uint64_t after = 0;
    Clock::time_point deadline;
    std::function<bool(const std::string& path)> visible;  // the caller may list path
    std::function<void(Reply)> done;
    // Set when the client hung up (may be null): Forget() drops the waiter unanswered.
    std::shared_ptr<std::atomic<bool>> gone;
  };

  // Journal entries examined per waiter per wake, at most.
  static constexpr std::size_t kMaxScan = 10'000;

  explicit WatchHub(std::function<std::shared_ptr<secrets::SecretService>()> service);
  ~WatchHub();
  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  // Answers at once when there is something to say (or the agent is sealed), else parks.
  void Watch(Waiter w);
  // A commit landed.
  void Notify();
  // Some waiter's client hung up: the hub drops every waiter whose `gone` is set.
  void Forget();
  // Answers every waiter (503 shutting_down) and refuses new ones.
  void Stop();
  std::size_t parked() const;

  // The answer for `w` now: 200 with what it may see past `after` (moving `after` over
  // what it may not), or nullopt when there is nothing yet.
  static std::optional<Reply> Check(secrets::SecretService& svc, Waiter& w);

 private:
  void Run();
  // After a commit: answers the waiters of `batch` with something to see (and drops them
  // from it), reading the journal once from the lowest `after` for all of them.
  static void Sweep(secrets::SecretService& svc, std::list<Waiter>& batch);

  std::function<std::shared_ptr<secrets::SecretService>()> service_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::list<Waiter> waiters_;  // guarded by mu_
  std::uint64_t commits_ = 0;  // guarded by mu_: bumped by Notify
  bool recheck_ = false;       // guarded by mu_: a waiter parked after a commit it may have missed
  bool stopping_ = false;      // guarded by mu_
  bool forget_ = false;        // guarded by mu_: some waiter's client hung up
  std::thread thread_;
};

// The 204 of a watch that saw nothing it may show before its deadline.
Reply WatchTimeout(std::uint64_t seq);

}  // namespace sk::api
