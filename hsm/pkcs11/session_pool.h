// A bounded pool of read-only PKCS#11 sessions for Wrap/Unwrap (internal to hsm/pkcs11/).
//
// A PKCS#11 session holds at most one active operation and must not be used by two
// threads at once, so every concurrent Wrap/Unwrap leases a session of its own.
// Sessions are opened lazily, up to `max_sessions`; a caller that finds all of them
// leased waits until one comes back. Sessions inherit the application's login, which
// the backend's control session keeps alive for the pool's whole life.
//
// A lease whose operation failed in a way that may have spoilt the session (anything
// but success, a tag that does not verify, or a retired key) is Discard()ed: the
// session is closed and a fresh one opened on demand.
//
// Thread safety: Acquire() and the leases are thread-safe; one lease is one thread's.
// The pool must outlive its leases.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "crypto/status.h"
#include "hsm/pkcs11/module.h"
#include "hsm/pkcs11/p11.h"

namespace sk::hsm::pkcs11 {

class SessionPool {
 public:
  SessionPool(std::shared_ptr<Module> module, ck_slot_id_t slot, std::size_t max_sessions);
  ~SessionPool();  // closes every idle session
  SessionPool(const SessionPool&) = delete;
  SessionPool& operator=(const SessionPool&) = delete;

  class Lease {
   public:
    Lease(Lease&& other) noexcept : pool_(other.pool_), handle_(other.handle_), discard_(other.discard_) {
      other.pool_ = nullptr;
    }
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();  // returns the session to the pool

    ck_session_handle_t handle() const { return handle_; }
    // Closes the session instead of returning it.
    void Discard() { discard_ = true; }

   private:
    friend class SessionPool;
    Lease(SessionPool* pool, ck_session_handle_t handle) : pool_(pool), handle_(handle) {}
    SessionPool* pool_;
    ck_session_handle_t handle_;
    bool discard_ = false;
  };

  // A session for the caller's exclusive use; waits while all are leased.
  Result<Lease> Acquire();

  const ck_function_list& fn() const { return module_->fn(); }
  std::size_t open_sessions() const;

 private:
  void Return(ck_session_handle_t handle, bool discard);

  std::shared_ptr<Module> module_;
  ck_slot_id_t slot_;
  std::size_t max_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ck_session_handle_t> idle_;  // guarded by mu_
  std::size_t open_ = 0;                   // guarded by mu_: idle + leased + being opened
  std::size_t waiters_ = 0;                // guarded by mu_
};

}  // namespace sk::hsm::pkcs11
