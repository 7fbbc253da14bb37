// Status and Result<T>: the one error model of sealkeep.
//
// Every fallible function returns a Status or a Result<T>; no exception crosses a
// module boundary. A Status carries
//   - a Code: the broad class of failure (it decides the HTTP status and the CLI exit
//     code, and means one thing each);
//   - a reason: a stable snake_case identifier a program may match on ("pin_incorrect",
//     "replay_detected"); it is the API's error "code" field;
//   - a message for humans. Messages never hold secret bytes: build them from names,
//     sizes and numbers only.
// An OK Status allocates nothing. Status and Result are copyable and movable; they are
// not thread-safe to mutate concurrently (like any value type).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace sk {

enum class Code : std::uint8_t {
  kOk = 0,
  kInvalidArgument,     // the caller's input is malformed or out of range
  kNotFound,            // no such object
  kAlreadyExists,       // creating something that is there
  kConflict,            // cas mismatch, refused rollback, state conflict
  kFailedPrecondition,  // the system is not in a state that allows it (key missing...)
  kCorruption,          // stored bytes fail verification
  kForbidden,           // the caller may not do this
  kUnauthenticated,     // a credential (PIN, auth value) is wrong or locked
  kSealed,              // keys are not in memory; the agent cannot serve secrets
  kTooLarge,            // a size limit was exceeded
  kExpired,             // the object exists but its lifetime has ended
  kUnavailable,         // a dependency (device, file system) failed; may be retried
  kResourceExhausted,   // rate or capacity limit
  kUnimplemented,       // not built yet
  kInternal,            // a bug: an invariant did not hold
};

// Stable name of a code ("invalid_argument"...), used when a reason is not given.
std::string_view CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string reason, std::string message);
  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;
  ~Status() = default;

  bool ok() const { return rep_ == nullptr; }
  Code code() const { return rep_ ? rep_->code : Code::kOk; }
  // The machine-readable reason; CodeName(code()) when none was given; "ok" when OK.
  std::string_view reason() const;
  std::string_view message() const;
  // "reason: message", for logs and CLI output.
  std::string ToString() const;

  // Prefixes the message with context ("opening the store: ..."), keeping code and reason.
  Status WithContext(std::string_view context) const;

 private:
  struct Rep {
    Code code;
    std::string reason;
    std::string message;
  };
  std::unique_ptr<Rep> rep_;
};

inline Status OkStatus() { return Status(); }

// Shorthands for the common codes. The reason defaults to the code's name.
Status InvalidArgument(std::string message, std::string reason = "");
Status NotFound(std::string message, std::string reason = "");
Status Conflict(std::string message, std::string reason = "");
Status FailedPrecondition(std::string message, std::string reason = "");
Status Corruption(std::string message, std::string reason = "");
Status Unavailable(std::string message, std::string reason = "");
Status Internal(std::string message, std::string reason = "");
Status Unimplemented(std::string message, std::string reason = "");

template <typename T>
class [[nodiscard]] Result {
 public:
  // NOLINTNEXTLINE(google-explicit-constructor): a T converts to an OK result.
  Result(T value) : v_(std::in_place_index<1>, std::move(value)) {}
  // NOLINTNEXTLINE(google-explicit-constructor): an error Status converts to a result.
  Result(Status status) : v_(std::in_place_index<0>, std::move(status)) {
    if (std::get<0>(v_).ok()) {
      v_.template emplace<0>(Internal("Result built from an OK Status"));
    }
  }

  bool ok() const { return v_.index() == 1; }
  const Status& status() const& {
    static const Status kOk;
    return ok() ? kOk : std::get<0>(v_);
  }
  Status status() && { return ok() ? Status() : std::move(std::get<0>(v_)); }

  // Precondition for the accessors: ok().
  T& value() & { return std::get<1>(v_); }
  const T& value() const& { return std::get<1>(v_); }
  T&& value() && { return std::get<1>(std::move(v_)); }
  T* operator->() { return &std::get<1>(v_); }
  const T* operator->() const { return &std::get<1>(v_); }
  T& operator*() & { return std::get<1>(v_); }
  const T& operator*() const& { return std::get<1>(v_); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace sk

#define SK_CONCAT_INNER(a, b) a##b
#define SK_CONCAT(a, b) SK_CONCAT_INNER(a, b)

// Returns the Status of `expr` from the enclosing function when it is not OK.
#define SK_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::sk::Status sk_status_ = (expr);        \
    if (!sk_status_.ok()) return sk_status_; \
  } while (false)

// `lhs = value of expr`, or returns its Status. lhs may declare: SK_ASSIGN_OR_RETURN(auto x, F());
#define SK_ASSIGN_OR_RETURN(lhs, expr) SK_ASSIGN_OR_RETURN_IMPL(SK_CONCAT(sk_result_, __LINE__), lhs, expr)
#define SK_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return std::move(tmp).status(); \
  lhs = std::move(tmp).value()
