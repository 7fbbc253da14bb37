// TPM 2.0 implementation of KeyBackend, over tpm2-tss ESAPI.
//
// At open the backend connects through the configured TCTI, loads the record and every
// live generation's sealed file from the state folder, unseals each once (salted policy
// session: PolicyPCR and/or the auth value; sealed_key.h) into locked memory, and attaches
// to the NV anchor (nv_anchor.h), checking that it accepts the anchor auth value and
// holds this keyset's anchor. Wrap and Unwrap are then software AES-256-GCM over the
// blob format of hsm/wrapped_blob_format.h (kind 0x02); they never touch the TPM.
// ReadAnchor/AdvanceAnchor talk to the TPM each time; Rotate seals a fresh key to the same
// policy as the current generation; Retire deletes a generation's file, then its key.
//
// BeginReseal()/Commit() re-seal the keys held in memory (the same bytes) to the current
// values of a PCR selection, for an admin who accepted a firmware or kernel change, in two
// steps so that the caller can journal the change in between (daemon::Agent::Reseal,
// through the Resealable interface the backend hands out).
// It is only possible while unsealed, i.e. on an open backend.
//
// Thread safety: Wrap, Unwrap, Info and Seals run concurrently (a shared lock over the
// keys); ReadAnchor, AdvanceAnchor, Rotate, Retire, BeginReseal and Commit take the TPM
// mutex and run one at a time, and never block Unwrap except for the instant a key is
// added or dropped. No lock is held between BeginReseal and Commit.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "hsm/backend_config.h"
#include "hsm/key_backend.h"
#include "hsm/tpm/sealed_file_format.h"

namespace sk::hsm::tpm {

class TpmBackend final : public KeyBackend, public Resealable {
 public:
  // Errors: bad_config, not_provisioned, tpm_unavailable, boot_state_changed,
  // auth_incorrect, auth_locked_out, wrong_tpm, malformed_state, credential_*, tpm_error.
  static Result<std::unique_ptr<TpmBackend>> Open(const TpmConfig& config);
  ~TpmBackend() override;
  TpmBackend(const TpmBackend&) = delete;
  TpmBackend& operator=(const TpmBackend&) = delete;

  Result<Bytes> Wrap(const SecretBytes& key, ByteView aad) override;
  // Reasons: malformed_blob, wrong_tpm (another backend kind or keyset), key_retired,
  // does_not_verify.
  Result<SecretBytes> Unwrap(ByteView blob, ByteView aad) override;
  // The anchored (seq, head_hash) and the NV counter's current value.
  Result<Anchor> ReadAnchor() override;
  Result<Anchor> AdvanceAnchor(std::uint64_t seq, const Digest& head_hash) override;
  BackendInfo Info() const override;
  Result<std::uint32_t> Rotate() override;
  Status Retire(std::uint32_t generation) override;
  Resealable* resealable() override { return this; }
  // The fleet host key: made by hsm/tpm/ecdh_key.h under the primary on the first call, its
  // blob kept in the state folder (kHostKeyFile); ECDH runs on this backend's connection.
  Result<std::unique_ptr<EcdhPrivateKey>> OpenHostKey() override;
  static constexpr const char* kHostKeyFile = "fleet-host.key";

  // A re-seal that is staged but not yet in effect (BeginReseal). Commit() puts it in
  // effect; destroying it uncommitted drops it: the staged files are removed and nothing
  // changed. It must not outlive the backend.
  class StagedReseal final : public PendingReseal {
   public:
    ~StagedReseal() override;
    StagedReseal(const StagedReseal&) = delete;
    StagedReseal& operator=(const StagedReseal&) = delete;
    // Renames each staged file over its live file (each rename followed by an fsync of
    // the folder) and makes the backend report the new policy. Once it has run, the
    // live files are the new seals, also after a crash. An I/O error midway leaves the
    // generations renamed so far under the new policy and the rest under the old one
    // (state_io_error; BeginReseal again). Runs at most once (failed_precondition after).
    Status Commit() override;
    const std::vector<int>& pcrs() const override { return pcrs_; }

   private:
    friend class TpmBackend;
    explicit StagedReseal(TpmBackend* backend) : backend_(backend) {}
    TpmBackend* backend_;
    std::vector<int> pcrs_;
    std::map<std::uint32_t, SealedFile> files_;  // generation -> its staged new seal
    bool done_ = false;
  };

  // Stages a re-seal of every live generation to the current values of `pcrs` (sha256
  // bank; empty: no PCR policy), keeping its key and whether it needs the auth value:
  // seals each anew, unseals each once as a check, and writes each to a staged file
  // (StagedSealedFileName: temp, fsync, rename, fsync of the folder). The live files and
  // the policy in use are untouched until Commit(). While one is pending, Rotate, Retire
  // and BeginReseal fail at once with reseal_in_progress (they do not wait: a rotation
  // runs inside a journal commit, which the re-seal's caller may be waiting for).
  // Errors: bad_pcrs, reseal_in_progress, the TPM errors of sealing, state_io_error.
  Result<std::unique_ptr<PendingReseal>> BeginReseal(const std::vector<int>& pcrs) override;
  // BeginReseal + Commit, for callers with nothing to record in between.
  Status Reseal(const std::vector<int>& pcrs);

  // What a live generation is sealed to.
  struct SealInfo {
    std::uint32_t generation = 0;
    std::vector<int> pcrs;
    bool auth_required = false;
  };
  std::vector<SealInfo> Seals() const;

 private:
  TpmBackend();

  TpmConfig config_;
  std::string identity_;
  std::string keyset_hex_;

  mutable std::shared_mutex keys_mu_;  // guards keys_, files_ and current_
  std::map<std::uint32_t, SecretBytes> keys_;
  std::map<std::uint32_t, SealedFile> files_;
  std::uint32_t current_ = 0;

  std::mutex tpm_mu_;            // serialises every use of esys_ and nv_, and state folder writes
  bool reseal_pending_ = false;  // guarded by tpm_mu_
  struct State;
  std::unique_ptr<State> state_;  // ESYS context, NV anchor, record, secrets for sealing
};

// Opens the TPM backend (hsm/backend_factory.cc calls this).
Result<std::unique_ptr<KeyBackend>> OpenTpmBackend(const TpmConfig& config);

// ".master-00000001.sealed.staged": where BeginReseal stages generation g's new seal. A
// leftover of a crash before Commit is never read (only Generations() names are loaded)
// and is replaced by the next BeginReseal.
std::string StagedSealedFileName(std::uint32_t generation);

// backend.BeginReseal(pcrs) / backend.Reseal(pcrs) when `backend` can re-seal;
// failed_precondition (not_tpm_backend) otherwise.
Result<std::unique_ptr<PendingReseal>> BeginResealTpmBackend(KeyBackend& backend,
                                                             const std::vector<int>& pcrs);
Status ResealTpmBackend(KeyBackend& backend, const std::vector<int>& pcrs);

}  // namespace sk::hsm::tpm
