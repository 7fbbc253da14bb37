#include "hsm/tpm/sealed_file_format.h"

#include <algorithm>
#include <cstdio>

#include "hsm/tpm/pcr.h"
#include "hsm/tpm/tpm_errors.h"

namespace sk::hsm::tpm {
namespace {

constexpr std::uint8_t kMagic[4] = {'S', 'K', 'T', 'S'};

Status Bad(const std::string& why) {
  return Status(Code::kCorruption, kMalformedState, "sealed key file: " + why);
}

// A marshalled TPM2B: its own big-endian size must account for all bytes after it.
bool Tpm2bSizeMatches(ByteView area) {
  return area.size() >= 2 && static_cast<std::size_t>((area[0] << 8) | area[1]) == area.size() - 2;
}

}  // namespace

std::string SealedFileName(std::uint32_t generation) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "master-%08u.sealed", generation);
  return buf;
}

std::optional<std::uint32_t> ParseSealedFileName(const std::string& name) {
  constexpr std::string_view kPrefix = "master-", kSuffix = ".sealed";
  if (name.size() != kPrefix.size() + 8 + kSuffix.size()) return std::nullopt;
  if (name.compare(0, kPrefix.size(), kPrefix) != 0) return std::nullopt;
  if (name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) return std::nullopt;
  std::uint32_t g = 0;
  for (std::size_t i = kPrefix.size(); i < kPrefix.size() + 8; ++i) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    g = g * 10 + static_cast<std::uint32_t>(name[i] - '0');
  }
  if (g == 0) return std::nullopt;
  return g;
}

Bytes EncodeSealedFile(const SealedFile& f) {
  ByteWriter w;
  w.Raw(ByteView(kMagic, sizeof kMagic));
  w.U8(kSealedFileVersion);
  w.Raw(f.keyset_id);
  w.U32(f.generation);
  w.U8(f.flags);
  w.U32(f.pcr_mask);
  for (const Digest& d : f.pcr_values) w.Raw(d);
  w.Raw(f.pcr_composite);
  w.Var16(f.public_area);
  w.Var16(f.private_area);
  return std::move(w).Take();
}

Result<SealedFile> ParseSealedFile(ByteView bytes) {
  if (bytes.size() > kMaxSealedFile) return Bad("larger than 4096 bytes");
  ByteReader r(bytes);
  ByteView magic;
  std::uint8_t version = 0;
  SealedFile f;
  r.Raw(sizeof kMagic, magic);
  r.U8(version);
  r.Fixed(f.keyset_id);
  r.U32(f.generation);
  r.U8(f.flags);
  r.U32(f.pcr_mask);
  if (!r.ok()) return Bad("truncated header");
  if (!std::equal(magic.begin(), magic.end(), kMagic)) return Bad("not a sealkeep sealed key (bad magic)");
  if (version != kSealedFileVersion) return Bad("unknown version " + std::to_string(version));
  if (f.generation == 0) return Bad("generation 0");
  if ((f.flags & ~kFlagAuthValue) != 0) return Bad("unknown flags");
  if ((f.pcr_mask & ~kPcrMaskAll) != 0) return Bad("PCR selection names PCRs above 23");
  for (int i = 0; i < PcrCount(f.pcr_mask); ++i) {
    Digest d{};
    if (!r.Fixed(d)) return Bad("truncated PCR values");
    f.pcr_values.push_back(d);
  }
  if (!r.Fixed(f.pcr_composite)) return Bad("truncated PCR digest");
  if (f.pcr_composite != PcrComposite(f.pcr_values)) return Bad("PCR digest does not match the PCR values");
  ByteView pub, priv;
  if (!r.Var16(pub, kMaxTpmArea) || pub.empty()) return Bad("bad public area length");
  if (!r.Var16(priv, kMaxTpmArea) || priv.empty()) return Bad("bad private area length");
  if (!r.AtEnd()) return Bad("trailing bytes");
  if (!Tpm2bSizeMatches(pub) || !Tpm2bSizeMatches(priv)) return Bad("TPM2B size fields do not match");
  f.public_area.assign(pub.begin(), pub.end());
  f.private_area.assign(priv.begin(), priv.end());
  return f;
}

Result<SecretBytes> EncodePayload(const SealedPayload& p) {
  if (p.master_key.size() != kMasterKeySize || p.anchor_auth.size() != kAnchorAuthSize) {
    return Internal("sealed payload keys have the wrong size");
  }
  SecretBytes out(kPayloadSize);
  auto b = out.Expose();
  b[0] = kPayloadVersion;
  std::copy(p.keyset_id.begin(), p.keyset_id.end(), b.begin() + 1);
  for (int i = 0; i < 4; ++i)
    b[9 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(p.generation >> (24 - 8 * i));
  auto mk = p.master_key.Expose();
  auto aa = p.anchor_auth.Expose();
  std::copy(mk.begin(), mk.end(), b.begin() + 13);
  std::copy(aa.begin(), aa.end(), b.begin() + 13 + kMasterKeySize);
  return out;
}

Result<SealedPayload> ParsePayload(std::span<const std::uint8_t> b) {
  if (b.size() != kPayloadSize || b[0] != kPayloadVersion) {
    return Status(Code::kCorruption, kMalformedState, "the unsealed payload is not a sealkeep master key");
  }
  SealedPayload p;
  std::copy(b.begin() + 1, b.begin() + 9, p.keyset_id.begin());
  for (std::size_t i = 9; i < 13; ++i) p.generation = (p.generation << 8) | b[i];
  p.master_key = SecretBytes::CopyFrom(b.subspan(13, kMasterKeySize));
  p.anchor_auth = SecretBytes::CopyFrom(b.subspan(13 + kMasterKeySize, kAnchorAuthSize));
  return p;
}

}  // namespace sk::hsm::tpm
