// PCR selections and values: sealkeep seals to PCRs of the sha256 bank only.
//
// A selection is a set of PCR numbers 0-23, kept as a 24-bit mask (bit i = PCR i). The
// composite digest PolicyPCR checks is SHA-256 over the selected PCR values concatenated
// in ascending PCR order (TPM 2.0 Part 3, TPM2_PolicyPCR).
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/mac.h"
#include "crypto/status.h"

namespace sk::hsm::tpm {

inline constexpr int kNumPcrs = 24;
inline constexpr std::uint32_t kPcrMaskAll = (1u << kNumPcrs) - 1;

// "7,11" -> mask with bits 7 and 11; "" or "none" -> 0. invalid_argument on anything else
// (a number outside 0-23, a repeated PCR, a stray character).
Result<std::uint32_t> ParsePcrList(std::string_view text);
// Checks numbers from an API caller; the same rules as ParsePcrList.
Result<std::uint32_t> PcrMaskFromList(const std::vector<int>& pcrs);
std::vector<int> PcrListFromMask(std::uint32_t mask);
// "7,11", or "none".
std::string FormatPcrMask(std::uint32_t mask);
int PcrCount(std::uint32_t mask);

// TPML_PCR_SELECTION for the sha256 bank (count 1, 3 select bytes; count 0 when mask is 0).
TPML_PCR_SELECTION PcrSelection(std::uint32_t mask);

// Current values of the selected PCRs, ascending. One TPM2_PCR_Read per PCR.
Result<std::vector<Digest>> ReadPcrs(ESYS_CONTEXT* ctx, std::uint32_t mask);

// SHA-256 of the values concatenated; all zero for no values.
Digest PcrComposite(const std::vector<Digest>& values);

// The PCRs among `mask` whose current value differs from `recorded` (same order).
std::vector<int> DifferingPcrs(std::uint32_t mask, const std::vector<Digest>& recorded,
                               const std::vector<Digest>& current);

}  // namespace sk::hsm::tpm
