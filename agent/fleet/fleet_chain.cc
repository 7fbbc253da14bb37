#include "agent/fleet/fleet_chain.h"

#include <algorithm>
#include <iterator>

namespace sk::fleet {

bool FleetChain::Meet(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  auto i = a.begin();
  auto j = b.begin();
  while (i != a.end() && j != b.end()) {
    if (*i == *j) return true;
    (*i < *j) ? ++i : ++j;
  }
  return false;
}

std::uint64_t FleetChain::LastVersion(std::string_view path) const {
  auto it = paths_.find(path);
  return it == paths_.end() ? 0 : it->second.version;
}

std::vector<const HostRecord*> FleetChain::Entitled(const std::vector<std::string>& groups) const {
  std::vector<const HostRecord*> out;
  for (const auto& [id, host] : hosts_) {
    if (host.state == HostState::kAdmitted && Meet(host.groups, groups)) out.push_back(&host);
  }
  return out;
}

Result<Entry> FleetChain::Check(ByteView encoded) const {
  SK_ASSIGN_OR_RETURN(Entry e, DecodeEntry(encoded));
  if (e.seq != head_.seq + 1 || e.prev_hash != head_.hash) {
    return Corruption("fleet entry " + std::to_string(e.seq) + " does not follow entry " +
                          std::to_string(head_.seq) + " (" +
                          (e.seq != head_.seq + 1 ? "a gap or a repeat" : "another history") + ")",
                      "fleet_chain_broken");
  }
  SK_RETURN_IF_ERROR(VerifyEntry(e, signer_));
  if (e.kind == EntryKind::kHost) {
    SK_RETURN_IF_ERROR(DecodeHost(e.body).status());
  } else {
    SK_ASSIGN_OR_RETURN(std::vector<TxnOp> ops, DecodeTxn(e.body));
    for (const TxnOp& op : ops) {
      if (op.version != LastVersion(op.path) + 1) {
        return Corruption("fleet entry " + std::to_string(e.seq) + " writes " + op.path + " version " +
                              std::to_string(op.version) + " after version " +
                              std::to_string(LastVersion(op.path)),
                          "fleet_chain_broken");
      }
    }
  }
  return e;
}

void FleetChain::Apply(const Entry& checked, const Digest& hash) {
  if (checked.kind == EntryKind::kHost) {
    Result<HostRecord> h = DecodeHost(checked.body);
    if (h.ok()) {
      std::string id = h->host_id;
      hosts_[id] = std::move(*h);
    }
  } else {
    Result<std::vector<TxnOp>> ops = DecodeTxn(checked.body);
    if (ops.ok()) {
      for (const TxnOp& op : *ops) paths_[op.path] = PathHead{op.version, checked.seq, op.kind, op.groups};
    }
  }
  head_ = ChainHead{checked.seq, hash};
}

Result<Entry> FleetChain::Accept(ByteView encoded) {
  SK_ASSIGN_OR_RETURN(Entry e, Check(encoded));
  Apply(e, EntryHash(encoded));
  return e;
}

}  // namespace sk::fleet
