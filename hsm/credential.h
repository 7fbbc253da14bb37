// Reading a credential (HSM PIN, TPM auth value) the way sealkeep allows: from a file,
// or from systemd's credential directory ($CREDENTIALS_DIRECTORY/<name>, set by
// LoadCredential=/LoadCredentialEncrypted=). Never from argv or the environment.
//
// The value is the file's bytes with one trailing "\n" or "\r\n" removed, at most 4 KiB.
// The bytes land in locked memory; the read buffer is wiped.
#pragma once

#include <string>

#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk::hsm {

inline constexpr std::size_t kMaxCredentialBytes = 4096;

// Reads `path`, which must be a regular file (not a symbolic link: O_NOFOLLOW) owned by
// root or this process's uid and readable by nobody else (no group or other bits).
// Errors: credential_missing (kNotFound), credential_unsafe (kFailedPrecondition: a link,
// not a regular file, another owner, a group/world mode; the message says which and how
// to fix it), credential_unreadable, credential_too_large, credential_empty.
Result<SecretBytes> ReadCredentialFile(const std::string& path);

// When `path` is non-empty reads it as above; otherwise reads
// $CREDENTIALS_DIRECTORY/<name> (not a link, a regular file; its owner and mode are
// systemd's, which grants it to the service by ownership or an ACL).
// credential_missing when neither is available, naming both places.
Result<SecretBytes> ReadCredential(const std::string& path, const std::string& name);

}  // namespace sk::hsm
