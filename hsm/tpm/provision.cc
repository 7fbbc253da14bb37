#include "hsm/tpm/provision.h"

#include <sys/stat.h>

#include <cstdlib>
#include <utility>

#include "crypto/random.h"
#include "hsm/credential.h"
#include "hsm/tpm/esys_context.h"
#include "hsm/tpm/keyset.h"
#include "hsm/tpm/nv_anchor.h"
#include "hsm/tpm/pcr.h"
#include "hsm/tpm/primary.h"
#include "hsm/tpm/sealed_key.h"
#include "hsm/tpm/tpm_errors.h"

namespace sk::hsm::tpm {
namespace {

bool CredentialDirHasAuth() {
  const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
  if (dir == nullptr || *dir == '\0') return false;
  struct stat st {};
  return ::stat((std::string(dir) + "/tpm-auth").c_str(), &st) == 0;
}

std::string DescribeSeal(const SealedFile& f) {
  return "generation " + std::to_string(f.generation) + ", sealed to sha256 PCRs " +
         FormatPcrMask(f.pcr_mask) + ", auth value " + (f.auth_required() ? "required" : "none");
}

Status CheckHandles(const TpmConfig& c) {
  if (!IsNvIndexHandle(c.nv_counter_index) || !IsNvIndexHandle(c.nv_anchor_index) ||
      c.nv_counter_index == c.nv_anchor_index) {
    return InvalidArgument("the NV counter and anchor handles must be two distinct NV indices (0x01xxxxxx)",
                           "bad_config");
  }
  if (c.primary_handle != 0 && !IsPersistentHandle(c.primary_handle)) {
    return InvalidArgument("the primary handle must be 0 or a persistent handle (0x81xxxxxx)", "bad_config");
  }
  return OkStatus();
}

Status RefuseForeignIndex(ESYS_CONTEXT* ctx, std::uint32_t handle) {
  SK_ASSIGN_OR_RETURN(bool defined, NvIndexDefined(ctx, handle));
  if (!defined) return OkStatus();
  return Status(Code::kAlreadyExists, "already_exists",
                "NV index " + HandleHex(handle) +
                    " is already defined but this state folder has no record of it: it belongs to another "
                    "installation or is a leftover (undefine it with `tpm2_nvundefine " +
                    HandleHex(handle) + " -C o`, or choose other NV indices)");
}

// Generation 1: a fresh master key and anchor auth value, sealed and checked by unsealing.
Result<UnsealedKeyset> SealFirstGeneration(ESYS_CONTEXT* ctx, ESYS_TR primary, const StateDir& dir,
                                           const TpmRecord& record, const TpmConfig& config,
                                           SealedFile* out) {
  SK_ASSIGN_OR_RETURN(std::uint32_t mask, PcrMaskFromList(config.pcrs));
  UnsealedKeyset ks;
  ks.record = record;
  bool use_auth = !config.auth_file.empty() || CredentialDirHasAuth();
  if (use_auth) {
    SK_ASSIGN_OR_RETURN(ks.auth_value, LoadAuthValue(config.auth_file));
  }
  SK_ASSIGN_OR_RETURN(SealPolicy policy, PolicyForCurrentPcrs(ctx, mask, use_auth));
  SealedPayload payload;
  payload.keyset_id = record.keyset_id;
  payload.generation = 1;
  SK_ASSIGN_OR_RETURN(payload.master_key, RandomSecret(kMasterKeySize));
  SK_ASSIGN_OR_RETURN(payload.anchor_auth, RandomSecret(kAnchorAuthSize));
  SK_ASSIGN_OR_RETURN(SealedFile file, SealGeneration(ctx, primary, policy, ks.auth_value, payload));
  SK_ASSIGN_OR_RETURN(SealedPayload check, UnsealGeneration(ctx, primary, file, ks.auth_value));
  if (!check.master_key.Equals(payload.master_key))
    return Internal("the sealed key did not unseal to itself");
  SK_RETURN_IF_ERROR(dir.WriteAtomic(SealedFileName(1), EncodeSealedFile(file)));
  ks.anchor_auth = std::move(payload.anchor_auth);
  ks.keys.emplace(1, std::move(payload.master_key));
  ks.files.emplace(1, file);
  *out = std::move(file);
  return ks;
}

}  // namespace

bool ProvisionReport::created_anything() const {
  for (const auto& s : steps)
    if (s.state != "exists") return true;
  return false;
}

Result<ProvisionReport> ProvisionTpm(const TpmConfig& config, const ProvisionOptions& options) {
  SK_RETURN_IF_ERROR(CheckHandles(config));
  SK_RETURN_IF_ERROR(PcrMaskFromList(config.pcrs).status());
  SecretBytes owner_auth;
  if (!options.owner_auth_file.empty()) {
    SK_ASSIGN_OR_RETURN(owner_auth, ReadCredentialFile(options.owner_auth_file));
  }
  StateDir dir(config.state_dir);
  SK_RETURN_IF_ERROR(dir.Create());
  SK_ASSIGN_OR_RETURN(std::unique_ptr<EsysContext> esys, EsysContext::Open(config.tcti));
  ESYS_CONTEXT* ctx = esys->get();
  ProvisionReport report;
  SK_ASSIGN_OR_RETURN(report.tpm, DescribeTpm(ctx));

  TpmRecord record;
  if (dir.Exists(kRecordFileName)) {
    SK_ASSIGN_OR_RETURN(record, LoadRecord(dir));
    SK_RETURN_IF_ERROR(CheckConfigMatchesRecord(config, record));
    report.steps.push_back({"record", "exists", dir.Join(kRecordFileName)});
  } else {
    SK_ASSIGN_OR_RETURN(std::vector<std::uint32_t> stray, dir.Generations());
    if (!stray.empty()) {
      return Status(Code::kCorruption, kMalformedState,
                    dir.path() + " holds sealed key files but no record; it is not a usable state folder");
    }
    SK_RETURN_IF_ERROR(RefuseForeignIndex(ctx, config.nv_counter_index));
    SK_RETURN_IF_ERROR(RefuseForeignIndex(ctx, config.nv_anchor_index));
    SK_RETURN_IF_ERROR(FillRandom(record.keyset_id));
    record.nv_counter_index = config.nv_counter_index;
    record.nv_anchor_index = config.nv_anchor_index;
    record.primary_handle = config.primary_handle;
    SK_RETURN_IF_ERROR(dir.WriteAtomic(kRecordFileName, EncodeRecord(record)));
    report.steps.push_back({"record", "created", dir.Join(kRecordFileName)});
  }
  report.keyset_id = HexEncode(record.keyset_id);

  UnsealedKeyset ks;
  {
    SK_ASSIGN_OR_RETURN(ScopedTr primary, LoadPrimary(ctx, record.primary_handle, &owner_auth));
    SK_ASSIGN_OR_RETURN(std::vector<std::uint32_t> gens, dir.Generations());
    if (gens.empty()) {
      SealedFile file;
      SK_ASSIGN_OR_RETURN(ks, SealFirstGeneration(ctx, primary.get(), dir, record, config, &file));
      report.steps.push_back({"sealed key", "created", DescribeSeal(file)});
    } else {
      SK_ASSIGN_OR_RETURN(ks, UnsealKeyset(ctx, primary.get(), dir, record, config.auth_file));
      const SealedFile& current = ks.files.rbegin()->second;
      report.steps.push_back({"sealed key", "exists", DescribeSeal(current)});
      SK_ASSIGN_OR_RETURN(std::uint32_t asked, PcrMaskFromList(config.pcrs));
      if (asked != current.pcr_mask) {
        report.notes.push_back("the existing seal is kept (sealed to PCRs " +
                               FormatPcrMask(current.pcr_mask) + "); --pcrs " + FormatPcrMask(asked) +
                               " was not applied: re-seal through the running agent to change it");
      }
    }
    using Index = std::pair<std::uint32_t, bool>;  // handle, is the counter
    for (auto [handle, is_counter] :
         {Index{record.nv_counter_index, true}, Index{record.nv_anchor_index, false}}) {
      SK_ASSIGN_OR_RETURN(bool defined, NvIndexDefined(ctx, handle));
      const char* item = is_counter ? "NV counter" : "NV anchor";
      if (defined) {
        report.steps.push_back({item, "exists", HandleHex(handle)});
        continue;
      }
      SK_RETURN_IF_ERROR(is_counter
                             ? DefineCounterIndex(ctx, primary.get(), handle, ks.anchor_auth, owner_auth)
                             : DefineAnchorIndex(ctx, primary.get(), handle, ks.anchor_auth, owner_auth));
      report.steps.push_back({item, "created", HandleHex(handle)});
    }
  }

  SK_ASSIGN_OR_RETURN(std::unique_ptr<NvAnchor> nv,
                      NvAnchor::Attach(ctx, record.nv_counter_index, record.nv_anchor_index));
  SK_RETURN_IF_ERROR(nv->SetAnchorAuth(ks.anchor_auth));
  auto anchor = nv->Read(record.keyset_id);
  if (!anchor.ok() && anchor.status().reason() == kNotProvisioned) {
    // Defined but never written: the first advance writes an empty journal's head.
    anchor = nv->Advance(record.keyset_id, 0, Digest{});
    if (anchor.ok()) report.steps.push_back({"NV anchor contents", "initialised", "empty journal head"});
  }
  if (!anchor.ok()) return anchor.status().WithContext("checking the NV anchor");
  for (auto& step : report.steps) {
    if (step.item == "NV counter") step.detail += ", value " + std::to_string(anchor->counter);
    if (step.item == "NV anchor") step.detail += ", anchored seq " + std::to_string(anchor->seq);
  }
  return report;
}

}  // namespace sk::hsm::tpm
