#include "hsm/tpm/tpm_backend.h"

#include <utility>

#include "crypto/aead.h"
#include "crypto/random.h"
#include "hsm/tpm/ecdh_key.h"
#include "hsm/tpm/esys_context.h"
#include "hsm/tpm/keyset.h"
#include "hsm/tpm/nv_anchor.h"
#include "hsm/tpm/pcr.h"
#include "hsm/tpm/primary.h"
#include "hsm/tpm/sealed_key.h"
#include "hsm/tpm/state_dir.h"
#include "hsm/tpm/tpm_errors.h"
#include "hsm/wrapped_blob_format.h"

namespace sk::hsm::tpm {

namespace {
Status ResealInProgress() {
  return FailedPrecondition("a re-seal of the master key is in progress; retry when it has finished",
                            "reseal_in_progress");
}
}  // namespace

struct TpmBackend::State {
  explicit State(std::string dir_path) : dir(std::move(dir_path)) {}
  std::unique_ptr<EsysContext> esys;  // declared first: destroyed after nv
  std::unique_ptr<NvAnchor> nv;
  StateDir dir;
  TpmRecord record;
  SecretBytes anchor_auth;
  SecretBytes auth_value;  // empty unless the seals need one
};

TpmBackend::TpmBackend() = default;
TpmBackend::~TpmBackend() = default;

Result<std::unique_ptr<TpmBackend>> TpmBackend::Open(const TpmConfig& config) {
  if (config.state_dir.empty()) return InvalidArgument("no TPM state folder configured", "bad_config");
  std::unique_ptr<TpmBackend> b(new TpmBackend());
  b->config_ = config;
  b->state_ = std::make_unique<State>(config.state_dir);
  State& s = *b->state_;
  SK_ASSIGN_OR_RETURN(s.record, LoadRecord(s.dir));
  SK_RETURN_IF_ERROR(CheckConfigMatchesRecord(config, s.record));
  SK_ASSIGN_OR_RETURN(s.esys, EsysContext::Open(config.tcti));
  ESYS_CONTEXT* ctx = s.esys->get();

  UnsealedKeyset ks;
  {
    SK_ASSIGN_OR_RETURN(ScopedTr primary, LoadPrimary(ctx, s.record.primary_handle));
    SK_ASSIGN_OR_RETURN(ks, UnsealKeyset(ctx, primary.get(), s.dir, s.record, config.auth_file));
  }
  s.anchor_auth = std::move(ks.anchor_auth);
  s.auth_value = std::move(ks.auth_value);
  b->keys_ = std::move(ks.keys);
  b->files_ = std::move(ks.files);
  b->current_ = b->keys_.rbegin()->first;

  SK_ASSIGN_OR_RETURN(s.nv, NvAnchor::Attach(ctx, s.record.nv_counter_index, s.record.nv_anchor_index));
  SK_RETURN_IF_ERROR(s.nv->SetAnchorAuth(s.anchor_auth));
  // Proves the indices are this keyset's before anyone relies on them.
  SK_RETURN_IF_ERROR(s.nv->Read(s.record.keyset_id).status());

  SK_ASSIGN_OR_RETURN(std::string tpm, DescribeTpm(ctx));
  b->identity_ = "TPM " + tpm + " via " + config.tcti + ", primary " +
                 (s.record.primary_handle == 0 ? std::string("from the fixed template")
                                               : HandleHex(s.record.primary_handle));
  b->keyset_hex_ = HexEncode(s.record.keyset_id);
  return b;
}

Result<Bytes> TpmBackend::Wrap(const SecretBytes& key, ByteView aad) {
  if (key.empty() || key.size() > kMaxWrappedKey) {
    return InvalidArgument("a wrapped key must be 1-64 bytes, not " + std::to_string(key.size()));
  }
  SK_ASSIGN_OR_RETURN(Bytes iv, RandomBytes(kWrapIvSize));
  std::shared_lock lock(keys_mu_);
  WrappedHeader h;
  h.kind = kKindTpm;
  h.keyset_id = state_->record.keyset_id;
  h.generation = current_;
  Bytes blob = EncodeWrappedHeader(h);
  Bytes full_aad = WrapAad(blob, aad);
  blob.insert(blob.end(), iv.begin(), iv.end());
  std::size_t body = blob.size();
  blob.resize(body + key.size() + kWrapTagSize);
  SK_RETURN_IF_ERROR(AesGcmSeal(keys_.at(current_), iv, full_aad, key.Expose(),
                                std::span<std::uint8_t>(blob.data() + body, key.size() + kWrapTagSize)));
  return blob;
}

Result<SecretBytes> TpmBackend::Unwrap(ByteView blob, ByteView aad) {
  SK_ASSIGN_OR_RETURN(WrappedParts p, ParseWrappedBlob(blob));
  if (p.header.kind != kKindTpm) {
    return Status(Code::kCorruption, kWrongTpm, "the blob was wrapped by a PKCS#11 backend, not a TPM");
  }
  if (p.header.keyset_id != state_->record.keyset_id) {
    return Status(Code::kCorruption, kWrongTpm,
                  "the blob belongs to keyset " + HexEncode(p.header.keyset_id) + ", not " + keyset_hex_);
  }
  std::shared_lock lock(keys_mu_);
  auto it = keys_.find(p.header.generation);
  if (it == keys_.end()) {
    return Status(Code::kFailedPrecondition, kKeyRetired,
                  "master key generation " + std::to_string(p.header.generation) + " is retired");
  }
  SecretBytes out(p.ciphertext.size());
  ByteView sealed(p.ciphertext.data(), p.ciphertext.size() + p.tag.size());
  SK_RETURN_IF_ERROR(AesGcmOpen(it->second, p.iv, WrapAad(p.header_bytes, aad), sealed, out.Expose()));
  return out;
}

Result<Anchor> TpmBackend::ReadAnchor() {
  std::lock_guard lock(tpm_mu_);
  return state_->nv->Read(state_->record.keyset_id);
}

Result<Anchor> TpmBackend::AdvanceAnchor(std::uint64_t seq, const Digest& head_hash) {
  std::lock_guard lock(tpm_mu_);
  return state_->nv->Advance(state_->record.keyset_id, seq, head_hash);
}

BackendInfo TpmBackend::Info() const {
  BackendInfo info;
  info.kind = "tpm";
  info.identity = identity_;
  info.keyset_id = keyset_hex_;
  info.hardware_counter = true;
  info.anchor_location = "TPM NV counter " + HandleHex(state_->record.nv_counter_index) + " and NV index " +
                         HandleHex(state_->record.nv_anchor_index);
  std::shared_lock lock(keys_mu_);
  info.current_generation = current_;
  for (const auto& [g, key] : keys_) info.generations.push_back(g);
  return info;
}

std::vector<TpmBackend::SealInfo> TpmBackend::Seals() const {
  std::shared_lock lock(keys_mu_);
  std::vector<SealInfo> out;
  for (const auto& [g, f] : files_) out.push_back({g, PcrListFromMask(f.pcr_mask), f.auth_required()});
  return out;
}

Result<std::uint32_t> TpmBackend::Rotate() {
  std::lock_guard lock(tpm_mu_);
  if (reseal_pending_) return ResealInProgress();
  State& s = *state_;
  if (current_ == UINT32_MAX)
    return FailedPrecondition("no generation number is left", "generations_exhausted");
  std::uint32_t next = current_ + 1;
  SealPolicy policy = PolicyOf(files_.at(current_));
  SealedPayload payload;
  payload.keyset_id = s.record.keyset_id;
  payload.generation = next;
  SK_ASSIGN_OR_RETURN(payload.master_key, RandomSecret(kMasterKeySize));
  payload.anchor_auth = s.anchor_auth.Clone();
  SealedFile file;
  {
    SK_ASSIGN_OR_RETURN(ScopedTr primary, LoadPrimary(s.esys->get(), s.record.primary_handle));
    SK_ASSIGN_OR_RETURN(file, SealGeneration(s.esys->get(), primary.get(), policy, s.auth_value, payload));
  }
  SK_RETURN_IF_ERROR(s.dir.WriteAtomic(SealedFileName(next), EncodeSealedFile(file)));
  std::unique_lock keys_lock(keys_mu_);
  keys_.emplace(next, std::move(payload.master_key));
  files_.emplace(next, std::move(file));
  current_ = next;
  return next;
}

Status TpmBackend::Retire(std::uint32_t generation) {
  std::lock_guard lock(tpm_mu_);
  if (reseal_pending_) return ResealInProgress();
  {
    std::shared_lock keys_lock(keys_mu_);
    if (generation == current_) {
      return FailedPrecondition("generation " + std::to_string(generation) + " is current", "is_current");
    }
    if (keys_.count(generation) == 0) {
      return NotFound("generation " + std::to_string(generation) + " is not live", "not_found");
    }
  }
  // The file goes first: if its removal fails, the key stays usable and retrying works.
  SK_RETURN_IF_ERROR(state_->dir.Remove(SealedFileName(generation)));
  std::unique_lock keys_lock(keys_mu_);
  keys_.erase(generation);  // SecretBytes wipes the key
  files_.erase(generation);
  return OkStatus();
}

std::string StagedSealedFileName(std::uint32_t generation) {
  return "." + SealedFileName(generation) + ".staged";
}

Result<std::unique_ptr<PendingReseal>> TpmBackend::BeginReseal(const std::vector<int>& pcrs) {
  SK_ASSIGN_OR_RETURN(std::uint32_t mask, PcrMaskFromList(pcrs));
  std::lock_guard lock(tpm_mu_);
  if (reseal_pending_) return ResealInProgress();
  State& s = *state_;
  ESYS_CONTEXT* ctx = s.esys->get();
  std::unique_ptr<StagedReseal> pending(new StagedReseal(this));
  // Until it is handed out, dropping it must do nothing: its destructor takes tpm_mu_,
  // which this holds, and there is nothing staged yet to remove.
  pending->done_ = true;
  pending->pcrs_ = PcrListFromMask(mask);
  // Generations change only under tpm_mu_, which this holds: reading keys_ needs no lock.
  {
    SK_ASSIGN_OR_RETURN(ScopedTr primary, LoadPrimary(ctx, s.record.primary_handle));
    for (const auto& [g, old_file] : files_) {
      SK_ASSIGN_OR_RETURN(SealPolicy policy, PolicyForCurrentPcrs(ctx, mask, old_file.auth_required()));
      SealedPayload payload;
      payload.keyset_id = s.record.keyset_id;
      payload.generation = g;
      payload.master_key = keys_.at(g).Clone();
      payload.anchor_auth = s.anchor_auth.Clone();
      SK_ASSIGN_OR_RETURN(SealedFile file, SealGeneration(ctx, primary.get(), policy, s.auth_value, payload));
      SK_ASSIGN_OR_RETURN(SealedPayload check, UnsealGeneration(ctx, primary.get(), file, s.auth_value));
      if (!check.master_key.Equals(keys_.at(g))) return Internal("a re-sealed key did not unseal to itself");
      pending->files_.emplace(g, std::move(file));
    }
  }
  for (const auto& [g, file] : pending->files_) {
    Status st = s.dir.WriteAtomic(StagedSealedFileName(g), EncodeSealedFile(file));
    if (!st.ok()) {
      for (const auto& [staged, unused] : pending->files_) (void)s.dir.Remove(StagedSealedFileName(staged));
      return st;
    }
  }
  pending->done_ = false;
  reseal_pending_ = true;
  return std::unique_ptr<PendingReseal>(std::move(pending));
}

Status TpmBackend::StagedReseal::Commit() {
  if (done_) return FailedPrecondition("this re-seal has already been committed or dropped", "reseal_done");
  TpmBackend& b = *backend_;
  std::lock_guard lock(b.tpm_mu_);
  done_ = true;
  b.reseal_pending_ = false;
  StateDir& dir = b.state_->dir;
  Status result = OkStatus();
  for (auto& [g, file] : files_) {
    if (result.ok()) result = dir.Rename(StagedSealedFileName(g), SealedFileName(g));
    if (!result.ok()) {
      (void)dir.Remove(StagedSealedFileName(g));
      continue;
    }
    std::unique_lock keys_lock(b.keys_mu_);
    b.files_[g] = std::move(file);
  }
  return result;
}

TpmBackend::StagedReseal::~StagedReseal() {
  if (done_) return;
  TpmBackend& b = *backend_;
  std::lock_guard lock(b.tpm_mu_);
  for (const auto& [g, unused] : files_) (void)b.state_->dir.Remove(StagedSealedFileName(g));
  b.reseal_pending_ = false;
}

Status TpmBackend::Reseal(const std::vector<int>& pcrs) {
  SK_ASSIGN_OR_RETURN(std::unique_ptr<PendingReseal> pending, BeginReseal(pcrs));
  return pending->Commit();
}

Result<std::unique_ptr<KeyBackend>> OpenTpmBackend(const TpmConfig& config) {
  SK_ASSIGN_OR_RETURN(std::unique_ptr<TpmBackend> b, TpmBackend::Open(config));
  return std::unique_ptr<KeyBackend>(std::move(b));
}

namespace {
Result<Resealable*> AsResealable(KeyBackend& backend) {
  Resealable* r = backend.resealable();
  if (r == nullptr) {
    return FailedPrecondition(
        "re-sealing to PCRs needs the TPM backend; this agent uses " + backend.Info().kind,
        "not_tpm_backend");
  }
  return r;
}
}  // namespace

Result<std::unique_ptr<PendingReseal>> BeginResealTpmBackend(KeyBackend& backend,
                                                             const std::vector<int>& pcrs) {
  SK_ASSIGN_OR_RETURN(Resealable * r, AsResealable(backend));
  return r->BeginReseal(pcrs);
}

Status ResealTpmBackend(KeyBackend& backend, const std::vector<int>& pcrs) {
  SK_ASSIGN_OR_RETURN(std::unique_ptr<PendingReseal> pending, BeginResealTpmBackend(backend, pcrs));
  return pending->Commit();
}

Result<std::unique_ptr<EcdhPrivateKey>> TpmBackend::OpenHostKey() {
  std::lock_guard lock(tpm_mu_);
  State& s = *state_;
  SK_ASSIGN_OR_RETURN(std::optional<Bytes> blob, s.dir.Read(kHostKeyFile, 4096));
  if (!blob) {
    SK_ASSIGN_OR_RETURN(Bytes made, CreateTpmEcdhKeyIn(s.esys->get(), s.record.primary_handle));
    SK_RETURN_IF_ERROR(s.dir.WriteAtomic(kHostKeyFile, made));
    blob = std::move(made);
  }
  return OpenTpmEcdhKeyLent(*blob, s.record.primary_handle, [this](const EsysUser& use) {
    std::lock_guard use_lock(tpm_mu_);
    return use(state_->esys->get());
  });
}

}  // namespace sk::hsm::tpm
