// libFuzzer target: every binary decoder of what sealkeep stores, on any bytes. The first
// byte picks the decoder: a journal entry (and a lease entry's note), a sealed head record, a snapshot body,
// a wrapped key blob (the stored forms an attacker with the disk can edit), an audit log line or checkpoint,
// the hardware side's stored forms (the PKCS#11 anchor object's value, the TPM sealed-key file and its
// payload, the TPM record, the NV anchor), or the /proc text a caller's identity is read from (its cgroup:
// the systemd unit; its status: groups and uid; its stat: start time). Each must answer with an error, never
// crash, leak or read out of bounds. Also what recovery reads (docs/recovery.md): a share as
// typed, a backup manifest, and a recovery-wrapped blob opened with a fixed key. And what a
// host or writer reads from the fleet database (docs/fleet.md): an entry, its host and txn
// bodies, the chain's check of it under a fixed signer key, and a snapshot body.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/audit/audit_format.h"
#include "agent/fleet/fleet_chain.h"
#include "agent/journal/journal_format.h"
#include "agent/policy/subject.h"
#include "agent/secrets/backup_manifest.h"
#include "agent/secrets/lease_record.h"
#include "agent/secrets/snapshot_format.h"
#include "crypto/recovery_share.h"
#include "crypto/recovery_wrap.h"
#include "hsm/pkcs11/anchor_format.h"
#include "hsm/tpm/nv_anchor_format.h"
#include "hsm/tpm/record_format.h"
#include "hsm/tpm/sealed_file_format.h"
#include "hsm/wrapped_blob_format.h"

namespace {
// The scalar 1: a valid P-256 private key.
constexpr std::uint8_t kScalarOne[32] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                         0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const sk::ByteView bytes(data + 1, size - 1);
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 15) {
    case 12:
      (void)sk::ParseRecoveryShare(text);
      (void)sk::secrets::ParseBackupManifest(text);
      break;
    case 13: {
      static sk::RecoveryOpener* opener = [] {
        sk::SecretBytes one(32);
        one.Expose()[31] = 1;  // the scalar 1: a valid private key
        return sk::RecoveryOpener::Create(std::move(one)).value().release();
      }();
      (void)sk::RecoveryBlobKeyId(bytes);
      (void)opener->Open(bytes, sk::ByteView());
      break;
    }
    case 14: {
      static const sk::fleet::FleetChain chain(
          sk::RecoveryPublicKey(sk::SecretBytes::CopyFrom(sk::ByteView(kScalarOne))).value());
      if (auto e = sk::fleet::DecodeEntry(bytes); e.ok()) {
        (void)sk::fleet::DecodeHost(e->body);
        (void)sk::fleet::DecodeTxn(e->body);
      }
      (void)sk::fleet::DecodeTxn(bytes);
      (void)sk::fleet::DecodeSnapshot(bytes);
      (void)chain.Check(bytes);
      break;
    }
    case 0:
      if (auto e = sk::journal::DecodeEntry(bytes); e.ok()) {
        (void)sk::journal::EncodeEntry(*e);
        (void)sk::secrets::ParseLeaseNote(e->detail.note);  // a lease entry's record
      }
      (void)sk::secrets::ParseLeaseNote(text);
      break;
    case 1:
      (void)sk::journal::DecodeHeadRecord(bytes);
      break;
    case 2:
      (void)sk::secrets::DecodeSnapshot(bytes);
      break;
    case 3:
      (void)sk::hsm::ParseWrappedBlob(bytes);
      break;
    case 4:
      (void)sk::audit::ParseLine(text);
      break;
    case 5:
      (void)sk::audit::ParseCheckpoint(text);
      break;
    case 8:
      (void)sk::hsm::pkcs11::ParseAnchorValue(bytes);
      break;
    case 9:
      (void)sk::hsm::tpm::ParseSealedFile(bytes);
      (void)sk::hsm::tpm::ParsePayload(bytes);
      break;
    case 10:
      (void)sk::hsm::tpm::ParseRecord(bytes);
      break;
    case 11:
      (void)sk::hsm::tpm::ParseNvAnchor(bytes);
      break;
    case 6:
      (void)sk::policy::ParseSystemdUnits(text);
      (void)sk::policy::UnitsFromCgroupPath(text);
      break;
    default:
      (void)sk::policy::ParseStatusGroups(text);
      (void)sk::policy::ParseStatusEffectiveUid(text);
      (void)sk::policy::ParseStatStartTicks(text);
      break;
  }
  return 0;
}
