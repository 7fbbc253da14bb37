#include "crypto/status.h"

namespace sk {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "ok";
    case Code::kInvalidArgument:
      return "invalid_argument";
    case Code::kNotFound:
      return "not_found";
    case Code::kAlreadyExists:
      return "already_exists";
    case Code::kConflict:
      return "conflict";
    case Code::kFailedPrecondition:
      return "failed_precondition";
    case Code::kCorruption:
      return "corruption";
    case Code::kForbidden:
      return "forbidden";
    case Code::kUnauthenticated:
      return "unauthenticated";
    case Code::kSealed:
      return "sealed";
    case Code::kTooLarge:
      return "too_large";
    case Code::kExpired:
      return "expired";
    case Code::kUnavailable:
      return "unavailable";
    case Code::kResourceExhausted:
      return "resource_exhausted";
    case Code::kUnimplemented:
      return "unimplemented";
    case Code::kInternal:
      return "internal";
  }
  return "internal";
}

Status::Status(Code code, std::string reason, std::string message) {
  if (code == Code::kOk) return;
  if (reason.empty()) reason = std::string(CodeName(code));
  rep_ = std::make_unique<Rep>(Rep{code, std::move(reason), std::move(message)});
}

Status::Status(const Status& other) : rep_(other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr) {}

Status& Status::operator=(const Status& other) {
  if (this != &other) rep_ = other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr;
  return *this;
}

std::string_view Status::reason() const {
  return rep_ ? std::string_view(rep_->reason) : std::string_view("ok");
}
std::string_view Status::message() const { return rep_ ? std::string_view(rep_->message) : ""; }

std::string Status::ToString() const {
  if (!rep_) return "ok";
  if (rep_->message.empty()) return rep_->reason;
  return rep_->reason + ": " + rep_->message;
}

Status Status::WithContext(std::string_view context) const {
  if (!rep_) return {};
  return {rep_->code, rep_->reason, std::string(context) + ": " + rep_->message};
}

Status InvalidArgument(std::string m, std::string r) {
  return {Code::kInvalidArgument, std::move(r), std::move(m)};
}
Status NotFound(std::string m, std::string r) { return {Code::kNotFound, std::move(r), std::move(m)}; }
Status Conflict(std::string m, std::string r) { return {Code::kConflict, std::move(r), std::move(m)}; }
Status FailedPrecondition(std::string m, std::string r) {
  return {Code::kFailedPrecondition, std::move(r), std::move(m)};
}
Status Corruption(std::string m, std::string r) { return {Code::kCorruption, std::move(r), std::move(m)}; }
Status Unavailable(std::string m, std::string r) { return {Code::kUnavailable, std::move(r), std::move(m)}; }
Status Internal(std::string m, std::string r) { return {Code::kInternal, std::move(r), std::move(m)}; }
Status Unimplemented(std::string m, std::string r) {
  return {Code::kUnimplemented, std::move(r), std::move(m)};
}

}  // namespace sk
