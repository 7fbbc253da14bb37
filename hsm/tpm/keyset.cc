#include "hsm/tpm/keyset.h"

#include "crypto/bytes.h"
#include "crypto/ct.h"
#include "hsm/credential.h"
#include "hsm/tpm/nv_anchor.h"
#include "hsm/tpm/sealed_key.h"
#include "hsm/tpm/tpm_errors.h"

namespace sk::hsm::tpm {

Result<TpmRecord> LoadRecord(const StateDir& dir) {
  SK_ASSIGN_OR_RETURN(std::optional<Bytes> bytes, dir.Read(kRecordFileName, kRecordSize));
  if (!bytes) {
    return Status(Code::kFailedPrecondition, kNotProvisioned,
                  "no TPM seal in " + dir.path() + " (missing " + kRecordFileName +
                      "); run `sealkeep tpm provision --state " + dir.path() + "`");
  }
  return ParseRecord(*bytes);
}

Result<SealedFile> LoadSealedFile(const StateDir& dir, const TpmRecord& record, std::uint32_t generation) {
  std::string name = SealedFileName(generation);
  SK_ASSIGN_OR_RETURN(std::optional<Bytes> bytes, dir.Read(name, kMaxSealedFile));
  if (!bytes) return NotFound(dir.Join(name) + " does not exist", "not_found");
  auto file = ParseSealedFile(*bytes);
  if (!file.ok()) return file.status().WithContext(name);
  if (file->generation != generation) {
    return Status(Code::kCorruption, kMalformedState,
                  name + " holds generation " + std::to_string(file->generation));
  }
  if (file->keyset_id != record.keyset_id) {
    return Status(Code::kCorruption, kWrongTpm,
                  name + " belongs to keyset " + HexEncode(file->keyset_id) +
                      ", the state folder to keyset " + HexEncode(record.keyset_id));
  }
  return file;
}

Result<SecretBytes> LoadAuthValue(const std::string& auth_file) {
  SK_ASSIGN_OR_RETURN(SecretBytes credential, ReadCredential(auth_file, "tpm-auth"));
  return DeriveAuthValue(credential);
}

Result<UnsealedKeyset> UnsealKeyset(ESYS_CONTEXT* ctx, ESYS_TR primary, const StateDir& dir,
                                    const TpmRecord& record, const std::string& auth_file) {
  UnsealedKeyset ks;
  ks.record = record;
  SK_ASSIGN_OR_RETURN(std::vector<std::uint32_t> gens, dir.Generations());
  if (gens.empty()) {
    return Status(Code::kFailedPrecondition, kNotProvisioned,
                  "no sealed master key in " + dir.path() + "; run `sealkeep tpm provision`");
  }
  bool need_auth = false;
  for (std::uint32_t g : gens) {
    SK_ASSIGN_OR_RETURN(SealedFile f, LoadSealedFile(dir, record, g));
    need_auth = need_auth || f.auth_required();
    ks.files.emplace(g, std::move(f));
  }
  if (need_auth) {
    SK_ASSIGN_OR_RETURN(ks.auth_value, LoadAuthValue(auth_file));
  }

  for (const auto& [g, file] : ks.files) {
    SK_ASSIGN_OR_RETURN(SealedPayload p, UnsealGeneration(ctx, primary, file, ks.auth_value));
    if (ks.anchor_auth.empty()) {
      ks.anchor_auth = std::move(p.anchor_auth);
    } else if (!ks.anchor_auth.Equals(p.anchor_auth)) {
      return Status(Code::kCorruption, kMalformedState,
                    "generation " + std::to_string(g) + " holds another anchor auth value than generation " +
                        std::to_string(ks.files.begin()->first));
    }
    ks.keys.emplace(g, std::move(p.master_key));
  }
  return ks;
}

Status CheckConfigMatchesRecord(const TpmConfig& c, const TpmRecord& r) {
  auto mismatch = [](const char* what, std::uint32_t config, std::uint32_t record) {
    return FailedPrecondition(std::string("the configured ") + what + " (" + HandleHex(config) +
                                  ") is not the one this state folder was provisioned with (" +
                                  HandleHex(record) + ")",
                              "bad_config");
  };
  if (c.nv_counter_index != r.nv_counter_index) {
    return mismatch("NV counter index", c.nv_counter_index, r.nv_counter_index);
  }
  if (c.nv_anchor_index != r.nv_anchor_index)
    return mismatch("NV anchor index", c.nv_anchor_index, r.nv_anchor_index);
  if (c.primary_handle != r.primary_handle)
    return mismatch("primary handle", c.primary_handle, r.primary_handle);
  return OkStatus();
}

}  // namespace sk::hsm::tpm
