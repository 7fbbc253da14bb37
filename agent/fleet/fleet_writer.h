// The admins' side of the fleet journal: holds the fleet signing key, keeps a verified
// FleetChain of the journal, and appends signed entries through FleetDb::AppendLocked (the
// head row locked, so concurrent writers queue and never fork the chain).
//
// Commit() turns plaintext ops into one txn entry: per put, a fresh DEK, the value sealed
// under it (fleet_format.h's value AAD), its commitment in the entry, and the DEK wrapped
// (ECIES, crypto/recovery_wrap.h) to every admitted host entitled by the op's groups, with
// AAD binding host id, path and version. Plaintext and DEKs live in SecretBytes only. The
// writer keeps one RecoverySealer (one ephemeral key) per host for its life, as the agent does
// for the recovery key: the ECDH is paid once per host, and every wrap still has its own key,
// bound to its AAD (and the host's opener keeps the shared secret of the ephemerals it saw).
//
// The escrow key (kEscrowHost): a second P-256 key derived from the signing key (HKDF-SHA256,
// info "sealkeep fleet escrow v1"), so admins hold one secret. Every put's DEK is wrapped to
// it too, as to one more host: the writer can read back any version it wrote, to re-issue it
// to a host that joins a group (Reissue) and to put a snapshot back (Restore). PostgreSQL's
// admins cannot: the escrow key is as much the fleet admins' as the signing key.
//
// Errors: those of FleetDb and FleetChain; bad_txn (kInvalidArgument) for an empty or
// malformed transaction; no_entitled_host (kFailedPrecondition) for a put nobody may read.
// Not thread-safe: one FleetWriter per thread (each with its own FleetDb).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/fleet/fleet_db.h"
#include "crypto/recovery_wrap.h"

namespace sk::fleet {

struct PlainOp {
  std::string path;
  OpKind kind = OpKind::kPut;
  std::vector<std::string> groups;  // ascending
  SecretBytes value;                // put only
};

inline constexpr const char* kEscrowHost = "@escrow";  // not a valid host id: no host can be it

// The escrow key of a signing key.
[[nodiscard]] Result<SecretBytes> EscrowKeyOf(const SecretBytes& signing_key);

class FleetWriter {
 public:
  [[nodiscard]] static Result<std::unique_ptr<FleetWriter>> Create(FleetDb* db, SecretBytes signing_key);

  // A host entry (admit, regroup, remove). Returns the entry's seq.
  [[nodiscard]] Result<std::uint64_t> PutHost(const HostRecord& host);
  // One txn entry; `ops` in any order (sorted here). Returns the entry's seq.
  [[nodiscard]] Result<std::uint64_t> Commit(std::vector<PlainOp> ops);

  // Catches the chain up with the database's head (what Reissue, Snapshot and Restore read).
  [[nodiscard]] Status Sync();

  // The value of `path` at `version`, written by entry `seq`: its escrow wrap opened and
  // checked against the signed commitment. not_found when that entry wrote no such put;
  // fleet_wrap_invalid when the escrow wrap is missing or does not open to the committed key.
  // `groups`, when given, receives the groups that version was written for.
  [[nodiscard]] Result<SecretBytes> ReadValue(const std::string& path, std::uint64_t version,
                                              std::uint64_t seq, std::vector<std::string>* groups = nullptr);

  // Re-issues, as new versions with the same values and groups, every live path that host
  // `host_id` may read under its groups now but could not under `before` (its groups before
  // this change; empty for a new host), `batch` paths per entry; `progress(done, total)`
  // after each entry. A host replays only the entries after its admission, so this is how
  // it receives what was written before. Returns how many paths were re-issued.
  [[nodiscard]] Result<std::size_t> Reissue(const std::string& host_id,
                                            const std::vector<std::string>& before, std::size_t batch,
                                            const std::function<void(std::size_t, std::size_t)>& progress);

  // Records which version of each live path under `prefix` the head holds, signed, as
  // `name` (snapshot_exists when the name is taken).
  [[nodiscard]] Result<FleetSnapshot> Snapshot(const std::string& name, const std::string& prefix);
  struct Restored {
    std::uint64_t seq = 0;  // 0: nothing differed, nothing written
    std::size_t put = 0, deleted = 0, unchanged = 0;
  };
  // One txn entry that puts the snapshot's prefix back as it was: each path whose live
  // version is not the snapshot's gets that version's value again (with its groups then),
  // and each live path under the prefix that the snapshot does not name is deleted. Every
  // host applies it all or nothing. not_found for an unknown name; bad_signature or
  // malformed_fleet_snapshot for one that does not verify.
  [[nodiscard]] Result<Restored> Restore(const std::string& name);

  const FleetChain& chain() const { return chain_; }

 private:
  FleetWriter(FleetDb* db, SecretBytes key, Bytes public_key)
      : db_(db),
        key_(std::move(key)),
        public_key_(public_key),
        chain_(public_key),
        signer_id_(SignerIdOf(public_key)) {}
  // Catches the chain up with the database (inside the append's transaction).
  [[nodiscard]] Status CatchUp(const ChainHead& head);
  [[nodiscard]] Result<std::uint64_t> AppendEntry(
      EntryKind kind, const std::function<Result<Bytes>(std::vector<WrapRow>&)>& body);

  [[nodiscard]] Result<const RecoverySealer*> SealerFor(const HostRecord& host);

  FleetDb* db_;
  SecretBytes key_;
  Bytes public_key_;
  std::unique_ptr<RecoverySealer> escrow_sealer_;
  std::unique_ptr<RecoveryOpener> escrow_opener_;
  std::map<std::string, std::unique_ptr<RecoverySealer>> sealers_;  // by host id
  FleetChain chain_;
  SignerId signer_id_;
};

}  // namespace sk::fleet
