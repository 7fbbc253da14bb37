#include "agent/fleet/fleet_writer.h"

#include <algorithm>
#include <chrono>

#include "agent/journal/sealer.h"
#include "crypto/aead.h"
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

Result<std::unique_ptr<FleetWriter>> FleetWriter::Create(FleetDb* db, SecretBytes signing_key) {
  SK_ASSIGN_OR_RETURN(Bytes public_key, RecoveryPublicKey(signing_key));
  return std::unique_ptr<FleetWriter>(new FleetWriter(db, std::move(signing_key), std::move(public_key)));
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
      }
      txn.push_back(std::move(t));
    }
    return EncodeTxn(txn);
  };
  return AppendEntry(EntryKind::kTxn, body);
}

}  // namespace sk::fleet
