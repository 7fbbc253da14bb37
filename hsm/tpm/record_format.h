// The TPM backend's record: which keyset a state folder holds and where its anchor lives.
// File <state_dir>/tpm-record, written once at provisioning (temp file, fsync, rename,
// fsync folder) and never changed afterwards.
//
//   offset  size  field
//   0       4     magic "SKTR"
//   4       1     format version, 0x01
//   5       8     keyset id: random at provisioning, the same for every generation; it is
//                 the keyset id of every wrapped blob (hsm/wrapped_blob_format.h)
//   13      4     NV counter index handle, big-endian, in [0x01000000, 0x01FFFFFF]
//   17      4     NV anchor index handle, big-endian, same range, not the counter's
//   21      4     primary key: 0 = created from the fixed template (primary.h) when
//                 needed, else a persistent handle in [0x81000000, 0x81FFFFFF]
//   25            end: a record is exactly 25 bytes
//
// Nothing here is secret and nothing is trusted on its own: at open the keyset id must
// equal the one inside every unsealed payload (sealed_file_format.h) and inside the NV
// anchor (nv_anchor_format.h); the NV handles must accept the anchor auth value from the
// sealed payload; the primary must load the sealed objects. An edited field fails open.
//
// Worked example: keyset 0x0123456789abcdef, default indices, template primary:
//   534b5452 01 0123456789abcdef 01500100 01500101 00000000
#pragma once

#include <cstdint>

#include "crypto/bytes.h"
#include "crypto/status.h"
#include "hsm/wrapped_blob_format.h"

namespace sk::hsm::tpm {

inline constexpr char kRecordFileName[] = "tpm-record";
inline constexpr std::uint8_t kRecordVersion = 0x01;
inline constexpr std::size_t kRecordSize = 25;

struct TpmRecord {
  KeysetId keyset_id{};
  std::uint32_t nv_counter_index = 0;
  std::uint32_t nv_anchor_index = 0;
  std::uint32_t primary_handle = 0;
};

bool IsNvIndexHandle(std::uint32_t handle);
bool IsPersistentHandle(std::uint32_t handle);

Bytes EncodeRecord(const TpmRecord& record);
// malformed_state on any deviation from the layout above.
Result<TpmRecord> ParseRecord(ByteView bytes);

}  // namespace sk::hsm::tpm
