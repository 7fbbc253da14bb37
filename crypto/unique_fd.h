// UniqueFd: the one owner of a file descriptor. Move-only; closes it when destroyed or
// reset; release() hands it over. -1 means none. Every descriptor the agent and its tools
// open lives in one, so no error path can leak one and no close is written by hand.
#pragma once

#include <unistd.h>

#include <utility>

namespace sk {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  // The descriptor, no longer owned.
  [[nodiscard]] int release() { return std::exchange(fd_, -1); }
  // Closes the one held (if any) and holds `fd`.
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  // close(2)'s own result, for callers that must know (a file's last write is only known
  // durable once close succeeds on some filesystems).
  int Close() {
    int fd = release();
    return fd >= 0 ? ::close(fd) : 0;
  }

 private:
  int fd_ = -1;
};

}  // namespace sk
