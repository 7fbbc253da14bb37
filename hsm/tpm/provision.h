// Provisioning a TPM seal: the state folder's record, the first sealed master-key
// generation, and the two NV anchor indices. Safe to run again: it creates what is
// missing, checks what exists (unsealing it and authorising to the NV indices), and says
// which was which. It never replaces an existing seal or index; to change the PCRs of
// an existing seal, re-seal through the running agent (TpmBackend::Reseal).
//
// Order, so that an interrupted run is finished by the next one: the record (keyset id),
// then generation 1's sealed file, then the NV indices, then their first write. Before
// writing a new record it refuses NV indices that already exist (another installation's,
// or a leftover: undefine it with `tpm2_nvundefine <handle> -C o`, or pick other handles).
//
// The auth value: when config.auth_file is set, or $CREDENTIALS_DIRECTORY/tpm-auth exists,
// generation 1 is sealed with PolicyAuthValue and that credential; otherwise without one.
// The PCRs: config.pcrs (sha256 bank; empty: none), sealed to their current values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "crypto/status.h"
#include "hsm/backend_config.h"

namespace sk::hsm::tpm {

struct ProvisionOptions {
  // Owner hierarchy auth (creating the primary, defining NV indices); empty: empty auth.
  std::string owner_auth_file;
};

struct ProvisionStep {
  std::string item;    // "record", "sealed key", "NV counter", "NV anchor"
  std::string state;   // "created", "exists", "initialised"
  std::string detail;  // what it is: keyset id, generation and policy, handle and value
};

struct ProvisionReport {
  std::string tpm;        // DescribeTpm()
  std::string keyset_id;  // hex
  std::vector<ProvisionStep> steps;
  std::vector<std::string> notes;  // e.g. --pcrs differing from an existing seal
  bool created_anything() const;
};

Result<ProvisionReport> ProvisionTpm(const TpmConfig& config, const ProvisionOptions& options = {});

}  // namespace sk::hsm::tpm
