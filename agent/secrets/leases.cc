// Lease records in the journal (lease_record.h) and the service's side of them.
#include <algorithm>
#include <mutex>

#include "agent/secrets/lease_record.h"
#include "agent/secrets/service_impl.h"

namespace sk::secrets {

std::string_view LeaseStateName(LeaseState s) {
  switch (s) {
    case LeaseState::kCreating:
      return "creating";
    case LeaseState::kActive:
      return "active";
    case LeaseState::kRevoking:
      return "revoking";
    case LeaseState::kRevoked:
      return "revoked";
    case LeaseState::kFailed:
      return "failed";
  }
  return "unknown";
}

std::optional<LeaseState> ParseLeaseState(std::string_view name) {
  for (LeaseState s : {LeaseState::kCreating, LeaseState::kActive, LeaseState::kRevoking,
                       LeaseState::kRevoked, LeaseState::kFailed}) {
    if (LeaseStateName(s) == name) return s;
  }
  return std::nullopt;
}

bool LeaseTransitionAllowed(LeaseState from, LeaseState to) {
  if (from == LeaseState::kRevoked) return false;  // final
  if (to == LeaseState::kRevoked) return true;     // the role is gone, from any state
  switch (from) {
    case LeaseState::kCreating:
      return to == LeaseState::kActive || to == LeaseState::kFailed || to == LeaseState::kRevoking;
    case LeaseState::kActive:
    case LeaseState::kFailed:
      return to == LeaseState::kRevoking;
    default:
      return false;
  }
}

bool ValidLeaseId(std::string_view id) {
  return id.size() == 16 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string LeaseRole(std::string_view id) { return "sk_lease_" + std::string(id); }

namespace {

bool Token(std::string_view s) {
  return !s.empty() && s.size() <= 512 &&
         std::none_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\n' || c == '\0'; });
}

bool ParseU64(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string_view::npos) return false;
  out = std::stoull(std::string(s));
  return true;
}

}  // namespace

std::string EncodeLeaseNote(const LeaseRecord& r) {
  std::string out = "lease v1 id=" + r.id + " name=" + r.name + " role=" + r.role +
                    " state=" + std::string(LeaseStateName(r.state)) +
                    " created=" + std::to_string(r.created_ms);
  if (!r.reason.empty()) out += " reason=" + r.reason;
  return out;
}

std::optional<LeaseRecord> ParseLeaseNote(std::string_view note) {
  constexpr std::string_view kPrefix = "lease v1 ";
  if (note.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  note.remove_prefix(kPrefix.size());
  LeaseRecord r;
  bool have_state = false, have_created = false;
  while (!note.empty()) {
    const std::size_t end = std::min(note.find(' '), note.size());
    std::string_view field = note.substr(0, end);
    note.remove_prefix(std::min(end + 1, note.size()));
    const std::size_t eq = field.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    std::string_view key = field.substr(0, eq), value = field.substr(eq + 1);
    if (!Token(value)) return std::nullopt;
    if (key == "id") {
      r.id = value;
    } else if (key == "name") {
      r.name = value;
    } else if (key == "role") {
      r.role = value;
    } else if (key == "state") {
      auto s = ParseLeaseState(value);
      if (!s) return std::nullopt;
      r.state = *s;
      have_state = true;
    } else if (key == "created") {
      if (!ParseU64(value, r.created_ms)) return std::nullopt;
      have_created = true;
    } else if (key == "reason") {
      r.reason = value;
    } else {
      return std::nullopt;
    }
  }
  if (!ValidLeaseId(r.id) || r.name.empty() || r.role != LeaseRole(r.id) || !have_state || !have_created)
    return std::nullopt;
  return r;
}

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
      (!record.reason.empty() && !Token(record.reason))) {
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
