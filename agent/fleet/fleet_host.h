// A host's side of the fleet journal: pulls entries from the fleet database, verifies each
// (signature under the pinned fleet key, chain, versions), and turns those that concern
// this host into changes it can apply to its local store, opening each DEK with the host's
// ECDH key and checking it against the signed commitment before decrypting.
//
// The anchor is the (seq, hash) of the last entry this host applied, which the agent keeps
// in its hardware. The host keeps a FleetChain verified from seq 1 (the first Pull replays
// the database's whole chain) and refuses:
//   - a database whose head is behind the anchor (an older backup restored, a lagging
//     replica promoted): fleet_db_behind (kConflict);
//   - one whose entry at the anchor's seq is not the anchored one (another history):
//     fleet_chain_broken (kCorruption);
//   - any entry that does not verify: bad_signature, fleet_chain_broken, malformed_fleet_entry;
//   - a wrap that does not open to the committed DEK, or a value that does not open:
//     fleet_wrap_invalid (kCorruption).
// A refusal stops the pull at the last good entry: the entries before it are returned to be
// applied, nothing after it, and the refusal is returned (the caller reports it:
// FleetDb::ReportApplied); the next Pull tries again from there. The private key never
// leaves the FleetHost. Not thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "agent/fleet/fleet_db.h"
#include "crypto/recovery_wrap.h"

namespace sk::fleet {

struct Change {
  std::string path;
  OpKind kind = OpKind::kPut;
  std::uint64_t version = 0;
  SecretBytes value;  // put only
};

// One entry this host applies, all or nothing: its changes may be empty (an entry for
// other hosts still moves the anchor).
struct EntryChanges {
  std::uint64_t seq = 0;
  Digest hash{};
  std::vector<Change> changes;
};

class FleetHost {
 public:
  // `key`: the host's ECDH key, in its hardware (hsm/pkcs11/ecdh_key.h) or in memory
  // (SoftwareEcdhKey); the overload with a scalar is the latter.
  [[nodiscard]] static Result<std::unique_ptr<FleetHost>> Create(std::string host_id,
                                                                 std::unique_ptr<EcdhPrivateKey> key,
                                                                 Bytes signer_public_key, ChainHead anchor);
  [[nodiscard]] static Result<std::unique_ptr<FleetHost>> Create(std::string host_id, SecretBytes private_key,
                                                                 Bytes signer_public_key, ChainHead anchor);

  struct Pulled {
    std::vector<EntryChanges> entries;  // verified and opened, in order
    Status refusal;                     // why the pull stopped early, or OK
  };
  // The entries after the ones already pulled. The caller applies each (all or nothing) and
  // then calls Applied() to move the anchor. When it cannot apply one, it makes a new
  // FleetHost from its anchor. An error: the database's head could not be read (nothing
  // moved); a database that fails later is a refusal (fleet_unavailable) like the others.
  [[nodiscard]] Result<Pulled> Pull(FleetDb& db);
  void Applied(const EntryChanges& e) { anchor_ = ChainHead{e.seq, e.hash}; }

  const ChainHead& anchor() const { return anchor_; }
  const std::string& host_id() const { return host_id_; }

 private:
  FleetHost(std::string host_id, std::unique_ptr<RecoveryOpener> opener, Bytes signer, ChainHead anchor)
      : host_id_(std::move(host_id)),
        opener_(std::move(opener)),
        chain_(std::move(signer)),
        anchor_(anchor) {}
  [[nodiscard]] Result<EntryChanges> Open(FleetDb& db, const Entry& e, const Digest& hash);
  // Verifies and opens one entry; OK with nothing when it is at or before the anchor.
  [[nodiscard]] Status Take(FleetDb& db, ByteView bytes, std::vector<EntryChanges>& out);

  std::string host_id_;
  std::unique_ptr<RecoveryOpener> opener_;
  FleetChain chain_;
  ChainHead anchor_;
};

}  // namespace sk::fleet
