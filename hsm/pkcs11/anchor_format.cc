#include "hsm/pkcs11/anchor_format.h"

#include <string>

namespace sk::hsm::pkcs11 {

Bytes EncodeAnchorSealedPart(const AnchorRecord& record) {
  ByteWriter w;
  w.U8(kAnchorFormatVersion);
  w.Raw(record.keyset_id);
  w.U32(record.generation);
  w.U64(record.anchor.seq);
  w.Raw(record.anchor.head_hash);
  w.U64(record.anchor.counter);
  return std::move(w).Take();
}

Bytes AnchorAad(ByteView sealed_part) {
  Bytes aad = ToBytes(kAnchorAadPrefix);
  aad.insert(aad.end(), sealed_part.begin(), sealed_part.end());
  return aad;
}

Result<AnchorParts> ParseAnchorValue(ByteView value) {
  auto bad = [](const std::string& why) { return Status(Code::kCorruption, "anchor_invalid", why); };
  if (value.size() != kAnchorValueSize) {
    return bad("the anchor object holds " + std::to_string(value.size()) + " bytes, not " +
               std::to_string(kAnchorValueSize));
  }
  AnchorParts p;
  ByteReader r(value);
  std::uint8_t version = 0;
  r.U8(version);
  r.Fixed(p.record.keyset_id);
  r.U32(p.record.generation);
  r.U64(p.record.anchor.seq);
  r.Fixed(p.record.anchor.head_hash);
  r.U64(p.record.anchor.counter);
  r.Raw(kAnchorTagOffset - kAnchorIvOffset, p.iv);
  r.Raw(kAnchorValueSize - kAnchorTagOffset, p.tag);
  if (!r.AtEnd()) return bad("the anchor value has the wrong layout");
  if (version != kAnchorFormatVersion) return bad("unknown anchor format version " + std::to_string(version));
  if (p.record.generation == 0) return bad("the anchor names master-key generation 0");
  p.sealed_part = value.subspan(0, kAnchorSealedPartSize);
  return p;
}

}  // namespace sk::hsm::pkcs11
