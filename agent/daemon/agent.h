// Agent: the daemon's state, independent of HTTP. It owns the configuration, the key
// backend and the secret service while unsealed, the running policy and the audit log,
// and the reason it is sealed when it is.
//
// Sealed vs unsealed: Unseal() opens the backend (log in / unseal the TPM), the service
// (verifies the journal against the hardware anchor) and the audit log; any failure
// leaves the agent sealed with that reason (boot_state_changed, pin_incorrect,
// replay_detected...) and nothing open. Seal() drops the service, the cached data keys,
// the audit key and the backend. In-flight requests keep the service they started with
// (shared_ptr) until they finish.
//
// Unseal() and AcceptRollback() do their slow work (HSM login, journal verification)
// without the lock that service() and audit() take, so requests keep being answered
// (503 sealed) meanwhile; they are serialised among themselves and with Seal(), so two
// concurrent unseals open the service once.
//
// Auditing while sealed: Audit() queues records while there is no audit writer
// (audit/sealed_queue.h) and the next successful Unseal()/AcceptRollback() writes them
// before it returns, before any record made after it.
//
// Thread-safe: every method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/alerts/alerts.h"
#include "agent/audit/audit_writer.h"
#include "agent/audit/sealed_queue.h"
#include "agent/config/config.h"
#include "agent/daemon/fleet_sync.h"
#include "agent/daemon/lease_broker.h"
#include "agent/policy/policy_holder.h"
#include "agent/secrets/service.h"
#include "hsm/key_backend.h"

namespace sk::daemon {

class Agent {
 public:
  explicit Agent(config::AgentConfig config);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Loads the policy file (when configured). A bad file is an error at start-up.
  Status LoadPolicy();
  // SIGHUP: re-reads the policy; a bad file keeps the running one and returns why.
  Status ReloadPolicy();

  Status Unseal();
  void Seal(const std::string& why);
  // Called once each time the agent becomes unsealed (Unseal, AcceptRollback), on the
  // thread that unsealed it, after the service is published. Set before serving starts.
  void SetOnUnsealed(std::function<void()> callback) { on_unsealed_ = std::move(callback); }
  // Called from the committer after every commit that wrote journal entries, with the new
  // head's seq (SecretService's on_commit). Must not block.
  void SetOnCommit(std::function<void(std::uint64_t)> callback);
  // When the open service has fenced itself (the store changed behind its back:
  // SecretService::Fenced), seals the agent with that reason (replay_detected), raises the
  // alert and returns true, so /v1/health, /metrics and sys/recover see what start-up
  // would. The daemon calls it every tick and the API after any replay_detected answer.
  bool SealIfFenced();
  // POST /v1/sys/recover: only while sealed with replay_detected.
  Result<std::string> AcceptRollback(const secrets::Actor& actor);

  struct ResealResult {
    std::vector<int> pcrs;  // what the master key is sealed to now
    std::string txn_id;
    std::uint64_t seq = 0;
  };
  // POST /v1/sys/reseal: seals the master key anew to the current values of `pcrs` (the
  // config's when nullopt), while unsealed and only on a backend that can (the TPM;
  // not_tpm_backend otherwise). The protocol: stage the new seals (written and synced
  // beside the live files, not in effect), journal the re-seal (kind reseal), then put
  // them in effect, so a re-seal that is not journaled never takes effect; if journaling
  // fails the staged files are dropped and nothing changed. anchor_unavailable (the entry
  // is stored, only the hardware anchor lags) still puts it in effect and reports it.
  Result<ResealResult> Reseal(std::optional<std::vector<int>> pcrs, const secrets::Actor& actor);

  std::shared_ptr<secrets::SecretService> service() const;
  std::shared_ptr<hsm::KeyBackend> backend() const;
  // OK when unsealed; else kSealed with the reason it is sealed.
  Status sealed_status() const;
  bool policy_enabled() const { return !config_.policy_file.empty(); }
  std::shared_ptr<const policy::Policy> policy() const;
  // The audit log, or null when none is configured or the agent is sealed.
  std::shared_ptr<audit::AuditWriter> audit() const;
  bool audit_enabled() const { return !config_.audit_dir.empty(); }
  // Records one request. OK when no audit log is configured. While sealed (no writer):
  // when `may_queue`, keeps it for the next unseal and returns OK; else fails with
  // kSealed, since the record could not be made durable before a change.
  Status Audit(const audit::AuditRecord& record, audit::AuditWriter::Durability durability, bool may_queue);
  // A change's "allowed" record for secrets::Actor::change_record: written to the log now
  // (unsynced) and returned for the store to keep in the change's transaction.
  Result<secrets::ChangeRecord> KeepChangeRecord(const audit::AuditRecord& record);
  // Records waiting for the next unseal, and how many did not fit (/metrics).
  std::size_t sealed_audit_queued() const;
  std::uint64_t sealed_audit_dropped() const;
  alerts::Alerts& alerts() { return *alerts_; }

  const config::AgentConfig& config() const { return config_; }
  // Leased database users (lease_broker.h); run_daemon starts its sweeper.
  LeaseBroker& leases() { return *leases_; }
  // The fleet sync (fleet_sync.h) when the config has [fleet], else null; run_daemon starts it.
  FleetSync* fleet() { return fleet_.get(); }
  // Raises `kind` with the message `what` + st and st's reason.
  void RaiseAlert(alerts::AlertKind kind, const std::string& what, const Status& st);
  double uptime_s() const;
  std::uint32_t own_uid() const { return own_uid_; }

 private:
  struct Opened {
    std::shared_ptr<hsm::KeyBackend> backend;
    std::shared_ptr<secrets::SecretService> service;
    std::shared_ptr<audit::AuditWriter> audit;
  };
  // Opens backend, service and audit log; touches no member but the config.
  Result<Opened> Open() const;
  Status SettleChangeRecords(secrets::SecretService& svc, audit::AuditWriter& log) const;
  // Writes the queued records to the new log, then makes `opened` the agent's state.
  Status Publish(Opened opened);
  // Records `st` as the reason the agent is sealed and raises the alert.
  Status StaySealed(const Status& st);
  // Seal()'s work; `why` replaces the sealed reason when `override_reason` or unsealed.
  void SealWith(const Status& why, bool override_reason);

  const config::AgentConfig config_;
  const std::uint32_t own_uid_;
  std::function<void()> on_unsealed_;
  mutable std::mutex on_commit_mu_;  // the committer calls on_commit_ while a caller may set it
  std::function<void(std::uint64_t)> on_commit_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::unique_ptr<alerts::Alerts> alerts_;
  std::unique_ptr<LeaseBroker> leases_;
  std::unique_ptr<FleetSync> fleet_;
  policy::PolicyHolder policy_;

  std::mutex transition_mu_;  // serialises Unseal, AcceptRollback and Seal; held throughout

  mutable std::mutex mu_;  // guards the three fields below; never held across I/O
  std::shared_ptr<hsm::KeyBackend> backend_;
  std::shared_ptr<secrets::SecretService> service_;
  Status sealed_;

  mutable std::mutex audit_mu_;  // guards audit_ and sealed_audit_; held while the queue is written
  std::shared_ptr<audit::AuditWriter> audit_;
  audit::SealedAuditQueue sealed_audit_;
};

}  // namespace sk::daemon
