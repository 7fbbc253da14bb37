#include "agent/daemon/agent.h"

#include <unistd.h>

#include <cstdio>

#include "hsm/backend_config.h"

namespace sk::daemon {

Agent::Agent(config::AgentConfig config)
    : config_(std::move(config)),
      own_uid_(static_cast<std::uint32_t>(::geteuid())),
      alerts_(std::make_unique<alerts::Alerts>()),
      sealed_(Status(Code::kSealed, "sealed", "the agent has not been unsealed yet")) {}

Agent::~Agent() { Seal("shutting down"); }

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

Status Agent::Unseal() {
  std::lock_guard lock(mu_);
  if (service_) return OkStatus();
  Status st = UnsealLocked();
  if (!st.ok()) {
    service_.reset();
    audit_.reset();
    backend_.reset();
    sealed_ = st.code() == Code::kSealed
                  ? st
                  : Status(Code::kSealed, std::string(st.reason()), std::string(st.message()));
    alerts::Alert a;
    a.kind = st.reason() == "replay_detected" ? alerts::AlertKind::kReplayDetected
                                              : alerts::AlertKind::kUnsealFailed;
    a.message = "sealkeepd could not unseal: " + st.ToString();
    a.reason = std::string(st.reason());
    alerts_->Raise(std::move(a));
  }
  return st;
}

Status Agent::UnsealLocked() {
  SK_ASSIGN_OR_RETURN(std::unique_ptr<hsm::KeyBackend> backend, hsm::OpenBackend(config_.backend));
  backend_ = std::move(backend);
  SK_ASSIGN_OR_RETURN(std::unique_ptr<secrets::SecretService> svc,
                      secrets::SecretService::Open(backend_, config_.store));
  std::shared_ptr<secrets::SecretService> service = std::move(svc);
  if (!config_.audit_dir.empty()) {
    audit::AuditWriterOptions ao;
    ao.dir = config_.audit_dir;
    ao.max_segment_bytes = config_.audit_segment_bytes;
    auto writer = audit::AuditWriter::Open(ao, service->audit_key());
    if (!writer.ok()) return writer.status().WithContext("opening the audit log " + config_.audit_dir);
    audit_ = std::move(writer).value();
  }
  service_ = std::move(service);
  sealed_ = OkStatus();
  return OkStatus();
}

void Agent::Seal(const std::string& why) {
  std::lock_guard lock(mu_);
  if (service_) service_->DropCaches();
  service_.reset();
  if (audit_) (void)audit_->Close();
  audit_.reset();
  backend_.reset();
  if (sealed_.ok()) sealed_ = Status(Code::kSealed, "sealed", why);
}

Result<std::string> Agent::AcceptRollback(const secrets::Actor& actor) {
  std::lock_guard lock(mu_);
  if (service_)
    return FailedPrecondition("the agent is unsealed: there is nothing to recover", "nothing_to_recover");
  if (sealed_.reason() != "replay_detected") {
    return FailedPrecondition("the agent is sealed for another reason (" + std::string(sealed_.reason()) +
                                  "): recover only accepts a store refused as replay_detected",
                              "nothing_to_recover");
  }
  SK_ASSIGN_OR_RETURN(std::unique_ptr<hsm::KeyBackend> backend, hsm::OpenBackend(config_.backend));
  std::shared_ptr<hsm::KeyBackend> shared = std::move(backend);
  SK_ASSIGN_OR_RETURN(std::string accepted,
                      secrets::SecretService::AcceptRollback(shared, config_.store, actor));
  shared.reset();
  SK_RETURN_IF_ERROR(UnsealLocked());
  return accepted;
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
  std::lock_guard lock(mu_);
  return audit_;
}

double Agent::uptime_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

}  // namespace sk::daemon
