#include "hsm/pkcs11/master_key.h"

#include <algorithm>
#include <charconv>

#include "hsm/pkcs11/errors.h"
#include "hsm/pkcs11/objects.h"

namespace sk::hsm::pkcs11 {
namespace {

Result<MasterKey> ReadMasterKey(const Session& session, ck_object_handle_t handle, std::uint32_t generation,
                                std::string label) {
  MasterKey k;
  k.handle = handle;
  k.generation = generation;
  k.label = std::move(label);
  auto id = GetBytes(session, handle, CKA_ID);
  if (id.ok()) k.id = std::move(id).value();  // a missing CKA_ID fails CheckMasterKey
  unsigned char b[9] = {};
  ck_attribute t[] = {
      {CKA_KEY_TYPE, &k.key_type, sizeof k.key_type},
      {CKA_VALUE_LEN, &k.value_len, sizeof k.value_len},
      {CKA_SENSITIVE, &b[0], 1},
      {CKA_ALWAYS_SENSITIVE, &b[1], 1},
      {CKA_EXTRACTABLE, &b[2], 1},
      {CKA_NEVER_EXTRACTABLE, &b[3], 1},
      {CKA_LOCAL, &b[4], 1},
      {CKA_PRIVATE, &b[5], 1},
      {CKA_TOKEN, &b[6], 1},
      {CKA_ENCRYPT, &b[7], 1},
      {CKA_DECRYPT, &b[8], 1},
  };
  ck_rv_t rv = session.fn().C_GetAttributeValue(session.handle(), handle, t, std::size(t));
  if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID && rv != CKR_ATTRIBUTE_SENSITIVE) {
    return RvError(rv, "C_GetAttributeValue of " + k.label);
  }
  // An attribute the token did not return reads as its unsafe value, so it fails the check.
  auto flag = [&](int i, bool unsafe) { return t[i].value_len == 1 ? b[i - 2] != 0 : unsafe; };
  k.sensitive = flag(2, false);
  k.always_sensitive = flag(3, false);
  k.extractable = flag(4, true);
  k.never_extractable = flag(5, false);
  k.local = flag(6, false);
  k.is_private = flag(7, false);
  k.token = flag(8, false);
  k.encrypt = flag(9, false);
  k.decrypt = flag(10, false);
  if (t[0].value_len != sizeof k.key_type) k.key_type = ~0UL;
  if (t[1].value_len != sizeof k.value_len) k.value_len = 0;
  return k;
}

// A session copy must be as locked down as its original, minus CKA_TOKEN.
Status CheckCopy(const MasterKey& copy) {
  if (copy.token || !copy.is_private || !copy.sensitive || copy.extractable || !copy.never_extractable ||
      copy.key_type != CKK_AES || copy.value_len != kMasterKeyBytes || !copy.encrypt || !copy.decrypt) {
    return Status(Code::kInternal, "session_copy_weaker",
                  "the session copy of " + copy.label + " does not keep the original's protections");
  }
  return OkStatus();
}

}  // namespace

std::string MasterKeyLabel(std::uint32_t generation) {
  return std::string(kMasterKeyLabelPrefix) + std::to_string(generation);
}

std::optional<std::uint32_t> ParseMasterKeyLabel(std::string_view label) {
  if (!label.starts_with(kMasterKeyLabelPrefix)) return std::nullopt;
  std::string_view digits = label.substr(kMasterKeyLabelPrefix.size());
  if (digits.empty() || digits.front() == '0') return std::nullopt;
  std::uint32_t g = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), g);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return g;
}

Result<std::vector<MasterKey>> ListMasterKeys(const Session& session) {
  ck_object_class_t cls = CKO_SECRET_KEY;
  ck_attribute tmpl[] = {Attr(CKA_CLASS, &cls, sizeof cls), BoolAttr(CKA_TOKEN, true)};
  SK_ASSIGN_OR_RETURN(auto handles, FindObjects(session, tmpl));
  std::vector<MasterKey> keys;
  for (ck_object_handle_t h : handles) {
    auto label = GetString(session, h, CKA_LABEL);
    if (!label.ok()) continue;  // no label: not ours
    auto g = ParseMasterKeyLabel(*label);
    if (!g) continue;
    SK_ASSIGN_OR_RETURN(MasterKey k, ReadMasterKey(session, h, *g, std::move(label).value()));
    keys.push_back(std::move(k));
  }
  std::sort(keys.begin(), keys.end(),
            [](const auto& a, const auto& b) { return a.generation < b.generation; });
  for (std::size_t i = 1; i < keys.size(); ++i) {
    if (keys[i].generation == keys[i - 1].generation) {
      return Status(
          Code::kCorruption, "master_key_duplicate",
          "two keys on the token are labelled " + keys[i].label + "; remove the one sealkeep did not make");
    }
  }
  return keys;
}

