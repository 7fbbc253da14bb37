#include "hsm/tpm/pcr.h"

#include <charconv>

#include "hsm/tpm/esys_context.h"
#include "hsm/tpm/tpm_errors.h"

namespace sk::hsm::tpm {
namespace {

Status BadPcrs(const std::string& why) { return InvalidArgument("bad PCR list: " + why, "bad_pcrs"); }

}  // namespace

Result<std::uint32_t> ParsePcrList(std::string_view text) {
  if (text.empty() || text == "none") return std::uint32_t{0};
  std::uint32_t mask = 0;
  while (true) {
    std::size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    int n = -1;
    auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), n);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size()) {
      return BadPcrs("'" + std::string(item) + "' is not a PCR number");
    }
    if (n < 0 || n >= kNumPcrs) return BadPcrs("PCR " + std::to_string(n) + " is outside 0-23");
    if ((mask & (1u << n)) != 0) return BadPcrs("PCR " + std::to_string(n) + " is listed twice");
    mask |= 1u << n;
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return mask;
}

Result<std::uint32_t> PcrMaskFromList(const std::vector<int>& pcrs) {
  std::uint32_t mask = 0;
  for (int n : pcrs) {
    if (n < 0 || n >= kNumPcrs) return BadPcrs("PCR " + std::to_string(n) + " is outside 0-23");
    if ((mask & (1u << n)) != 0) return BadPcrs("PCR " + std::to_string(n) + " is listed twice");
    mask |= 1u << n;
  }
  return mask;
}

std::vector<int> PcrListFromMask(std::uint32_t mask) {
  std::vector<int> out;
  for (int i = 0; i < kNumPcrs; ++i)
    if ((mask & (1u << i)) != 0) out.push_back(i);
  return out;
}

std::string FormatPcrMask(std::uint32_t mask) {
  std::string out;
  for (int n : PcrListFromMask(mask)) out += (out.empty() ? "" : ",") + std::to_string(n);
  return out.empty() ? "none" : out;
}

int PcrCount(std::uint32_t mask) { return static_cast<int>(PcrListFromMask(mask).size()); }

TPML_PCR_SELECTION PcrSelection(std::uint32_t mask) {
  TPML_PCR_SELECTION sel{};
  if ((mask & kPcrMaskAll) == 0) return sel;
  sel.count = 1;
  sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
  sel.pcrSelections[0].sizeofSelect = 3;
  for (int i = 0; i < 3; ++i) sel.pcrSelections[0].pcrSelect[i] = static_cast<BYTE>((mask >> (8 * i)) & 0xFF);
  return sel;
}

Result<std::vector<Digest>> ReadPcrs(ESYS_CONTEXT* ctx, std::uint32_t mask) {
  std::vector<Digest> values;
  for (int n : PcrListFromMask(mask)) {
    TPML_PCR_SELECTION in = PcrSelection(1u << n);
    UINT32 update_counter = 0;
    TPML_PCR_SELECTION* out_sel = nullptr;
    TPML_DIGEST* out_values = nullptr;
    TSS2_RC rc = Esys_PCR_Read(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &in, &update_counter, &out_sel,
                               &out_values);
    if (rc != TSS2_RC_SUCCESS) return TpmError("TPM2_PCR_Read of PCR " + std::to_string(n), rc);
    EsysPtr<TPML_PCR_SELECTION> sel_guard(out_sel);
    EsysPtr<TPML_DIGEST> values_guard(out_values);
    if (out_values->count != 1 || out_values->digests[0].size != kDigestSize) {
      return Status(Code::kFailedPrecondition, kTpmError,
                    "the TPM has no sha256 value for PCR " + std::to_string(n) +
                        " (is the sha256 PCR bank allocated?)");
    }
    Digest d{};
    std::copy(out_values->digests[0].buffer, out_values->digests[0].buffer + kDigestSize, d.begin());
    values.push_back(d);
  }
  return values;
}

Digest PcrComposite(const std::vector<Digest>& values) {
  if (values.empty()) return Digest{};
  Sha256Hasher h;
  for (const Digest& d : values) h.Update(d);
  return h.Finish();
}

std::vector<int> DifferingPcrs(std::uint32_t mask, const std::vector<Digest>& recorded,
                               const std::vector<Digest>& current) {
  std::vector<int> out;
  std::vector<int> pcrs = PcrListFromMask(mask);
  for (std::size_t i = 0; i < pcrs.size(); ++i) {
    if (i >= recorded.size() || i >= current.size() || recorded[i] != current[i]) out.push_back(pcrs[i]);
  }
  return out;
}

}  // namespace sk::hsm::tpm
