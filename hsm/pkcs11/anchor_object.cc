#include "hsm/pkcs11/anchor_object.h"

#include <string>

#include "crypto/random.h"
#include "hsm/pkcs11/errors.h"
#include "hsm/pkcs11/objects.h"
#include "hsm/pkcs11/token_gcm.h"

namespace sk::hsm::pkcs11 {
namespace {

Status Invalid(const std::string& why) { return Status(Code::kCorruption, "anchor_invalid", why); }

}  // namespace

Result<std::optional<ck_object_handle_t>> FindAnchorObject(const Session& session) {
  ck_object_class_t cls = CKO_DATA;
  std::string label(kAnchorLabel);
  ck_attribute tmpl[] = {
      Attr(CKA_CLASS, &cls, sizeof cls),
      BoolAttr(CKA_TOKEN, true),
      BoolAttr(CKA_PRIVATE, true),
      Attr(CKA_LABEL, label.data(), label.size()),
  };
  SK_ASSIGN_OR_RETURN(auto found, FindObjects(session, tmpl));
  if (found.empty()) return std::optional<ck_object_handle_t>();
  if (found.size() > 1) {
    return Status(Code::kCorruption, "anchor_duplicate",
                  "the token holds " + std::to_string(found.size()) + " private data objects labelled '" +
                      label + "'; sealkeep made one");
  }
  return std::optional<ck_object_handle_t>(found.front());
}

Result<AnchorRecord> ReadAnchor(const Session& session, ck_object_handle_t object, const KeysetId& keyset,
                                const KeyHandles& keys) {
  SK_ASSIGN_OR_RETURN(Bytes value, GetBytes(session, object, CKA_VALUE));
  SK_ASSIGN_OR_RETURN(AnchorParts parts, ParseAnchorValue(value));
  if (parts.record.keyset_id != keyset) {
    return Invalid("the anchor belongs to keyset " + HexEncode(parts.record.keyset_id) +
                   ", not to this token's " + HexEncode(keyset));
  }
  auto key = keys.find(parts.record.generation);
  if (key == keys.end()) {
    return Invalid("the anchor was sealed by master-key generation " +
                   std::to_string(parts.record.generation) + ", which is not on the token");
  }
  // GMAC check: decrypt an empty ciphertext; only the tag is verified.
  Bytes aad = AnchorAad(parts.sealed_part);
  Bytes out(parts.tag.size());
  std::size_t written = 0;
  Status st =
      GcmDecrypt(session.fn(), session.handle(), key->second, parts.iv, aad, parts.tag, out, &written);
  if (st.reason() == "does_not_verify") return Invalid("the anchor's tag does not verify: it was altered");
  SK_RETURN_IF_ERROR(st);
  return parts.record;
}

Result<Bytes> SealAnchor(const Session& session, ck_object_handle_t key, const AnchorRecord& record) {
  Bytes value = EncodeAnchorSealedPart(record);
  SK_ASSIGN_OR_RETURN(Bytes iv, RandomBytes(kGcmIvBytes));
  Bytes aad = AnchorAad(value);
  Bytes tag(kGcmTagBytes);
  SK_RETURN_IF_ERROR(GcmEncrypt(session.fn(), session.handle(), key, iv, aad, {}, tag));
  value.insert(value.end(), iv.begin(), iv.end());
  value.insert(value.end(), tag.begin(), tag.end());
  return value;
}

Result<ck_object_handle_t> CreateAnchorObject(const Session& session, ByteView value) {
  ck_object_class_t cls = CKO_DATA;
  std::string label(kAnchorLabel);
  std::string app(kAnchorApplication);
  Bytes v(value.begin(), value.end());
  ck_attribute tmpl[] = {
      Attr(CKA_CLASS, &cls, sizeof cls),
      BoolAttr(CKA_TOKEN, true),
      BoolAttr(CKA_PRIVATE, true),
      BoolAttr(CKA_MODIFIABLE, true),
      Attr(CKA_LABEL, label.data(), label.size()),
      Attr(CKA_APPLICATION, app.data(), app.size()),
      Attr(CKA_VALUE, v.data(), v.size()),
  };
  ck_object_handle_t h = CK_INVALID_HANDLE;
  ck_rv_t rv = session.fn().C_CreateObject(session.handle(), tmpl, std::size(tmpl), &h);
  if (rv != CKR_OK) return RvError(rv, "C_CreateObject of the anchor");
  return h;
}

Status WriteAnchorValue(const Session& session, ck_object_handle_t object, ByteView value) {
  Bytes v(value.begin(), value.end());
  ck_attribute a = Attr(CKA_VALUE, v.data(), v.size());
  ck_rv_t rv = session.fn().C_SetAttributeValue(session.handle(), object, &a, 1);
  if (rv != CKR_OK) return RvError(rv, "C_SetAttributeValue of the anchor");
  SK_ASSIGN_OR_RETURN(Bytes back, GetBytes(session, object, CKA_VALUE));
  if (back != v) {
    return Status(Code::kUnavailable, "anchor_write_lost", "the token did not keep the new anchor value");
  }
  return OkStatus();
}

}  // namespace sk::hsm::pkcs11