Status CheckMasterKey(const MasterKey& key) {
  if (!key.sensitive || key.extractable || !key.always_sensitive || !key.never_extractable) {
    return Status(Code::kFailedPrecondition, "master_key_extractable",
                  "master key " + key.label + " is not safe to use: it is" +
                      (key.sensitive ? "" : " not sensitive,") + (key.extractable ? " extractable," : "") +
                      (key.always_sensitive ? "" : " not always-sensitive,") +
                      (key.never_extractable ? "" : " not never-extractable,") +
                      " so its bytes can be or could have been read out of the token");
  }
  auto invalid = [&](const std::string& why) {
    return Status(Code::kFailedPrecondition, "master_key_invalid", "master key " + key.label + " " + why);
  };
  if (key.key_type != CKK_AES || key.value_len != kMasterKeyBytes) return invalid("is not an AES-256 key");
  if (!key.token || !key.is_private) return invalid("is not a private token object");
  if (!key.encrypt || !key.decrypt) return invalid("may not encrypt and decrypt");
  if (key.id.size() != kKeysetIdSize) return invalid("has no 8-byte keyset id in CKA_ID");
  return OkStatus();
}

Result<KeysetId> KeysetOf(const std::vector<MasterKey>& keys) {
  KeysetId id{};
  if (keys.empty() || keys.front().id.size() != id.size()) {
    return Status(Code::kInternal, "keyset_inconsistent", "no checked master key to take a keyset id from");
  }
  std::copy(keys.front().id.begin(), keys.front().id.end(), id.begin());
  for (const auto& k : keys) {
    if (k.id != keys.front().id) {
      return Status(Code::kCorruption, "keyset_inconsistent",
                    "master keys " + keys.front().label + " and " + k.label +
                        " carry different keyset ids; they are not one key set");
    }
  }
  return id;
}

Result<MasterKey> GenerateMasterKey(const Session& session, std::uint32_t generation,
                                    const KeysetId& keyset) {
  ck_object_class_t cls = CKO_SECRET_KEY;
  ck_key_type_t type = CKK_AES;
  unsigned long len = kMasterKeyBytes;
  std::string label = MasterKeyLabel(generation);
  KeysetId id = keyset;
  ck_attribute tmpl[] = {
      Attr(CKA_CLASS, &cls, sizeof cls),     Attr(CKA_KEY_TYPE, &type, sizeof type),
      Attr(CKA_VALUE_LEN, &len, sizeof len), Attr(CKA_LABEL, label.data(), label.size()),
      Attr(CKA_ID, id.data(), id.size()),    BoolAttr(CKA_TOKEN, true),
      BoolAttr(CKA_PRIVATE, true),           BoolAttr(CKA_SENSITIVE, true),
      BoolAttr(CKA_EXTRACTABLE, false),      BoolAttr(CKA_ENCRYPT, true),
      BoolAttr(CKA_DECRYPT, true),           BoolAttr(CKA_WRAP, false),
      BoolAttr(CKA_UNWRAP, false),           BoolAttr(CKA_SIGN, false),
      BoolAttr(CKA_VERIFY, false),           BoolAttr(CKA_DERIVE, false),
  };
  ck_mechanism mech{CKM_AES_KEY_GEN, nullptr, 0};
  ck_object_handle_t h = CK_INVALID_HANDLE;
  ck_rv_t rv = session.fn().C_GenerateKey(session.handle(), &mech, tmpl, std::size(tmpl), &h);
  if (rv != CKR_OK) return RvError(rv, "C_GenerateKey of " + label);
  SK_ASSIGN_OR_RETURN(MasterKey k, ReadMasterKey(session, h, generation, label));
  Status st = CheckMasterKey(k);
  if (!st.ok()) {
    (void)DestroyObject(session, h);  // the token did not make what we asked for; leave nothing behind
    return st.WithContext("the token generated an unusable key");
  }
  return k;
}

Result<ck_object_handle_t> SessionCopy(const Session& session, const MasterKey& key) {
  ck_attribute tmpl[] = {BoolAttr(CKA_TOKEN, false)};
  ck_object_handle_t copy = CK_INVALID_HANDLE;
  ck_rv_t rv = session.fn().C_CopyObject(session.handle(), key.handle, tmpl, std::size(tmpl), &copy);
  if (rv != CKR_OK) return RvError(rv, "C_CopyObject of " + key.label + " into a session object");
  auto read = ReadMasterKey(session, copy, key.generation, key.label);
  Status st = read.ok() ? CheckCopy(*read) : read.status();
  if (!st.ok()) {
    (void)DestroyObject(session, copy);
    return st;
  }
  return copy;
}

}  // namespace sk::hsm::pkcs11
