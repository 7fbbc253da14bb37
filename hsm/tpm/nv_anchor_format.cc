#include "hsm/tpm/nv_anchor_format.h"

#include <string>

#include "hsm/tpm/tpm_errors.h"

namespace sk::hsm::tpm {

Bytes EncodeNvAnchor(const NvAnchorContents& c) {
  ByteWriter w;
  w.U8(kNvAnchorVersion);
  w.Raw(c.keyset_id);
  w.U64(c.anchor.seq);
  w.Raw(c.anchor.head_hash);
  w.U64(c.anchor.counter);
  return std::move(w).Take();
}

Result<NvAnchorContents> ParseNvAnchor(ByteView bytes) {
  auto bad = [](const std::string& why) {
    return Status(Code::kCorruption, kMalformedState, "NV anchor contents: " + why);
  };
  if (bytes.size() != kNvAnchorSize) return bad("size " + std::to_string(bytes.size()) + ", expected 57");
  ByteReader r(bytes);
  std::uint8_t version = 0;
  NvAnchorContents c;
  r.U8(version);
  r.Fixed(c.keyset_id);
  r.U64(c.anchor.seq);
  r.Fixed(c.anchor.head_hash);
  r.U64(c.anchor.counter);
  if (!r.AtEnd()) return bad("truncated");
  if (version != kNvAnchorVersion) return bad("unknown version " + std::to_string(version));
  return c;
}

}  // namespace sk::hsm::tpm
