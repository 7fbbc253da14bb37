#include "agent/fleet/fleet_writer.h"

#include <algorithm>
#include <chrono>

#include "agent/journal/sealer.h"
#include "agent/secrets/path.h"
#include "crypto/aead.h"
#include "crypto/ct.h"
#include "crypto/mac.h"
#include "crypto/random.h"
#include "crypto/recovery_wrap.h"

namespace sk::fleet {
namespace {

std::uint64_t NowMs() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

}  // namespace

Result<SecretBytes> EscrowKeyOf(const SecretBytes& signing_key) {
  // A valid scalar is below the group order, so about one candidate in 2^32 is not: the
  // next counter then gives the next candidate.
  for (std::uint8_t counter = 0; counter < 16; ++counter) {
    Bytes info = ToBytes("sealkeep fleet escrow v1");
    info.push_back(counter);
    SK_ASSIGN_OR_RETURN(SecretBytes candidate, HkdfSha256(signing_key, {}, info, 32));
    if (RecoveryPublicKey(candidate).ok()) return candidate;
  }
  return Internal("no escrow key could be derived");
}

Result<std::unique_ptr<FleetWriter>> FleetWriter::Create(FleetDb* db, SecretBytes signing_key) {
  SK_ASSIGN_OR_RETURN(Bytes public_key, RecoveryPublicKey(signing_key));
  SK_ASSIGN_OR_RETURN(SecretBytes escrow, EscrowKeyOf(signing_key));
  SK_ASSIGN_OR_RETURN(Bytes escrow_public, RecoveryPublicKey(escrow));
  std::unique_ptr<FleetWriter> w(new FleetWriter(db, std::move(signing_key), std::move(public_key)));
  SK_ASSIGN_OR_RETURN(w->escrow_sealer_, RecoverySealer::Create(escrow_public));
  SK_ASSIGN_OR_RETURN(w->escrow_opener_, RecoveryOpener::Create(std::move(escrow)));
  return w;
}

Status FleetWriter::Sync() {
  SK_ASSIGN_OR_RETURN(ChainHead head, db_->Head());
  return CatchUp(head);
}

Result<SecretBytes> FleetWriter::ReadValue(const std::string& path, std::uint64_t version, std::uint64_t seq,
                                           std::vector<std::string>* groups) {
  SK_ASSIGN_OR_RETURN(Bytes bytes, db_->EntryAt(seq));
  SK_ASSIGN_OR_RETURN(Entry e, DecodeEntry(bytes));
  SK_RETURN_IF_ERROR(VerifyEntry(e, public_key_));
  if (e.kind != EntryKind::kTxn)
    return NotFound("fleet entry " + std::to_string(seq) + " is not a txn", "not_found");
  SK_ASSIGN_OR_RETURN(std::vector<TxnOp> ops, DecodeTxn(e.body));
  auto op = std::find_if(ops.begin(), ops.end(), [&](const TxnOp& o) {
    return o.path == path && o.version == version && o.kind == OpKind::kPut;
  });
  if (op == ops.end()) {
    return NotFound("fleet entry " + std::to_string(seq) + " does not put " + path + " version " +
                        std::to_string(version),
                    "not_found");
  }
  SK_ASSIGN_OR_RETURN(std::vector<WrapRow> wraps, db_->WrapsFor(seq, kEscrowHost));
  auto wrap = std::find_if(wraps.begin(), wraps.end(),
                           [&](const WrapRow& w) { return w.path == path && w.version == version; });
  const auto invalid = [&] {
    return Corruption("fleet entry " + std::to_string(seq) + ": the escrow wrap of " + path +
                          " is missing or does not open to the committed key",
                      "fleet_wrap_invalid");
  };
  if (wrap == wraps.end()) return invalid();
  Result<SecretBytes> dek = escrow_opener_->Open(wrap->wrap, WrapAad(kEscrowHost, path, version));
  if (!dek.ok() || !ConstantTimeEqual(journal::DekCommit(*dek), op->dek_commit)) return invalid();
  if (groups != nullptr) *groups = op->groups;
  return AeadOpen(*dek, ValueAad(path, version), op->value);
}

Result<std::size_t> FleetWriter::Reissue(const std::string& host_id, const std::vector<std::string>& before,
                                         std::size_t batch,
                                         const std::function<void(std::size_t, std::size_t)>& progress) {
  SK_RETURN_IF_ERROR(Sync());
  auto me = chain_.hosts().find(host_id);
  if (me == chain_.hosts().end() || me->second.state != HostState::kAdmitted)
    return NotFound("host " + host_id + " is not admitted to the fleet", "not_found");
  const std::vector<std::string> groups = me->second.groups;
  std::vector<std::pair<std::string, PathHead>> todo;
  for (const auto& [path, head] : chain_.paths()) {
    if (head.kind == OpKind::kPut && FleetChain::Meet(groups, head.groups) &&
        !FleetChain::Meet(before, head.groups))
      todo.emplace_back(path, head);
  }
  batch = std::clamp<std::size_t>(batch, 1, kMaxOps);
  std::size_t done = 0;
  for (std::size_t from = 0; from < todo.size(); from += batch) {
    std::vector<PlainOp> ops;
    for (std::size_t i = from; i < std::min(todo.size(), from + batch); ++i) {
      const auto& [path, head] = todo[i];
      SK_ASSIGN_OR_RETURN(SecretBytes value, ReadValue(path, head.version, head.seq));
      ops.push_back(PlainOp{path, OpKind::kPut, head.groups, std::move(value)});
    }
    const std::size_t n = ops.size();
    SK_RETURN_IF_ERROR(Commit(std::move(ops)).status());
    done += n;
    if (progress) progress(done, todo.size());
  }
  return done;
}

Result<FleetSnapshot> FleetWriter::Snapshot(const std::string& name, const std::string& prefix) {
  SK_RETURN_IF_ERROR(secrets::ValidateSnapshotName(name));
  SK_RETURN_IF_ERROR(secrets::ValidatePrefix(prefix));
  SK_RETURN_IF_ERROR(Sync());
  FleetSnapshot snap;
  snap.name = name;
  snap.prefix = prefix;
  snap.head_seq = chain_.head().seq;
  snap.time_ms = NowMs();
  for (const auto& [path, head] : chain_.paths()) {
    if (head.kind == OpKind::kPut && secrets::PathMatchesPrefix(path, prefix))
      snap.paths.push_back(SnapshotPath{path, head.version, head.seq});
  }
  SK_ASSIGN_OR_RETURN(Bytes body, EncodeSnapshot(snap));
  SK_ASSIGN_OR_RETURN(Bytes signature, SignSnapshot(body, key_));
  SK_RETURN_IF_ERROR(db_->PutSnapshot(name, body, signature));
  return snap;
}

Result<FleetWriter::Restored> FleetWriter::Restore(const std::string& name) {
  SK_RETURN_IF_ERROR(secrets::ValidateSnapshotName(name));
  SK_ASSIGN_OR_RETURN(std::optional<FleetDb::StoredSnapshot> stored, db_->GetSnapshot(name));
  if (!stored) return NotFound("the fleet has no snapshot named " + name, "not_found");
  SK_RETURN_IF_ERROR(VerifySnapshot(stored->body, stored->signature, public_key_));
  SK_ASSIGN_OR_RETURN(FleetSnapshot snap, DecodeSnapshot(stored->body));
  if (snap.name != name)
    return Corruption("the snapshot stored as " + name + " is another one's", "bad_signature");
  SK_RETURN_IF_ERROR(Sync());
  Restored out;
  std::vector<PlainOp> ops;
  std::map<std::string, const SnapshotPath*> wanted;
  for (const SnapshotPath& p : snap.paths) wanted[p.path] = &p;
  for (const SnapshotPath& p : snap.paths) {
    auto now = chain_.paths().find(p.path);
    const bool live = now != chain_.paths().end() && now->second.kind == OpKind::kPut;
    if (live && now->second.version == p.version) {
      ++out.unchanged;
      continue;
    }
    // The groups the version had: those of the entry that wrote it.
    std::vector<std::string> groups;
    SK_ASSIGN_OR_RETURN(SecretBytes value, ReadValue(p.path, p.version, p.seq, &groups));
    // A later version with the same value and groups (an earlier restore, a re-issue) is
    // already what the snapshot says: restoring twice writes nothing the second time.
    if (live && now->second.groups == groups) {
      SK_ASSIGN_OR_RETURN(SecretBytes current, ReadValue(p.path, now->second.version, now->second.seq));
      if (current.Equals(value)) {
        ++out.unchanged;
        continue;
      }
    }
    ops.push_back(PlainOp{p.path, OpKind::kPut, std::move(groups), std::move(value)});
    ++out.put;
  }
  for (const auto& [path, head] : chain_.paths()) {
    if (head.kind == OpKind::kPut && secrets::PathMatchesPrefix(path, snap.prefix) &&
        wanted.count(path) == 0) {
      ops.push_back(PlainOp{path, OpKind::kDelete, head.groups, SecretBytes()});
      ++out.deleted;
    }
  }
  if (ops.empty()) return out;
  if (ops.size() > kMaxOps)
    return Status(Code::kTooLarge, "too_large",
                  "restoring " + name + " changes more than 999 paths: more than one entry can hold");
  SK_ASSIGN_OR_RETURN(out.seq, Commit(std::move(ops)));
  return out;
}

Status FleetWriter::CatchUp(const ChainHead& head) {
  while (chain_.head().seq < head.seq) {
    SK_ASSIGN_OR_RETURN(std::vector<Bytes> entries, db_->EntriesAfter(chain_.head().seq, 32));
    if (entries.empty()) break;
    for (const Bytes& e : entries) SK_RETURN_IF_ERROR(chain_.Accept(e).status());
  }
  if (chain_.head().seq != head.seq || chain_.head().hash != head.hash) {
    return Corruption("the fleet database's head (seq " + std::to_string(head.seq) +
                          ") is not the end of the chain this writer verified (seq " +
                          std::to_string(chain_.head().seq) + "): refusing to write on it",
                      "fleet_chain_broken");
  }
  return OkStatus();
}

Result<std::uint64_t> FleetWriter::AppendEntry(
    EntryKind kind, const std::function<Result<Bytes>(std::vector<WrapRow>&)>& body) {
  Entry checked;
  Digest hash{};
  auto build = [&](const ChainHead& head) -> Result<FleetDb::Append> {
    SK_RETURN_IF_ERROR(CatchUp(head));
    FleetDb::Append a;
    Entry e;
    e.seq = head.seq + 1;
    e.prev_hash = head.hash;
    e.time_ms = NowMs();
    e.signer_id = signer_id_;
    e.kind = kind;
    SK_ASSIGN_OR_RETURN(e.body, body(a.wraps));
    SK_ASSIGN_OR_RETURN(a.entry, SignEntry(e, key_));
    // Checked as every host will check it, before it is committed: an entry the chain
    // refuses would stop every host and writer at its seq for good.
    SK_ASSIGN_OR_RETURN(checked, chain_.Check(a.entry));
    a.seq = e.seq;
    a.hash = EntryHash(a.entry);
    hash = a.hash;
    return a;
  };
  SK_RETURN_IF_ERROR(db_->AppendLocked(build));
  // Committed: the writer's chain takes the entry it checked above.
  chain_.Apply(checked, hash);
  return checked.seq;
}

Result<const RecoverySealer*> FleetWriter::SealerFor(const HostRecord& host) {
  auto it = sealers_.find(host.host_id);
  if (it == sealers_.end() || it->second->key_id() != RecoveryKeyId(host.public_key)) {
    SK_ASSIGN_OR_RETURN(std::unique_ptr<RecoverySealer> sealer, RecoverySealer::Create(host.public_key));
    it = sealers_.insert_or_assign(host.host_id, std::move(sealer)).first;
  }
  return it->second.get();
}

Result<std::uint64_t> FleetWriter::PutHost(const HostRecord& host) {
  // A key that is not a P-256 point would make every later put to its groups fail.
  SK_RETURN_IF_ERROR(RecoverySealer::Create(host.public_key).status());
  return AppendEntry(EntryKind::kHost, [&](std::vector<WrapRow>&) { return EncodeHost(host); });
}

Result<std::uint64_t> FleetWriter::Commit(std::vector<PlainOp> ops) {
  std::sort(ops.begin(), ops.end(), [](const PlainOp& a, const PlainOp& b) { return a.path < b.path; });
  auto body = [&](std::vector<WrapRow>& wraps) -> Result<Bytes> {
    std::vector<TxnOp> txn;
    for (const PlainOp& op : ops) {
      TxnOp t;
      t.path = op.path;
      t.kind = op.kind;
      t.version = chain_.LastVersion(op.path) + 1;
      t.groups = op.groups;
      if (op.kind == OpKind::kPut) {
        std::vector<const HostRecord*> hosts = chain_.Entitled(op.groups);
        if (hosts.empty()) {
          return FailedPrecondition("no admitted host may read " + op.path + ": nobody could ever open it",
                                    "no_entitled_host");
        }
        SK_ASSIGN_OR_RETURN(SecretBytes dek, RandomSecret(kAeadKeySize));
        t.dek_commit = journal::DekCommit(dek);
        SK_ASSIGN_OR_RETURN(t.value, AeadSeal(dek, ValueAad(op.path, t.version), op.value));
        for (const HostRecord* h : hosts) {
          SK_ASSIGN_OR_RETURN(const RecoverySealer* sealer, SealerFor(*h));
          SK_ASSIGN_OR_RETURN(Bytes wrap, sealer->Seal(dek, WrapAad(h->host_id, op.path, t.version)));
          wraps.push_back(WrapRow{h->host_id, op.path, t.version, std::move(wrap)});
        }
        SK_ASSIGN_OR_RETURN(Bytes escrow,
                            escrow_sealer_->Seal(dek, WrapAad(kEscrowHost, op.path, t.version)));
        wraps.push_back(WrapRow{kEscrowHost, op.path, t.version, std::move(escrow)});
      }
      txn.push_back(std::move(t));
    }
    return EncodeTxn(txn);
  };
  return AppendEntry(EntryKind::kTxn, body);
}

}  // namespace sk::fleet
