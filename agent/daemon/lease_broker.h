// Leased database users, the agent's half (docs/rotation.md "Leases"). The agent keeps
// PrivateNetwork=yes, so it never talks to a database: it asks the lease server (`sealkeep
// rotator --serve-leases`, sealkeep-leases.service) over a Unix socket to make or drop a
// role, and keeps the record of every lease in its journal (lease_record.h). The order
// makes every crash safe:
//   create: journal `creating` (id, role, expiry) -> the server makes the role with
//           VALID UNTIL = the expiry -> journal `active` -> the caller gets the login, once.
//           A failure journals `failed`; a crash leaves `creating`. Both are dropped by the
//           sweep, so no role outlives its record (and PostgreSQL refuses it after VALID
//           UNTIL in any case).
//   revoke: journal `revoking` -> the server terminates the role's sessions and drops it
//           -> journal `revoked`. A drop that fails stays `revoking`, raises the alert
//           lease_revoke_failed (once per lease until it lands) and is retried by every
//           sweep (every [leases] sweep_seconds), across restarts.
//   expiry: the sweep drops every active lease past its end the same way.
//   reap:   every kReapEvery sweeps, the server drops lease roles an hour past their VALID
//           UNTIL that no record names (a store put back from an old copy loses records).
//
// The wire (one request per connection, SO_PEERCRED-checked by the server): a JSON line
//   {"op":"create","name":N,"role":R,"valid_until":UNIX_SECONDS}  then the password line
//   {"op":"drop","name":N,"role":R}
//   {"op":"reap"}
// and the answer, one JSON line: {"ok":true} or {"ok":false,"reason":CODE,"message":TEXT}.
//
// Thread-safety: every member is safe to call from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/secrets/lease_record.h"
#include "agent/secrets/service.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk::daemon {

class Agent;

// The longest lease a caller may ask for (the server's max_ttl is usually lower).
inline constexpr std::chrono::seconds kMaxLeaseTtl{365LL * 24 * 3600};
// A `creating` record older than this with no create in flight is a crash's leftover.
inline constexpr std::chrono::seconds kCreatingGrace{120};
// Every this many sweeps (the first included) the lease server is asked to reap: drop
// lease roles long past their VALID UNTIL that no record names (LeaseDatabase::Reap).
inline constexpr std::uint64_t kReapEvery = 20;

class LeaseBroker {
 public:
  LeaseBroker(Agent& agent, std::string socket, std::chrono::seconds sweep_every);
  ~LeaseBroker();
  LeaseBroker(const LeaseBroker&) = delete;
  LeaseBroker& operator=(const LeaseBroker&) = delete;

  // The sweeper thread: every sweep_every, drops what must go. Stop() joins it (also the destructor).
  void Start();
  void Stop();

  struct Granted {
    secrets::LeaseRecord record;
    SecretBytes password;
  };
  // A new lease of kind `name` for `ttl`. Errors: leases_disabled (kFailedPrecondition),
  // bad_ttl (kInvalidArgument), lease_server_unavailable (kUnavailable), the server's
  // reason (unknown_lease, ttl_too_long, target_*), a commit's.
  Result<Granted> Create(const std::string& name, std::chrono::seconds ttl, const secrets::Actor& actor);

  struct Listed {
    secrets::LeaseRecord record;
    std::uint32_t failed_attempts = 0;  // drops that failed since this agent started
    std::string last_error;             // the last one's message ("" when none)
  };
  // Revokes lease `id` now: OK with its state afterwards (revoked, or revoking with the
  // error when the drop failed and will be retried). Errors: no_such_lease (kNotFound).
  Result<Listed> Revoke(const std::string& id, const secrets::Actor& actor);
  std::vector<Listed> List();
  // One sweep, now, on the calling thread (tests; the sweeper calls it too).
  void SweepOnce();

 private:
  // Asks the server; `password` only for create. OK when it answered ok.
  Status Call(const std::string& header, const SecretBytes* password) const;
  // Drops the role of lease r.id (its state re-read first: nothing to do once revoked; only
  // `revoking` journaled while its create is under way) and journals `revoked` with
  // `reason`; on failure journals `revoking` (when it was not) and counts the failure.
  Status Drop(const secrets::LeaseRecord& r, const std::string& reason);
  void NoteFailure(const secrets::LeaseRecord& r, const Status& st);

  Agent& agent_;
  const std::string socket_;
  const std::chrono::seconds sweep_every_;

  std::mutex drop_mu_;  // one drop at a time (the sweeper and a revoke)
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::set<std::string> in_flight_;  // creates under way (their `creating` is not a leftover)
  struct Failure {
    std::uint32_t attempts = 0;
    std::string last_error;
    bool alerted = false;
  };
  std::map<std::string, Failure> failures_;
  std::atomic<std::uint64_t> sweeps_{0};
  std::thread sweeper_;
};

}  // namespace sk::daemon
