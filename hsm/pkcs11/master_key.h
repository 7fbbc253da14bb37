// sealkeep's master keys on a PKCS#11 token (internal to hsm/pkcs11/).
//
// Generation g of the master key is a token secret-key object with
//   CKA_CLASS    CKO_SECRET_KEY        CKA_KEY_TYPE  CKK_AES      CKA_VALUE_LEN  32
//   CKA_LABEL    "sealkeep-master-g<g>" (decimal, no leading zeros, g >= 1)
//   CKA_ID       the 8-byte keyset id, the same for every generation of one key set
//   CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, CKA_ENCRYPT, CKA_DECRYPT   true
//   CKA_EXTRACTABLE, CKA_WRAP, CKA_UNWRAP, CKA_SIGN, CKA_VERIFY, CKA_DERIVE  false
// generated inside the token (C_GenerateKey with CKM_AES_KEY_GEN), so the token also
// reports CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE true and CKA_LOCAL true.
//
// A key is usable only if it is sensitive and not extractable now, and always was
// (always-sensitive, never-extractable): a key whose bytes could ever have been read
// out is refused with master_key_extractable, whoever created it.
//
// Session copies: SoftHSM2 re-validates a token object against its files on every
// operation (about a dozen system calls and a file lock per C_DecryptInit); a session
// object lives in the module's memory only. So the backend works with a session-object
// copy of each generation (C_CopyObject with CKA_TOKEN false), which PKCS#11 lets keep
// only the same or stronger protections (sensitive stays true, extractable stays false);
// SessionCopy() checks that anyway. The copy dies with the session that made it. CKA_MODIFIABLE
// is left true on the token key because SoftHSM2 refuses to copy an unmodifiable object.
//
// Never reads CKA_VALUE.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/bytes.h"
#include "crypto/status.h"
#include "hsm/pkcs11/p11.h"
#include "hsm/pkcs11/token.h"
#include "hsm/wrapped_blob_format.h"

namespace sk::hsm::pkcs11 {

inline constexpr std::string_view kMasterKeyLabelPrefix = "sealkeep-master-g";
inline constexpr unsigned long kMasterKeyBytes = 32;

std::string MasterKeyLabel(std::uint32_t generation);
// The generation a label names; nullopt unless it is exactly "sealkeep-master-g<N>", N >= 1.
std::optional<std::uint32_t> ParseMasterKeyLabel(std::string_view label);

// What the token says about one master-key object (never its value).
struct MasterKey {
  ck_object_handle_t handle = CK_INVALID_HANDLE;
  std::uint32_t generation = 0;
  std::string label;
  Bytes id;  // CKA_ID: the keyset id
  unsigned long key_type = 0;
  unsigned long value_len = 0;
  bool sensitive = false;
  bool always_sensitive = false;
  bool extractable = true;
  bool never_extractable = false;
  bool local = false;
  bool is_private = false;
  bool token = false;
  bool encrypt = false;
  bool decrypt = false;
};

// Live generations and their object handles.
using KeyHandles = std::map<std::uint32_t, ck_object_handle_t>;

// Every secret key on the token whose label is a master-key label, ascending by
// generation. Errors: master_key_duplicate (kCorruption) when one generation's label
// appears twice; pkcs11_error.
Result<std::vector<MasterKey>> ListMasterKeys(const Session& session);

// OK when sealkeep may use the key. Errors: master_key_extractable (kFailedPrecondition);
// master_key_invalid (kFailedPrecondition: not AES-256, not a private token object,
// cannot encrypt/decrypt, or its CKA_ID is not an 8-byte keyset id).
Status CheckMasterKey(const MasterKey& key);

// The keyset id shared by `keys` (non-empty, all checked). Error: keyset_inconsistent
// (kCorruption) when generations disagree.
Result<KeysetId> KeysetOf(const std::vector<MasterKey>& keys);

// Generates generation `generation` in the token (session must be read-write and
// logged in) and reads back what the token made of it.
Result<MasterKey> GenerateMasterKey(const Session& session, std::uint32_t generation, const KeysetId& keyset);

// A session-object copy of `key`, made in `session` (it lives as long as that session)
// and usable from every session of this process. Errors: pkcs11_error when the module
// refuses to copy (the caller then uses the token object), session_copy_weaker.
Result<ck_object_handle_t> SessionCopy(const Session& session, const MasterKey& key);

}  // namespace sk::hsm::pkcs11
