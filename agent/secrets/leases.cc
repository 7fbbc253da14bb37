// Lease records in the journal (lease_record.h): their effect on the index, and the
// service's side of them. The pure half is lease_record.cc.
#include <algorithm>
#include <mutex>

#include "agent/secrets/lease_record.h"
#include "agent/secrets/service_impl.h"

namespace sk::secrets {

void ApplyLeaseEntry(std::map<std::string, LeaseRecord>& leases, const journal::Entry& e) {
  std::optional<LeaseRecord> r = ParseLeaseNote(e.detail.note);
  if (!r) return;
  auto it = leases.find(r->id);
  if (it == leases.end()) {
    if (r->state != LeaseState::kCreating) return;  // a lease starts by being created
    r->expires_ms = e.expires_ms;
    r->updated_ms = e.time_ms;
    r->seq = e.seq;
    r->actor = e.actor;
    leases.emplace(r->id, std::move(*r));
    return;
  }
  LeaseRecord& cur = it->second;
  if (!LeaseTransitionAllowed(cur.state, r->state)) return;
  cur.state = r->state;
  cur.reason = r->reason;
  cur.updated_ms = e.time_ms;
  cur.seq = e.seq;
}

}  // namespace sk::secrets

namespace sk::secrets::internal {

Result<TxnResult> ServiceImpl::RecordLease(const LeaseRecord& record, const Actor& actor) {
  SK_RETURN_IF_ERROR(Fenced());
  if (!ValidLeaseId(record.id) || record.role != LeaseRole(record.id) || !ValidatePath(record.name).ok() ||
      (!record.reason.empty() && !ValidLeaseToken(record.reason))) {
    return InvalidArgument("not a lease record", "bad_lease");
  }
  // One lease change at a time: the state checked here is the one the entry follows.
  std::lock_guard<std::mutex> serial(lease_mu_);
  LeaseRecord written = record;
  {
    std::shared_lock<std::shared_mutex> lock(index_mu_);
    auto it = index_.leases.find(record.id);
    if (it == index_.leases.end()) {
      if (record.state != LeaseState::kCreating)
        return Status(Code::kNotFound, "no_such_lease", "no lease " + record.id);
    } else {
      const LeaseRecord& cur = it->second;
      if (!LeaseTransitionAllowed(cur.state, record.state)) {
        return Status(Code::kFailedPrecondition, "lease_state",
                      "lease " + record.id + " is " + std::string(LeaseStateName(cur.state)) +
                          "; it cannot become " + std::string(LeaseStateName(record.state)));
      }
      // Only the state and its reason change; the rest is the lease's from its creation.
      const LeaseState state = record.state;
      std::string reason = record.reason;
      written = cur;
      written.state = state;
      written.reason = std::move(reason);
    }
  }
  TxnResult result;
  Status st = Submit([&](Batch& b) -> Status {
    journal::Entry e;
    e.kind = journal::Kind::kLease;
    e.actor = actor.text.substr(0, journal::kMaxActorBytes);
    e.expires_ms = written.expires_ms;
    e.detail.note = EncodeLeaseNote(written);
    SK_RETURN_IF_ERROR(b.Append(std::move(e)).status());
    result.txn_id = HexEncode(b.txn_id());
    result.seq = b.tip().seq;
    result.results.push_back({"lease", "", 0});
    return OkStatus();
  });
  if (!st.ok()) return st;
  return result;
}

std::vector<LeaseRecord> ServiceImpl::Leases() {
  std::shared_lock<std::shared_mutex> lock(index_mu_);
  std::vector<LeaseRecord> out;
  out.reserve(index_.leases.size());
  for (const auto& [id, r] : index_.leases) out.push_back(r);
  std::sort(out.begin(), out.end(), [](const LeaseRecord& a, const LeaseRecord& b) {
    return a.created_ms != b.created_ms ? a.created_ms < b.created_ms : a.id < b.id;
  });
  return out;
}

}  // namespace sk::secrets::internal
