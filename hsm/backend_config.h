// Configuration of the key backends, as read from the agent's config file
// ([backend] kind = "pkcs11" | "tpm", with a [pkcs11] or [tpm] table).
// Plain data; no secrets (PINs and auth values are named by file, never held here).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "crypto/status.h"
#include "hsm/key_backend.h"

namespace sk::hsm {

struct Pkcs11Config {
  std::string module = "/usr/lib/softhsm/libsofthsm2.so";  // dlopen()ed
  std::string token_label = "sealkeep";                    // found by label, never by slot number
  std::string pin_file;                                    // empty: $CREDENTIALS_DIRECTORY/hsm-pin
  std::size_t max_sessions = 8;                            // session pool size (concurrent wrap/unwrap)
  // SoftHSM2 only: its token folder (softhsm2.conf's directories.tokendir). SoftHSM2 writes
  // token objects without fsync, so a power cut could lose a new key generation or anchor.
  // When set, every change to the token (anchor advance, rotate, retire, provisioning) is
  // followed by an fsync of each file and folder under it. Empty: trust the module (a
  // hardware HSM stores an object before C_CreateObject/C_GenerateKey return).
  std::string sync_dir;
};

struct TpmConfig {
  std::string tcti = "device:/dev/tpmrm0";  // or "swtpm:host=127.0.0.1,port=P"
  std::string state_dir;                    // holds the sealed master-key files and policy record
  std::string auth_file;  // empty: no PolicyAuthValue, unless $CREDENTIALS_DIRECTORY/tpm-auth exists
  std::uint32_t nv_counter_index = 0x01500100;  // TPMA_NV_COUNTER index (anchor counter)
  std::uint32_t nv_anchor_index = 0x01500101;   // ordinary NV index holding the anchored head
  std::uint32_t primary_handle = 0;             // 0: recreate the primary from the fixed template
  // PCRs (sha256 bank, 0-23) that provisioning seals to; empty: no PCR policy. After
  // provisioning each sealed generation file records its own policy (hsm/tpm/sealed_file_format.h).
  std::vector<int> pcrs;
};

struct BackendConfig {
  std::string kind = "pkcs11";  // "pkcs11" or "tpm"
  Pkcs11Config pkcs11;
  TpmConfig tpm;
};

// Opens the configured backend: loads the module or TCTI, logs in / unseals, checks the
// master key. Errors carry the backend's specific reason (pin_incorrect, boot_state_changed...).
Result<std::unique_ptr<KeyBackend>> OpenBackend(const BackendConfig& config);

}  // namespace sk::hsm
