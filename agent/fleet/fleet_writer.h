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
// Errors: those of FleetDb and FleetChain; bad_txn (kInvalidArgument) for an empty or
// malformed transaction; no_entitled_host (kFailedPrecondition) for a put nobody may read.
// Not thread-safe: one FleetWriter per thread (each with its own FleetDb).
#pragma once

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

class FleetWriter {
 public:
  [[nodiscard]] static Result<std::unique_ptr<FleetWriter>> Create(FleetDb* db, SecretBytes signing_key);

  // A host entry (admit, regroup, remove). Returns the entry's seq.
  [[nodiscard]] Result<std::uint64_t> PutHost(const HostRecord& host);
  // One txn entry; `ops` in any order (sorted here). Returns the entry's seq.
  [[nodiscard]] Result<std::uint64_t> Commit(std::vector<PlainOp> ops);

  const FleetChain& chain() const { return chain_; }

 private:
  FleetWriter(FleetDb* db, SecretBytes key, Bytes public_key)
      : db_(db), key_(std::move(key)), chain_(public_key), signer_id_(SignerIdOf(public_key)) {}
  // Catches the chain up with the database (inside the append's transaction).
  [[nodiscard]] Status CatchUp(const ChainHead& head);
  [[nodiscard]] Result<std::uint64_t> AppendEntry(
      EntryKind kind, const std::function<Result<Bytes>(std::vector<WrapRow>&)>& body);

  [[nodiscard]] Result<const RecoverySealer*> SealerFor(const HostRecord& host);

  FleetDb* db_;
  SecretBytes key_;
  std::map<std::string, std::unique_ptr<RecoverySealer>> sealers_;  // by host id
  FleetChain chain_;
  SignerId signer_id_;
};

}  // namespace sk::fleet
