#include "agent/fleet/fleet_host.h"

#include <algorithm>

#include "agent/journal/sealer.h"
#include "crypto/aead.h"
#include "crypto/ct.h"

namespace sk::fleet {
namespace {

Status WrapInvalid(const std::string& what) { return Corruption(what, "fleet_wrap_invalid"); }

}  // namespace

Result<std::unique_ptr<FleetHost>> FleetHost::Create(std::string host_id, std::unique_ptr<EcdhPrivateKey> key,
                                                     Bytes signer_public_key, ChainHead anchor) {
  SK_RETURN_IF_ERROR(ValidateName("host", host_id));
  std::unique_ptr<RecoveryOpener> opener = RecoveryOpener::Create(std::move(key));
  return std::unique_ptr<FleetHost>(
      new FleetHost(std::move(host_id), std::move(opener), std::move(signer_public_key), anchor));
}

Result<std::unique_ptr<FleetHost>> FleetHost::Create(std::string host_id, SecretBytes private_key,
                                                     Bytes signer_public_key, ChainHead anchor) {
  SK_ASSIGN_OR_RETURN(std::unique_ptr<EcdhPrivateKey> key, SoftwareEcdhKey(std::move(private_key)));
  return Create(std::move(host_id), std::move(key), std::move(signer_public_key), anchor);
}

Result<EntryChanges> FleetHost::Open(FleetDb& db, const Entry& e, const Digest& hash) {
  const FleetChain& chain = chain_;
  EntryChanges out;
  out.seq = e.seq;
  out.hash = hash;
  if (e.kind != EntryKind::kTxn) return out;
  auto me = chain.hosts().find(host_id_);
  if (me == chain.hosts().end() || me->second.state != HostState::kAdmitted) return out;
  if (me->second.public_key != opener_->public_key()) {
    return FailedPrecondition("the fleet admitted host " + host_id_ + " with another key than this host's",
                              "fleet_host_key_mismatch");
  }
  SK_ASSIGN_OR_RETURN(std::vector<TxnOp> ops, DecodeTxn(e.body));
  std::vector<WrapRow> wraps;
  bool fetched = false;
  for (TxnOp& op : ops) {
    if (!FleetChain::Meet(me->second.groups, op.groups)) continue;
    Change c;
    c.path = op.path;
    c.kind = op.kind;
    c.version = op.version;
    if (op.kind == OpKind::kPut) {
      if (!fetched) {
        SK_ASSIGN_OR_RETURN(wraps, db.WrapsFor(e.seq, host_id_));
        fetched = true;
      }
      const WrapRow* wrap = nullptr;
      for (const WrapRow& w : wraps) {
        if (w.path == op.path && w.version == op.version) wrap = &w;
      }
      if (wrap == nullptr)
        return WrapInvalid("fleet entry " + std::to_string(e.seq) + " has no wrap of " + op.path +
                           " for this host");
      Result<SecretBytes> dek = opener_->Open(wrap->wrap, WrapAad(host_id_, op.path, op.version));
      if (!dek.ok() || !ConstantTimeEqual(journal::DekCommit(*dek), op.dek_commit)) {
        return WrapInvalid("fleet entry " + std::to_string(e.seq) + ": the wrap of " + op.path +
                           " does not open to the key the entry commits to");
      }
      Result<SecretBytes> value = AeadOpen(*dek, ValueAad(op.path, op.version), op.value);
      if (!value.ok())
        return WrapInvalid("fleet entry " + std::to_string(e.seq) + ": the value of " + op.path +
                           " does not open");
      c.value = std::move(*value);
    }
    out.changes.push_back(std::move(c));
  }
  return out;
}

Status FleetHost::Take(FleetDb& db, ByteView bytes, std::vector<EntryChanges>& out) {
  // Checked before Accept so that a refused entry leaves the chain where it was.
  SK_ASSIGN_OR_RETURN(Entry peek, DecodeEntry(bytes));
  if (peek.seq == anchor_.seq && EntryHash(bytes) != anchor_.hash) {
    return Corruption("the fleet database's entry " + std::to_string(peek.seq) +
                          " is not the one this host applied: another history",
                      "fleet_chain_broken");
  }
  SK_ASSIGN_OR_RETURN(Entry e, chain_.Check(bytes));
  const Digest hash = EntryHash(bytes);
  if (e.seq <= anchor_.seq) {
    chain_.Apply(e, hash);
    return OkStatus();
  }
  SK_ASSIGN_OR_RETURN(EntryChanges changes, Open(db, e, hash));
  chain_.Apply(e, hash);
  out.push_back(std::move(changes));
  return OkStatus();
}

Result<FleetHost::Pulled> FleetHost::Pull(FleetDb& db) {
  SK_ASSIGN_OR_RETURN(ChainHead head, db.Head());
  Pulled p;
  if (head.seq < anchor_.seq || head.seq < chain_.head().seq) {
    p.refusal = Status(Code::kConflict, "fleet_db_behind",
                       "the fleet database's head is entry " + std::to_string(head.seq) + ", behind entry " +
                           std::to_string(std::max(anchor_.seq, chain_.head().seq)) +
                           " which this host has verified: refusing to go backwards");
    return p;
  }
  while (chain_.head().seq < head.seq) {
    Result<std::vector<Bytes>> entries = db.EntriesAfter(chain_.head().seq, 32);
    if (!entries.ok()) {
      p.refusal = entries.status();  // what came before stays good
      return p;
    }
    if (entries->empty()) {
      p.refusal = Status(Code::kConflict, "fleet_db_behind",
                         "the fleet database's head names entries it does not hold");
      return p;
    }
    for (const Bytes& bytes : *entries) {
      if (Status st = Take(db, bytes, p.entries); !st.ok()) {
        p.refusal = st;
        return p;
      }
    }
  }
  return p;
}

}  // namespace sk::fleet
