#include "agent/daemon/agent.h"

#include <unistd.h>

#include <cstdio>

#include "agent/audit/stored_record.h"
#include "agent/daemon/systemd.h"
#include "crypto/reasons.h"
#include "hsm/backend_config.h"

namespace sk::daemon {

Agent::Agent(config::AgentConfig config)
    : config_(std::move(config)),
      own_uid_(static_cast<std::uint32_t>(::geteuid())),
      alerts_(std::make_unique<alerts::Alerts>()),
      leases_(std::make_unique<LeaseBroker>(*this, config_.leases_socket,
                                            std::chrono::seconds(config_.lease_sweep_seconds))),
      fleet_(config_.fleet.enabled ? std::make_unique<FleetSync>(*this, config_.fleet) : nullptr),
      sealed_(Status(Code::kSealed, "sealed", "the agent has not been unsealed yet")) {}

Agent::~Agent() {
  leases_->Stop();
  if (fleet_) fleet_->Stop();
  Seal("shutting down");
}

Status Agent::LoadPolicy() {
  if (!policy_enabled()) return OkStatus();
  return policy_.ReloadFromFile(config_.policy_file);
}

Status Agent::ReloadPolicy() {
  if (!policy_enabled()) return OkStatus();
  return policy_.ReloadFromFile(config_.policy_file);
}

std::shared_ptr<const policy::Policy> Agent::policy() const {
  return policy_enabled() ? policy_.Current() : nullptr;
}

Status Agent::StaySealed(const Status& st) {
  Status sealed = st.code() == Code::kSealed
                      ? st
                      : Status(Code::kSealed, std::string(st.reason()), std::string(st.message()));
  {
    std::lock_guard lock(mu_);
    sealed_ = sealed;
  }
  RaiseAlert(st.reason() == sk::reason::kReplayDetected ? alerts::AlertKind::kReplayDetected
                                                        : alerts::AlertKind::kUnsealFailed,
             "sealkeepd could not unseal: ", st);
  return st;
}

void Agent::RaiseAlert(alerts::AlertKind kind, const std::string& what, const Status& st) {
  alerts::Alert a;
  a.kind = kind;
  a.message = what + st.ToString();
  a.reason = std::string(st.reason());
  alerts_->Raise(std::move(a));
}

Status Agent::Unseal() {
  std::lock_guard transition(transition_mu_);
  if (service()) return OkStatus();  // a concurrent unseal got there first
  Result<Opened> opened = Open();
  if (!opened.ok()) return StaySealed(opened.status());
  SK_RETURN_IF_ERROR(Publish(std::move(opened).value()));
  if (on_unsealed_) on_unsealed_();
  return OkStatus();
}

Result<Agent::Opened> Agent::Open() const {
  Opened o;
  SK_ASSIGN_OR_RETURN(std::unique_ptr<hsm::KeyBackend> backend, hsm::OpenBackend(config_.backend));
  o.backend = std::move(backend);
  secrets::ServiceOptions options = config_.store;
  options.on_commit = [this](std::uint64_t seq) {
    std::lock_guard lock(on_commit_mu_);
    if (on_commit_) on_commit_(seq);
  };
  SK_ASSIGN_OR_RETURN(std::unique_ptr<secrets::SecretService> svc,
                      secrets::SecretService::Open(o.backend, options));
  o.service = std::move(svc);
  if (audit_enabled()) {
    audit::AuditWriterOptions ao;
    ao.dir = config_.audit_dir;
    ao.max_segment_bytes = config_.audit_segment_bytes;
    auto writer = audit::AuditWriter::Open(ao, o.service->audit_key());
    if (!writer.ok()) return writer.status().WithContext("opening the audit log " + config_.audit_dir);
    o.audit = std::move(writer).value();
    SK_RETURN_IF_ERROR(SettleChangeRecords(*o.service, *o.audit));
  }
  return o;
}

// Changes whose records the store kept but the log lost (the power failed before the log's
// sync, docs/audit.md): their records go into the log now, after an event that says so,
// before anything else is recorded or changed. Fail closed: no serving without them.
Status Agent::SettleChangeRecords(secrets::SecretService& svc, audit::AuditWriter& log) const {
  const audit::AuditOpenReport& report = log.open_report();
  auto rewrite = [&log](std::vector<Bytes> lost) -> Status {
    audit::AuditRecord event = audit::AgentEvent(
        "audit.settle", "change_records_restored: " + std::to_string(lost.size()) +
                            " records of committed changes, kept in the store, were not in the log (it was "
                            "not synced when the agent stopped); they follow, each with its first time");
    SK_RETURN_IF_ERROR(log.Append(event, audit::AuditWriter::Durability::kBuffered));
    for (const Bytes& bytes : lost) {
      SK_ASSIGN_OR_RETURN(audit::AuditRecord record, audit::DecodeStoredRecord(bytes));
      SK_RETURN_IF_ERROR(log.Append(record, audit::AuditWriter::Durability::kBuffered));
    }
    return log.Sync();
  };
  auto settled = svc.SettleAuditOutbox(report.last_seq, report.created, rewrite);
  if (!settled.ok())
    return settled.status().WithContext("settling the changes' records kept for the audit log");
  if (*settled > 0) {
    Log(LogLevel::kWarning, "audit: wrote " + std::to_string(*settled) +
                                " change records the log had lost (kept in the store since before a crash)");
  }
  svc.NoteAuditSynced(log.SyncedSeq());
  return OkStatus();
}

Result<secrets::ChangeRecord> Agent::KeepChangeRecord(const audit::AuditRecord& record) {
  std::shared_ptr<audit::AuditWriter> writer = audit();
  if (!writer)
    return Status(Code::kSealed, "sealed", "the agent was sealed while the request was being handled");
  secrets::ChangeRecord kept;
  SK_RETURN_IF_ERROR(writer->Append(record, audit::AuditWriter::Durability::kWritten, &kept.log_seq));
  kept.record = audit::EncodeStoredRecord(record);
  return kept;
}

Status Agent::Publish(Opened o) {
  {
    // The log first, with what was recorded while sealed at its front: a request that
    // sees the agent unsealed finds its record going after those.
    std::lock_guard lock(audit_mu_);
    if (o.audit) {
      if (Status st = sealed_audit_.WriteTo(*o.audit); !st.ok()) {
        // Fail closed: no serving without a log. The records stay queued for the next try.
        (void)o.audit->Close();
        o.service->DropCaches();
        RaiseAlert(alerts::AlertKind::kAuditUnavailable, "the audit log cannot be written: ", st);
        return StaySealed(Status(Code::kSealed, "audit_unavailable",
                                 "the records of requests made while sealed cannot be written to the audit "
                                 "log, so the agent stays sealed: " +
                                     std::string(st.message())));
      }
    }
    audit_ = o.audit;
  }
  std::lock_guard lock(mu_);
  backend_ = std::move(o.backend);
  service_ = std::move(o.service);
  sealed_ = OkStatus();
  return OkStatus();
}

void Agent::Seal(const std::string& why) {
  std::lock_guard transition(transition_mu_);
  SealWith(Status(Code::kSealed, "sealed", why), false);
}

bool Agent::SealIfFenced() {
  std::shared_ptr<secrets::SecretService> svc = service();
  if (!svc) return false;
  Status fence = svc->Fenced();
  if (fence.ok()) return false;
  {
    // Never waits behind a slow unseal (the API calls this on an I/O thread): if a
    // transition holds the lock, the next tick tries again.
    std::unique_lock transition(transition_mu_, std::try_to_lock);
    if (!transition.owns_lock()) return false;
    if (service() != svc) return false;  // sealed (or re-opened) meanwhile
    SealWith(fence, true);
  }
  RaiseAlert(fence.reason() == sk::reason::kReplayDetected ? alerts::AlertKind::kReplayDetected
                                                           : alerts::AlertKind::kTamperDetected,
             "sealkeepd sealed itself: ", fence);
  return true;
}

void Agent::SealWith(const Status& why, bool override_reason) {
  std::shared_ptr<secrets::SecretService> svc;
  std::shared_ptr<hsm::KeyBackend> backend;
  {
    std::lock_guard lock(mu_);
    svc = std::move(service_);
    backend = std::move(backend_);
    if (sealed_.ok() || override_reason) sealed_ = why;
  }
  if (svc) svc->DropCaches();
  std::shared_ptr<audit::AuditWriter> writer;
  {
    std::lock_guard lock(audit_mu_);
    writer = std::move(audit_);
  }
  if (writer) (void)writer->Close();
  // svc and backend go when the last in-flight request that holds them finishes.
}

Result<std::string> Agent::AcceptRollback(const secrets::Actor& actor) {
  std::lock_guard transition(transition_mu_);
  {
    std::lock_guard lock(mu_);
    if (service_)
      return FailedPrecondition("the agent is unsealed: there is nothing to recover", "nothing_to_recover");
    if (sealed_.reason() != "replay_detected") {
      return FailedPrecondition("the agent is sealed for another reason (" + std::string(sealed_.reason()) +
                                    "): recover only accepts a store refused as replay_detected",
                                "nothing_to_recover");
    }
  }
  SK_ASSIGN_OR_RETURN(std::unique_ptr<hsm::KeyBackend> backend, hsm::OpenBackend(config_.backend));
  std::shared_ptr<hsm::KeyBackend> shared = std::move(backend);
  SK_ASSIGN_OR_RETURN(std::string accepted,
                      secrets::SecretService::AcceptRollback(shared, config_.store, actor));
  shared.reset();
  Result<Opened> opened = Open();
  if (!opened.ok()) return StaySealed(opened.status());
  SK_RETURN_IF_ERROR(Publish(std::move(opened).value()));
  if (on_unsealed_) on_unsealed_();
  return accepted;
}

void Agent::SetOnCommit(std::function<void(std::uint64_t)> callback) {
  std::lock_guard lock(on_commit_mu_);
  on_commit_ = std::move(callback);
}

Result<Agent::ResealResult> Agent::Reseal(std::optional<std::vector<int>> pcrs, const secrets::Actor& actor) {
  std::shared_ptr<hsm::KeyBackend> open_backend = backend();
  std::shared_ptr<secrets::SecretService> svc = service();
  if (!open_backend || !svc) return sealed_status();
  hsm::Resealable* resealable = open_backend->resealable();
  if (resealable == nullptr) {
    return FailedPrecondition(
        "re-sealing to PCRs needs the TPM backend; this agent uses " + open_backend->Info().kind,
        "not_tpm_backend");
  }
  SK_ASSIGN_OR_RETURN(std::unique_ptr<hsm::PendingReseal> pending,
                      resealable->BeginReseal(pcrs.value_or(config_.backend.tpm.pcrs)));
  ResealResult out;
  out.pcrs = pending->pcrs();
  std::string note = "pcrs=";
  for (std::size_t i = 0; i < out.pcrs.size(); ++i) note += (i ? "," : "") + std::to_string(out.pcrs[i]);
  auto journaled = svc->RecordReseal(note, actor);
  if (!journaled.ok()) {
    if (journaled.status().reason() != sk::reason::kAnchorUnavailable) return journaled.status();
    // The entry is stored durably; only the hardware anchor lags (it catches up on the
    // next commit or start). The re-seal is journaled: put it in effect.
    if (Status st = pending->Commit(); !st.ok()) {
      return st.WithContext(
          "the re-seal is journaled (the hardware anchor lags: " + std::string(journaled.status().message()) +
          ") but not every sealed file was replaced; run it again");
    }
    return journaled.status();
  }
  if (Status st = pending->Commit(); !st.ok()) {
    return st.WithContext("the re-seal is journaled (seq " + std::to_string(journaled->seq) +
                          ") but not every sealed file was replaced; run it again");
  }
  out.txn_id = journaled->txn_id;
  out.seq = journaled->seq;
  return out;
}

Status Agent::Audit(const audit::AuditRecord& record, audit::AuditWriter::Durability durability,
                    bool may_queue) {
  if (!audit_enabled()) return OkStatus();
  std::shared_ptr<audit::AuditWriter> writer;
  {
    std::lock_guard lock(audit_mu_);
    if (!audit_) {
      if (!may_queue) {
        return Status(Code::kSealed, "sealed", "the agent was sealed while the request was being handled");
      }
      // A change made while sealed (sys/unseal, sys/recover) is never dropped for space.
      sealed_audit_.Push(record, /*must_keep=*/record.outcome == audit::AuditOutcome::kAllowed);
      return OkStatus();
    }
    writer = audit_;
  }
  Status st = writer->Append(record, durability);
  if (st.ok()) return st;
  std::lock_guard lock(audit_mu_);
  if (audit_ == writer) return st;  // the log itself failed: the caller fails closed
  // Seal() closed this writer while the record was on its way: as if sealed already.
  if (audit_) return audit_->Append(record, durability);  // and unsealed again since
  if (!may_queue)
    return Status(Code::kSealed, "sealed", "the agent was sealed while the request was being handled");
  sealed_audit_.Push(record, /*must_keep=*/false);
  return OkStatus();
}

std::size_t Agent::sealed_audit_queued() const {
  std::lock_guard lock(audit_mu_);
  return sealed_audit_.size();
}

std::uint64_t Agent::sealed_audit_dropped() const {
  std::lock_guard lock(audit_mu_);
  return sealed_audit_.dropped();
}

std::shared_ptr<secrets::SecretService> Agent::service() const {
  std::lock_guard lock(mu_);
  return service_;
}

std::shared_ptr<hsm::KeyBackend> Agent::backend() const {
  std::lock_guard lock(mu_);
  return backend_;
}

Status Agent::sealed_status() const {
  std::lock_guard lock(mu_);
  return sealed_;
}

std::shared_ptr<audit::AuditWriter> Agent::audit() const {
  std::lock_guard lock(audit_mu_);
  return audit_;
}

double Agent::uptime_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

}  // namespace sk::daemon
