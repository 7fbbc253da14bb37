// The PKCS#11 implementation of KeyBackend (hsm/key_backend.h).
//
// The master key of generation g is a token AES-256 key labelled "sealkeep-master-g<g>"
// (master_key.h) that never leaves the token: Wrap() is C_Encrypt and Unwrap() is
// C_Decrypt with CKM_AES_GCM inside the token, writing the blob of
// wrapped_blob_format.h (kind 0x01). The anchor is the private token data object of
// anchor_object.h. docs/pkcs11.md describes the whole layout and what it protects.
//
// OpenPkcs11Backend:
//   1. loads config.module (process-wide registry, module.h) and finds the token by
//      config.token_label;
//   2. reads the user PIN (config.pin_file, else $CREDENTIALS_DIRECTORY/hsm-pin) and
//      logs in; the PIN is wiped right after;
//   3. lists the master-key generations and refuses any that is or ever was
//      extractable (master_key_extractable), or when there is none
//      (master_key_missing), or when the anchor object is absent (anchor_missing);
//   4. with config.sync_dir set (SoftHSM2's token folder), fsyncs it after every change
//      to the token, because SoftHSM2 never does (sync_dir.h);
//   5. copies each generation into a session object for the operations (master_key.h:
//      SoftHSM2 checks a token object against its files on every use; the copy keeps
//      the key's protections), falling back to the token object where copying fails;
//   6. keeps one read-write "control" session (anchor, rotation, retirement; it also
//      keeps the login alive) and a pool of up to config.max_sessions read-only
//      sessions for Wrap/Unwrap.
// Errors carry reasons a user can act on: module_not_found, not_a_pkcs11_module,
// token_not_found, pin_incorrect, pin_locked, credential_missing, master_key_missing,
// master_key_extractable, anchor_missing; pkcs11_error (naming the CK_RV) otherwise.
//
// Unwrap errors: malformed_blob, wrong_token (another keyset, or a TPM blob),
// key_retired (the blob's generation is not live), does_not_verify.
// Anchor errors: anchor_invalid (altered, malformed, other keyset), anchor_missing.
//
// The generation table is read when the backend opens; Rotate()/Retire() through this
// backend update it. `sealkeep hsm rotate/retire` from another process are for a
// stopped agent: this backend does not notice generations it did not make (its
// Rotate() then refuses with generations_changed rather than make a duplicate).
//
// Thread safety: as KeyBackend says. Wrap/Unwrap/Info run concurrently, each Wrap or
// Unwrap on a session of its own; ReadAnchor, AdvanceAnchor, Rotate and Retire are
// serialised by one mutex.
#pragma once

#include <memory>

#include "hsm/backend_config.h"
#include "hsm/key_backend.h"

namespace sk::hsm::pkcs11 {

Result<std::unique_ptr<KeyBackend>> OpenPkcs11Backend(const Pkcs11Config& config);

}  // namespace sk::hsm::pkcs11
