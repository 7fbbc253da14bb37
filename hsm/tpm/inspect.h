// What a TPM seal looks like, without unsealing it: for `sealkeep tpm status`.
//
// Reads the state folder (record, sealed files), the current values of the PCRs each
// generation is sealed to, and the NV anchor (authorised as owner: OWNERREAD). Never
// reads or prints key bytes; needs no auth value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "crypto/status.h"
#include "hsm/backend_config.h"
#include "hsm/key_backend.h"

namespace sk::hsm::tpm {

struct GenerationStatus {
  std::uint32_t generation = 0;
  std::vector<int> pcrs;       // sha256 bank
  std::string pcr_digest_hex;  // composite digest sealed to
  bool auth_required = false;
  bool pcrs_match = false;          // current PCR values equal the sealed ones
  std::vector<int> differing_pcrs;  // when they do not
};

struct NvIndexStatus {
  std::uint32_t handle = 0;
  bool defined = false;
};

struct TpmStatusReport {
  std::string tpm;  // manufacturer, vendor, firmware
  std::string tcti;
  std::string state_dir;
  std::string keyset_id;
  std::uint32_t primary_handle = 0;           // 0: fixed template
  std::vector<GenerationStatus> generations;  // ascending; the last is current
  NvIndexStatus counter;
  NvIndexStatus anchor;
  std::optional<Anchor> anchored;      // stored seq/head_hash, counter = hardware value
  std::uint64_t stored_counter = 0;    // counter value stored with the anchor
  bool anchor_keyset_matches = false;  // the anchor names this keyset
  std::vector<std::string> problems;   // what would stop the agent from opening
};

// not_provisioned when the state folder has no record; tpm_unavailable when the TPM
// cannot be reached. Other findings (changed PCRs, missing NV indices) are reported in
// `problems`, not as errors.
Result<TpmStatusReport> InspectTpm(const TpmConfig& config, const std::string& owner_auth_file = "");

}  // namespace sk::hsm::tpm
