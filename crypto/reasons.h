// The reasons (Status::reason()) that code elsewhere than their origin acts on, named once:
// the journal and service raise them, the API turns them into alerts and answers, the
// daemon decides what a retry can fix, the CLI maps them to advice and exit codes. Each
// string is permanent: it is the "code" of an API error, in audit records and in the docs.
// Reasons only one place raises and no other place reads stay where they are.
#pragma once

#include <initializer_list>
#include <string_view>

namespace sk::reason {

// Sealed states.
inline constexpr std::string_view kSealed = "sealed";  // by request, or not yet unsealed
inline constexpr std::string_view kReplayDetected =
    "replay_detected";  // the store is not the anchored history
inline constexpr std::string_view kHeadInvalid = "head_invalid";

// A version that does not verify: its refusal names why (docs/design.md).
inline constexpr std::string_view kSealInvalid = "seal_invalid";
inline constexpr std::string_view kChainBroken = "chain_broken";
inline constexpr std::string_view kContentMismatch = "content_mismatch";
inline constexpr std::string_view kDestroyed = "destroyed";
inline constexpr std::string_view kKeyRetired = "key_retired";
inline constexpr std::string_view kBelowFloor = "below_floor";
inline constexpr std::string_view kCasMismatch = "cas_mismatch";
inline constexpr std::string_view kExpired = "expired";
inline constexpr std::string_view kRestoreRefused = "restore_refused";

// A wrapped blob the backend cannot open.
inline constexpr std::string_view kDoesNotVerify = "does_not_verify";
inline constexpr std::string_view kMalformedBlob = "malformed_blob";
inline constexpr std::string_view kWrongToken = "wrong_token";
inline constexpr std::string_view kWrongTpm = "wrong_tpm";

// Hardware and credentials.
inline constexpr std::string_view kTokenNotFound = "token_not_found";
inline constexpr std::string_view kPinIncorrect = "pin_incorrect";
inline constexpr std::string_view kPinLocked = "pin_locked";
inline constexpr std::string_view kPinInvalid = "pin_invalid";
inline constexpr std::string_view kPinExpired = "pin_expired";
inline constexpr std::string_view kPinNotInitialized = "pin_not_initialized";
inline constexpr std::string_view kAuthIncorrect = "auth_incorrect";
inline constexpr std::string_view kAuthLockedOut = "auth_locked_out";
inline constexpr std::string_view kCredentialUnsafe = "credential_unsafe";
inline constexpr std::string_view kAnchorUnavailable = "anchor_unavailable";

// Stores and logs.
inline constexpr std::string_view kStoreLocked = "store_locked";
inline constexpr std::string_view kStoreCorrupt = "store_corrupt";
inline constexpr std::string_view kAuditUnavailable = "audit_unavailable";
inline constexpr std::string_view kAuditCorrupt = "audit_corrupt";

inline bool OneOf(std::string_view r, std::initializer_list<std::string_view> set) {
  for (std::string_view s : set) {
    if (r == s) return true;
  }
  return false;
}

// A rollback or restore was refused for this (the RollbackRefused alert).
inline bool IsRollbackRefusal(std::string_view r) {
  return OneOf(r, {kSealInvalid, kChainBroken, kContentMismatch, kDestroyed, kKeyRetired, kBelowFloor,
                   kReplayDetected, kCasMismatch, kExpired, kRestoreRefused});
}

// Stored data does not verify: tampering (the TamperDetected alert).
inline bool IsTampering(std::string_view r) {
  return OneOf(r, {kSealInvalid, kChainBroken, kContentMismatch});
}

// The backend cannot open a wrapped blob (a data key that does not verify is content_mismatch).
inline bool IsUnopenableBlob(std::string_view r) {
  return OneOf(r, {kDoesNotVerify, kMalformedBlob, kWrongToken, kWrongTpm});
}

// A failed unseal that no retry can fix without a human, or that a retry would make worse
// (each wrong PIN or auth value counts against the hardware's lockout).
inline bool RetryCannotHelp(std::string_view r) {
  return OneOf(r, {kSealed, kReplayDetected, kPinIncorrect, kPinLocked, kPinInvalid, kPinExpired,
                   kPinNotInitialized, kAuthIncorrect, kAuthLockedOut, kCredentialUnsafe, kStoreCorrupt,
                   kSealInvalid, kChainBroken, kHeadInvalid, kAuditCorrupt});
}

}  // namespace sk::reason
