#include "hsm/pkcs11/anchor_object.h"

#include <optional>
#include <string>

#include "crypto/random.h"
#include "crypto/reasons.h"
#include "hsm/pkcs11/errors.h"
#include "hsm/pkcs11/objects.h"
#include "hsm/pkcs11/token_gcm.h"

namespace sk::hsm::pkcs11 {
namespace {

Status Invalid(const std::string& why) { return Status(Code::kCorruption, "anchor_invalid", why); }

// Parses and verifies one object's value.
Result<AnchorRecord> VerifyObject(const Session& session, ck_object_handle_t object, const KeysetId& keyset,
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
  // GMAC check: decrypt an empty ciphertext, so only the tag is verified.
  Bytes aad = AnchorAad(parts.sealed_part);
  Bytes out(parts.tag.size());
  std::size_t written = 0;
  Status st =
      GcmDecrypt(session.fn(), session.handle(), key->second, parts.iv, aad, parts.tag, out, &written);
  if (st.reason() == sk::reason::kDoesNotVerify)
    return Invalid("the anchor's tag does not verify: it was altered");
  SK_RETURN_IF_ERROR(st);
  return parts.record;
}

bool SameAnchor(const Anchor& a, const Anchor& b) {
  return a.seq == b.seq && a.head_hash == b.head_hash && a.counter == b.counter;
}

Result<Bytes> Seal(const Session& session, ck_object_handle_t key, const AnchorRecord& record) {
  Bytes value = EncodeAnchorSealedPart(record);
  SK_ASSIGN_OR_RETURN(Bytes iv, RandomBytes(kGcmIvBytes));
  Bytes aad = AnchorAad(value);
  Bytes tag(kGcmTagBytes);
  SK_RETURN_IF_ERROR(GcmEncrypt(session.fn(), session.handle(), key, iv, aad, {}, tag));
  value.insert(value.end(), iv.begin(), iv.end());
  value.insert(value.end(), tag.begin(), tag.end());
  return value;
}

Result<ck_object_handle_t> CreateObject(const Session& session, Bytes value) {
  ck_object_class_t cls = CKO_DATA;
  std::string label(kAnchorLabel);
  std::string app(kAnchorApplication);
  ck_attribute tmpl[] = {
      Attr(CKA_CLASS, &cls, sizeof cls),
      BoolAttr(CKA_TOKEN, true),
      BoolAttr(CKA_PRIVATE, true),
      BoolAttr(CKA_MODIFIABLE, false),
      Attr(CKA_LABEL, label.data(), label.size()),
      Attr(CKA_APPLICATION, app.data(), app.size()),
      Attr(CKA_VALUE, value.data(), value.size()),
  };
  ck_object_handle_t h = CK_INVALID_HANDLE;
  ck_rv_t rv = session.fn().C_CreateObject(session.handle(), tmpl, std::size(tmpl), &h);
  if (rv != CKR_OK) return RvError(rv, "C_CreateObject of the anchor");
  return h;
}

}  // namespace

Result<std::vector<ck_object_handle_t>> FindAnchorObjects(const Session& session) {
  ck_object_class_t cls = CKO_DATA;
  std::string label(kAnchorLabel);
  std::string app(kAnchorApplication);
  ck_attribute tmpl[] = {
      Attr(CKA_CLASS, &cls, sizeof cls),
      BoolAttr(CKA_TOKEN, true),
      BoolAttr(CKA_PRIVATE, true),
      Attr(CKA_LABEL, label.data(), label.size()),
      Attr(CKA_APPLICATION, app.data(), app.size()),
  };
  return FindObjects(session, tmpl);
}

Result<AnchorRecord> ReadAnchor(const Session& session, const KeysetId& keyset, const KeyHandles& keys) {
  SK_ASSIGN_OR_RETURN(auto objects, FindAnchorObjects(session));
  if (objects.empty()) {
    return Status(Code::kFailedPrecondition, "anchor_missing",
                  "the token has no sealkeep anchor object; run `sealkeep hsm provision`");
  }
  std::optional<AnchorRecord> best;
  Status first_failure;
  for (ck_object_handle_t object : objects) {
    auto rec = VerifyObject(session, object, keyset, keys);
    if (!rec.ok()) {
      if (rec.status().reason() != "anchor_invalid") return rec.status();
      if (first_failure.ok()) first_failure = rec.status();
      continue;
    }
    if (best && best->anchor.counter == rec->anchor.counter && !SameAnchor(best->anchor, rec->anchor)) {
      return Invalid("two anchor objects hold different heads at counter " +
                     std::to_string(rec->anchor.counter));
    }
    if (!best || rec->anchor.counter > best->anchor.counter) best = std::move(rec).value();
  }
  if (!best) return first_failure;
  return *best;
}

Status StoreAnchor(const Session& session, ck_object_handle_t key, const AnchorRecord& record) {
  SK_ASSIGN_OR_RETURN(auto older, FindAnchorObjects(session));
  SK_ASSIGN_OR_RETURN(Bytes value, Seal(session, key, record));
  SK_ASSIGN_OR_RETURN(ck_object_handle_t created, CreateObject(session, value));
  auto back = GetBytes(session, created, CKA_VALUE);
  if (!back.ok() || *back != value) {
    (void)DestroyObject(session, created);
    return Status(Code::kUnavailable, "anchor_write_lost", "the token did not keep the new anchor value");
  }
  for (ck_object_handle_t old : older) (void)DestroyObject(session, old);  // see the header
  return OkStatus();
}

}  // namespace sk::hsm::pkcs11
