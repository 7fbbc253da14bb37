// Provisioning a PKCS#11 token for sealkeep, and reporting what it holds.
// The library behind `sealkeep hsm provision` and `sealkeep hsm status`
// (tools/cli/hsm_commands.cc); rotation and retirement go through the backend.
//
// Provision():
//   - with `init`: when no token carries the label, initialises a free slot's token
//     (C_InitToken with the SO PIN from so_pin_file, then C_InitPIN of the user PIN as
//     SO). A token that already carries the label is never re-initialised (that would
//     destroy it): the report says it exists.
//   - logs in as user; when the token holds no master key, generates generation 1
//     with a fresh random keyset id; existing generations are checked (an extractable
//     one fails with master_key_extractable) and left as they are;
//   - when the token has no anchor object, creates it holding {seq 0, zero hash,
//     counter 0} sealed under the current generation; an existing anchor is never
//     replaced (that would undo its protection), only reported.
// Running it twice is safe: the second run creates nothing and reports what exists.
//
// InspectToken() logs in and lists sealkeep's objects and their attributes, and the
// anchor's value; never key bytes (it never asks for CKA_VALUE of a key).
//
// Both are for an admin's process; they are not thread-safe with each other.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "crypto/secret_bytes.h"
#include "crypto/status.h"
#include "hsm/backend_config.h"
#include "hsm/key_backend.h"

namespace sk::hsm::pkcs11 {

struct ProvisionOptions {
  Pkcs11Config config;      // module, token label, user PIN file
  bool init = false;        // initialise a free slot when the label is absent
  std::string so_pin_file;  // SO PIN, needed with `init`
  // PINs held in memory by the caller (borrowed), used instead of the files when set.
  const SecretBytes* user_pin = nullptr;
  const SecretBytes* so_pin = nullptr;
};

struct MasterKeyStatus {
  std::uint32_t generation = 0;
  std::string label;
  std::string keyset_id;  // hex of CKA_ID
  bool sensitive = false;
  bool always_sensitive = false;
  bool extractable = false;
  bool never_extractable = false;
  bool local = false;  // generated in the token
  bool usable = false;
  std::string problem;  // why not usable ("" when usable)
};

struct AnchorStatus {
  bool present = false;
  std::size_t objects = 0;  // anchor objects on the token: 1, or 2 after a crash mid-advance
  bool verifies = false;
  std::string problem;  // why it does not verify
  Anchor value;         // meaningful when verifies
  std::uint32_t sealed_by = 0;
};

struct TokenStatus {
  std::string module;
  std::string label;
  std::string serial;
  std::string manufacturer;
  std::string model;
  bool user_pin_count_low = false;
  bool user_pin_final_try = false;
  bool user_pin_locked = false;
  std::string keyset_id;  // "" when the keys disagree or there are none
  std::uint32_t current_generation = 0;
  std::vector<MasterKeyStatus> keys;  // ascending by generation
  AnchorStatus anchor;
};

struct ProvisionReport {
  bool token_initialised = false;   // this run initialised the token
  bool master_key_created = false;  // this run generated generation 1
  bool anchor_created = false;      // this run created the anchor object
  TokenStatus status;               // what the token holds afterwards
};

Result<ProvisionReport> Provision(const ProvisionOptions& options);

// Only the token step of Provision(): when no token carries the label, initialises a free
// slot's token with it (SO PIN from so_pin_file) and sets the user PIN. Returns whether
// it did; false when the label exists already (that token is left alone).
Result<bool> InitToken(const ProvisionOptions& options);

Result<TokenStatus> InspectToken(const Pkcs11Config& config);

// Whether a token carries config.token_label (no login; the module is loaded and released).
Result<bool> TokenExists(const Pkcs11Config& config);

}  // namespace sk::hsm::pkcs11
