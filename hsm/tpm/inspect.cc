#include "hsm/tpm/inspect.h"

#include "crypto/bytes.h"
#include "hsm/credential.h"
#include "hsm/tpm/esys_context.h"
#include "hsm/tpm/keyset.h"
#include "hsm/tpm/nv_anchor.h"
#include "hsm/tpm/pcr.h"

namespace sk::hsm::tpm {

Result<TpmStatusReport> InspectTpm(const TpmConfig& config, const std::string& owner_auth_file) {
  TpmStatusReport r;
  r.tcti = config.tcti;
  r.state_dir = config.state_dir;
  StateDir dir(config.state_dir);
  SK_ASSIGN_OR_RETURN(TpmRecord record, LoadRecord(dir));
  r.keyset_id = HexEncode(record.keyset_id);
  r.primary_handle = record.primary_handle;
  SecretBytes owner_auth;
  if (!owner_auth_file.empty()) {
    SK_ASSIGN_OR_RETURN(owner_auth, ReadCredentialFile(owner_auth_file));
  }
  SK_ASSIGN_OR_RETURN(std::unique_ptr<EsysContext> esys, EsysContext::Open(config.tcti));
  ESYS_CONTEXT* ctx = esys->get();
  SK_ASSIGN_OR_RETURN(r.tpm, DescribeTpm(ctx));

  SK_ASSIGN_OR_RETURN(std::vector<std::uint32_t> gens, dir.Generations());
  if (gens.empty()) r.problems.push_back("no sealed master key in the state folder");
  for (std::uint32_t g : gens) {
    auto file = LoadSealedFile(dir, record, g);
    if (!file.ok()) {
      r.problems.push_back(std::string(file.status().ToString()));
      continue;
    }
    GenerationStatus gs;
    gs.generation = g;
    gs.pcrs = PcrListFromMask(file->pcr_mask);
    gs.pcr_digest_hex = HexEncode(file->pcr_composite);
    gs.auth_required = file->auth_required();
    SK_ASSIGN_OR_RETURN(std::vector<Digest> now, ReadPcrs(ctx, file->pcr_mask));
    gs.differing_pcrs = DifferingPcrs(file->pcr_mask, file->pcr_values, now);
    gs.pcrs_match = gs.differing_pcrs.empty();
    if (!gs.pcrs_match) {
      r.problems.push_back("generation " + std::to_string(g) +
                           " will not unseal: the boot state changed (PCRs differ from the sealed policy)");
    }
    r.generations.push_back(std::move(gs));
  }

  r.counter.handle = record.nv_counter_index;
  r.anchor.handle = record.nv_anchor_index;
  SK_ASSIGN_OR_RETURN(r.counter.defined, NvIndexDefined(ctx, record.nv_counter_index));
  SK_ASSIGN_OR_RETURN(r.anchor.defined, NvIndexDefined(ctx, record.nv_anchor_index));
  if (!r.counter.defined || !r.anchor.defined) {
    r.problems.push_back("the NV anchor indices are not (all) defined; run `sealkeep tpm provision`");
    return r;
  }
  auto nv = NvAnchor::Attach(ctx, record.nv_counter_index, record.nv_anchor_index);
  if (!nv.ok()) {
    r.problems.push_back(std::string(nv.status().ToString()));
    return r;
  }
  std::uint64_t hw = 0;
  auto contents = (*nv)->ReadAsOwner(owner_auth, &hw);
  if (!contents.ok()) {
    r.problems.push_back("cannot read the NV anchor as owner: " + contents.status().ToString());
    return r;
  }
  r.anchored = contents->anchor;
  r.anchored->counter = hw;
  r.stored_counter = contents->anchor.counter;
  r.anchor_keyset_matches = contents->keyset_id == record.keyset_id;
  if (!r.anchor_keyset_matches) r.problems.push_back("the NV anchor holds another keyset's anchor");
  return r;
}

}  // namespace sk::hsm::tpm
