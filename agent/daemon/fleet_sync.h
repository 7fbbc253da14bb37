// The host's side of the fleet (docs/fleet.md), run by the agent when its config has a
// [fleet] table: one thread that pulls the fleet journal from PostgreSQL, verifies it
// (fleet/fleet_host.h) and applies each entry to the local store.
//
// Each entry is applied as ONE local transaction (all or nothing) by an Actor with `fleet`
// set, the only one that may change the paths under [fleet] prefix:
//   - a put of fleet path P writes <prefix>/P, labelled sealkeep.fleet.version (P's fleet
//     version) and sealkeep.fleet.seq (the entry's seq);
//   - a delete deletes <prefix>/P's head (nothing when this host has no such path);
//   - and in every applied entry, the fleet anchor: the path <prefix> itself, whose value is
//     "<seq> <hash hex>" of that entry.
// So the anchor moves exactly with what it covers, and it lives in the local journal, which
// the hardware anchors: a copy of the store put back from before an entry is refused as a
// replay like any other, and the fleet database cannot take this host back either (a
// head behind the anchor is refused: fleet_db_behind).
//
// The host key is the backend's (KeyBackend::OpenHostKey): in the token, or made by the TPM.
// Waking: LISTEN sk_fleet, and a pull at least every [fleet] poll_seconds; a lost
// connection is retried from 1 s, doubling up to poll_seconds. While sealed it waits.
//
// What it reports (Report(), GET /v1/sys/fleet, /metrics, and to the fleet database's
// sk_fleet_applied for `sealkeep fleet status`): the seq applied, the database's head as
// last seen, when a pull last succeeded, and the refusal, if any. Alerts: fleet_refused
// (critical, once per distinct refusal) and fleet_behind (no successful pull for [fleet]
// lag_alert_seconds; once until a pull succeeds).
//
// Thread-safe: Report() from any thread; Start/Stop from the owner.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent/config/config.h"
#include "crypto/bytes.h"

namespace sk::fleet {
struct EntryChanges;
}  // namespace sk::fleet

namespace sk::daemon {

class Agent;

class FleetSync {
 public:
  FleetSync(Agent& agent, config::FleetConfig config);
  ~FleetSync();
  FleetSync(const FleetSync&) = delete;
  FleetSync& operator=(const FleetSync&) = delete;

  void Start();
  void Stop();
  // Pull now (after an unseal).
  void Wake();

  struct State {
    std::string host_id;
    std::string key_kind;  // "tpm" or "pkcs11" once the key is open, else ""
    Bytes public_key;      // empty until the key is open
    std::uint64_t applied_seq = 0;
    std::uint64_t db_head_seq = 0;      // as last seen
    bool db_reachable = false;          // the last attempt reached the database
    std::uint64_t last_success_ms = 0;  // Unix ms of the last pull that completed (0: none)
    std::uint64_t applied_entries = 0;  // entries applied since start
    std::uint64_t refusals = 0;         // pulls that ended in a refusal since start
    std::string refusal_reason;         // the current refusal ("" when the last pull had none)
    std::string refusal_message;
    std::string error;  // why it cannot pull (sealed, key, database), or ""
  };
  State Report() const;

  static std::uint64_t NowMs();  // Unix ms, as last_success_ms
  static constexpr const char* kSeqLabel = "sealkeep.fleet.seq";
  static constexpr const char* kVersionLabel = "sealkeep.fleet.version";

 private:
  void Run();
  // One entry as one local transaction, with the anchor (above).
  Status Apply(secrets::SecretService& svc, fleet::EntryChanges& e);
  // One round: open what is missing, pull, apply. Returns whether the database was reached.
  bool Round();
  void WaitForWork(bool connected);
  void NoteError(const std::string& what);
  void NoteRefusal(const Status& refusal);
  void CheckLag();

  Agent& agent_;
  const config::FleetConfig config_;
  struct Live;  // the thread's own: database, host, key, the service they belong to
  std::unique_ptr<Live> live_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;            // guarded by mu_
  bool wake_ = false;            // guarded by mu_
  State state_;                  // guarded by mu_
  std::string alerted_refusal_;  // guarded by mu_: the refusal last alerted
  bool alerted_lag_ = false;     // guarded by mu_
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_success_{};
  std::thread thread_;
};

}  // namespace sk::daemon
