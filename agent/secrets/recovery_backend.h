// Restoring and verifying backups with the recovery key (docs/recovery.md).
//
// RecoveryBackend is a KeyBackend for a store whose master key is gone: Unwrap opens each
// key from its recovery wrap (the journal key, the audit key, every version's data key,
// looked up by the wrap's AAD) with the recovery private key rebuilt from shares. With a
// `target` (the new host's TPM or token) it wraps, anchors, reports and "rotates" there,
// and tries the target first when unwrapping (a key already moved over); without one it
// serves read-only verification and its anchor is the backup manifest's head.
//
// RestoreOntoNewHardware and VerifyBackupWithShares are the offline flows that
// `sealkeep backup restore` and `sealkeep backup verify --shares-file` run.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "agent/secrets/service.h"
#include "crypto/recovery_wrap.h"
#include "hsm/key_backend.h"

namespace sk::secrets {

// A store file's recovery wraps, keyed by the AAD each binds (keys.h).
struct RecoveryBlobs {
  std::map<Bytes, Bytes> by_aad;
  Bytes store_id;
};
// Errors: backup_unreadable (the file is no store), no_recovery_key (kFailedPrecondition:
// the store never had a recovery key).
Result<RecoveryBlobs> LoadRecoveryBlobs(const std::string& store_file);

class RecoveryBackend final : public hsm::KeyBackend {
 public:
  // `verify_only`: the anchor is the manifest's even with a target (verifying a backup on
  // the hardware that made it; `opener` may then be null); nothing is wrapped or anchored.
  RecoveryBackend(std::shared_ptr<hsm::KeyBackend> target, std::shared_ptr<RecoveryOpener> opener,
                  RecoveryBlobs blobs, hsm::Anchor manifest_anchor, bool verify_only = false)
      : target_(std::move(target)),
        opener_(std::move(opener)),
        blobs_(std::move(blobs)),
        manifest_anchor_(manifest_anchor),
        verify_only_(verify_only) {}

  Result<Bytes> Wrap(const SecretBytes& key, ByteView aad) override;
  Result<SecretBytes> Unwrap(ByteView blob, ByteView aad) override;
  Result<hsm::Anchor> ReadAnchor() override;
  Result<hsm::Anchor> AdvanceAnchor(std::uint64_t seq, const Digest& head_hash) override;
  hsm::BackendInfo Info() const override;
  // No new generation: the target's current one, so SecretService::Rotate re-wraps
  // everything from the recovery key to the target's master key.
  Result<std::uint32_t> Rotate() override;
  Status Retire(std::uint32_t generation) override;

 private:
  std::shared_ptr<hsm::KeyBackend> target_;
  std::shared_ptr<RecoveryOpener> opener_;
  RecoveryBlobs blobs_;
  hsm::Anchor manifest_anchor_;
  bool verify_only_ = false;
};

struct BackupCheck {
  BackupManifest manifest;
  VerifyReport report;
};

// Offline, on the hardware that made the backup (its master key alive, the agent stopped):
// the same checks as VerifyBackupWithShares, the keys unwrapped by `backend` and the
// manifest's head as the anchor. Errors: backup_other_hardware (its keys do not unwrap
// here), backup_unreadable, backup_manifest_invalid.
Result<BackupCheck> VerifyBackupOnHardware(const std::string& file, std::shared_ptr<hsm::KeyBackend> backend,
                                           const std::string& work_dir);

// Offline, without the hardware: copies `file` into `work_dir`, opens the copy read-only
// under the recovery key, checks the manifest's seal with the journal key, and verifies
// everything (VerifyAll) against the manifest's head. Errors: backup_unreadable,
// backup_manifest_invalid, wrong_recovery_key (shares of another key), no_recovery_key.
Result<BackupCheck> VerifyBackupWithShares(const std::string& file, std::shared_ptr<RecoveryOpener> opener,
                                           const std::string& work_dir);

struct RestoreResult {
  BackupManifest manifest;
  std::uint64_t restored_seq = 0;   // the `restored` entry
  std::uint64_t rewrapped_seq = 0;  // the re-wrap under the new master key
  VerifyReport report;              // verification on the new hardware alone, after
  bool resumed = false;             // a restore cut short earlier was finished
};

// Restores `file` onto new hardware (`target`, freshly set up: anchor at seq 0) as the
// store `options.store_path`, which must not exist (or be a restore cut short, which is
// finished: `<store>.restoring` names it). Steps: check the manifest with the journal key
// opened by the recovery key; copy the file to the store path (temp, fsync, rename);
// open it under RecoveryBackend with the target, which journals `restored` (naming the
// backup's store id and head) and anchors it on the new hardware; re-wrap the journal key,
// audit key and every data key under the new master key (a `rotate` entry); reopen on the
// new hardware alone and verify everything. A crash at any point: run it again.
// Errors: restore_target_not_fresh, store_exists, and those of VerifyBackupWithShares.
Result<RestoreResult> RestoreOntoNewHardware(const std::string& file, std::shared_ptr<RecoveryOpener> opener,
                                             std::shared_ptr<hsm::KeyBackend> target,
                                             const ServiceOptions& options, const Actor& actor);

// Restoring a backup on the hardware that made it, which anchors a later head: what would
// be lost is the gap between the backup's head and the anchor. Without accept_loss nothing
// changes (restore_needs_accept_loss, kFailedPrecondition, the gap in the message and in
// `gap`); with it the current store is kept aside as <store>.before-restore-<ms> (and its
// -wal), the backup becomes the store, a `restored` entry naming both heads is journaled and
// the anchor continues from it. A backup whose head the anchor already covers (nothing
// lost) is restored the same way without the flag. Errors also: backup_other_store (the
// backup's store id is not this store's), backup_manifest_invalid, backup_unreadable.
struct SameHardwareRestore {
  BackupManifest manifest;
  hsm::Anchor anchor;      // what the hardware anchored before
  std::uint64_t lost = 0;  // entries after the backup's head the anchor counted
  std::string kept_aside;  // where the replaced store went
  std::uint64_t restored_seq = 0;
  VerifyReport report;
};
Result<SameHardwareRestore> RestoreOnSameHardware(const std::string& file,
                                                  std::shared_ptr<hsm::KeyBackend> backend,
                                                  const ServiceOptions& options, bool accept_loss,
                                                  const Actor& actor);

}  // namespace sk::secrets
