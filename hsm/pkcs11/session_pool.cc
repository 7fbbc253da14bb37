#include "hsm/pkcs11/session_pool.h"

#include <algorithm>

#include "hsm/pkcs11/errors.h"

namespace sk::hsm::pkcs11 {

SessionPool::SessionPool(std::shared_ptr<Module> module, ck_slot_id_t slot, std::size_t max_sessions)
    : module_(std::move(module)), slot_(slot), max_(std::max<std::size_t>(max_sessions, 1)) {}

SessionPool::~SessionPool() {
  std::lock_guard lock(mu_);
  for (ck_session_handle_t h : idle_) module_->fn().C_CloseSession(h);
  idle_.clear();
}

Result<SessionPool::Lease> SessionPool::Acquire() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (!idle_.empty()) {
      ck_session_handle_t h = idle_.back();
      idle_.pop_back();
      return Lease(this, h);
    }
    if (open_ < max_) break;
    ++waiters_;
    cv_.wait(lock, [&] { return !idle_.empty() || open_ < max_; });
    --waiters_;
  }
  ++open_;  // reserve the slot, then open outside the lock
  lock.unlock();
  ck_session_handle_t h = CK_INVALID_HANDLE;
  ck_rv_t rv = module_->fn().C_OpenSession(slot_, CKF_SERIAL_SESSION, nullptr, nullptr, &h);
  if (rv != CKR_OK) {
    lock.lock();
    --open_;
    if (waiters_ > 0) cv_.notify_one();
    return RvError(rv, "C_OpenSession for the session pool");
  }
  return Lease(this, h);
}

void SessionPool::Return(ck_session_handle_t handle, bool discard) {
  if (discard) module_->fn().C_CloseSession(handle);
  std::lock_guard lock(mu_);
  if (discard) {
    --open_;
  } else {
    idle_.push_back(handle);
  }
  if (waiters_ > 0) cv_.notify_one();
}

std::size_t SessionPool::open_sessions() const {
  std::lock_guard lock(mu_);
  return open_;
}

SessionPool::Lease::~Lease() {
  if (pool_ != nullptr) pool_->Return(handle_, discard_);
}

}  // namespace sk::hsm::pkcs11
