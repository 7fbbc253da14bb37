#include "hsm/tpm/record_format.h"

#include <algorithm>
#include <string>

#include "hsm/tpm/tpm_errors.h"

namespace sk::hsm::tpm {
namespace {

constexpr std::uint8_t kMagic[4] = {'S', 'K', 'T', 'R'};

Status Bad(const std::string& why) {
  return Status(Code::kCorruption, kMalformedState, std::string(kRecordFileName) + ": " + why);
}

}  // namespace

bool IsNvIndexHandle(std::uint32_t handle) { return (handle >> 24) == 0x01; }
bool IsPersistentHandle(std::uint32_t handle) { return (handle >> 24) == 0x81; }

Bytes EncodeRecord(const TpmRecord& record) {
  ByteWriter w;
  w.Raw(ByteView(kMagic, sizeof kMagic));
  w.U8(kRecordVersion);
  w.Raw(record.keyset_id);
  w.U32(record.nv_counter_index);
  w.U32(record.nv_anchor_index);
  w.U32(record.primary_handle);
  return std::move(w).Take();
}

Result<TpmRecord> ParseRecord(ByteView bytes) {
  if (bytes.size() != kRecordSize) return Bad("size " + std::to_string(bytes.size()) + ", expected 25");
  ByteReader r(bytes);
  ByteView magic;
  std::uint8_t version = 0;
  TpmRecord rec;
  r.Raw(sizeof kMagic, magic);
  r.U8(version);
  r.Fixed(rec.keyset_id);
  r.U32(rec.nv_counter_index);
  r.U32(rec.nv_anchor_index);
  r.U32(rec.primary_handle);
  if (!r.AtEnd()) return Bad("truncated");
  if (!std::equal(magic.begin(), magic.end(), kMagic)) return Bad("not a sealkeep TPM record (bad magic)");
  if (version != kRecordVersion) return Bad("unknown version " + std::to_string(version));
  if (!IsNvIndexHandle(rec.nv_counter_index) || !IsNvIndexHandle(rec.nv_anchor_index) ||
      rec.nv_counter_index == rec.nv_anchor_index) {
    return Bad("NV index handles are not two distinct NV indices");
  }
  if (rec.primary_handle != 0 && !IsPersistentHandle(rec.primary_handle)) {
    return Bad("primary handle is neither 0 nor a persistent handle");
  }
  return rec;
}

}  // namespace sk::hsm::tpm
