// The contents of the NV anchor index: the journal head as last anchored (docs/design.md).
//
//   offset  size  field
//   0       1     format version, 0x01
//   1       8     keyset id (the record's): an anchor of another installation does not parse
//   9       8     seq: global sequence number of the anchored journal head, big-endian
//   17      32    head_hash: hash of that journal entry (zero for an empty journal)
//   49      8     counter: the NV counter's value when this was written, big-endian
//   57            end
//
// The index is defined with exactly 57 bytes and TPMA_NV_WRITEALL, so every write replaces
// the whole anchor in one TPM2_NV_Write (a TPM updates NV atomically per command). The
// counter lives in its own TPM_NT_COUNTER index (nv_anchor.h); the copy here lets a reader
// check counter <= hardware counter. It may be lower after a crash between the increment
// and this write, or after an unclean shutdown moved an orderly counter ahead: callers
// compare (seq, head_hash), never the counters for equality.
//
// Worked example (keyset 0x0123456789abcdef, empty journal, counter 1):
//   01 0123456789abcdef 0000000000000000 00..00 (32 bytes) 0000000000000001
#pragma once

#include <cstdint>

#include "crypto/bytes.h"
#include "crypto/status.h"
#include "hsm/key_backend.h"
#include "hsm/wrapped_blob_format.h"

namespace sk::hsm::tpm {

inline constexpr std::uint8_t kNvAnchorVersion = 0x01;
inline constexpr std::size_t kNvAnchorSize = 57;

struct NvAnchorContents {
  KeysetId keyset_id{};
  Anchor anchor;  // anchor.counter: the counter value at writing
};

Bytes EncodeNvAnchor(const NvAnchorContents& contents);
// malformed_state when the bytes are not an anchor of this layout.
Result<NvAnchorContents> ParseNvAnchor(ByteView bytes);

}  // namespace sk::hsm::tpm
