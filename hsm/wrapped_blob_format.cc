#include "hsm/wrapped_blob_format.h"

#include <string>

namespace sk::hsm {

Result<WrappedParts> ParseWrappedBlob(ByteView blob) {
  auto bad = [](const std::string& why) { return Status(Code::kCorruption, "malformed_blob", why); };
  constexpr std::size_t kFixed = kWrappedHeaderSize + kWrapIvSize + kWrapTagSize;
  if (blob.size() < kFixed + 1 || blob.size() > kFixed + kMaxWrappedKey) {
    return bad("wrapped key blob has an impossible size (" + std::to_string(blob.size()) + " bytes)");
  }
  WrappedParts p;
  ByteReader r(blob);
  std::uint8_t version = 0;
  r.U8(version);
  r.U8(p.header.kind);
  r.Fixed(p.header.keyset_id);
  r.U32(p.header.generation);
  if (version != kWrappedBlobVersion) return bad("unknown wrapped blob version " + std::to_string(version));
  if (p.header.kind != kKindPkcs11 && p.header.kind != kKindTpm) {
    return bad("unknown backend kind " + std::to_string(p.header.kind));
  }
  if (p.header.generation == 0) return bad("generation 0 is not valid");
  std::size_t n = blob.size() - kFixed;
  p.header_bytes = blob.subspan(0, kWrappedHeaderSize);
  r.Raw(kWrapIvSize, p.iv);
  r.Raw(n, p.ciphertext);
  r.Raw(kWrapTagSize, p.tag);
  if (!r.AtEnd()) return bad("wrapped blob has trailing bytes");
  return p;
}

Bytes EncodeWrappedHeader(const WrappedHeader& header) {
  ByteWriter w;
  w.U8(kWrappedBlobVersion);
  w.U8(header.kind);
  w.Raw(header.keyset_id);
  w.U32(header.generation);
  return std::move(w).Take();
}

Bytes WrapAad(ByteView header_bytes, ByteView caller_aad) {
  Bytes aad(header_bytes.begin(), header_bytes.end());
  aad.insert(aad.end(), caller_aad.begin(), caller_aad.end());
  return aad;
}

}  // namespace sk::hsm
