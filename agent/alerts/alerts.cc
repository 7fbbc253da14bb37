#include "agent/alerts/alerts.h"

#include <sys/uio.h>
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include <utility>
#include <vector>

namespace sk::alerts {

std::string_view AlertMessageId(AlertKind kind) {
  switch (kind) {
    case AlertKind::kDenied:
      return "95c1d2874c33663a977eeb86b45391c0";
    case AlertKind::kRollbackRefused:
      return "97382282e2dae46628b2c0c3799cfe44";
    case AlertKind::kTamperDetected:
      return "c5c9532c4fd2c2d1ef0a46fa4ccf163c";
    case AlertKind::kReplayDetected:
      return "cc3902c6377ec62169f42de2ebcbee29";
    case AlertKind::kUnsealFailed:
      return "b3cb027804c4df6ea84a4bf2a98032e1";
    case AlertKind::kAuditUnavailable:
      return "e656cfac18e5409c86eefc412132a2ee";
    case AlertKind::kRotationFailed:
      return "cc3073c7e850d947b11967ba370b74a3";
    case AlertKind::kExpiring:
      return "01ccc8ccf85daed0a3848489731fe6fd";
    case AlertKind::kLeaseRevokeFailed:
      return "f678fd6f4516bec650fdf4b6fb3c297b";
    case AlertKind::kFleetRefused:
      return "36013cf7c88ab7db32cb3bf306249191";
    case AlertKind::kFleetBehind:
      return "e970b9478d984164aecd81dad9880ca6";
  }
  return "00000000000000000000000000000000";
}

std::string_view AlertKindName(AlertKind kind) {
  switch (kind) {
    case AlertKind::kDenied:
      return "denied";
    case AlertKind::kRollbackRefused:
      return "rollback_refused";
    case AlertKind::kTamperDetected:
      return "tamper_detected";
    case AlertKind::kReplayDetected:
      return "replay_detected";
    case AlertKind::kUnsealFailed:
      return "unseal_failed";
    case AlertKind::kAuditUnavailable:
      return "audit_unavailable";
    case AlertKind::kRotationFailed:
      return "rotation_failed";
    case AlertKind::kExpiring:
      return "expiring";
    case AlertKind::kLeaseRevokeFailed:
      return "lease_revoke_failed";
    case AlertKind::kFleetRefused:
      return "fleet_refused";
    case AlertKind::kFleetBehind:
      return "fleet_behind";
  }
  return "unknown";
}

int AlertPriority(AlertKind kind) {
  switch (kind) {
    case AlertKind::kTamperDetected:
    case AlertKind::kReplayDetected:
    case AlertKind::kFleetRefused:
      return 2;
    case AlertKind::kUnsealFailed:
    case AlertKind::kAuditUnavailable:
    case AlertKind::kRotationFailed:
    case AlertKind::kLeaseRevokeFailed:
      return 3;
    case AlertKind::kDenied:
    case AlertKind::kRollbackRefused:
    case AlertKind::kExpiring:
    case AlertKind::kFleetBehind:
      return 4;
  }
  return 4;
}

std::vector<std::string> JournalFields(const Alert& a) {
  std::vector<std::string> fields;
  fields.reserve(11);
  fields.push_back("MESSAGE=" + a.message);
  fields.push_back("PRIORITY=" + std::to_string(AlertPriority(a.kind)));
  fields.push_back("MESSAGE_ID=" + std::string(AlertMessageId(a.kind)));
  fields.emplace_back("SYSLOG_IDENTIFIER=sealkeepd");
  fields.push_back("SEALKEEP_EVENT=" + std::string(AlertKindName(a.kind)));
  if (!a.request_id.empty()) fields.push_back("SEALKEEP_REQUEST_ID=" + a.request_id);
  if (a.uid) fields.push_back("SEALKEEP_UID=" + std::to_string(*a.uid));
  if (a.pid) fields.push_back("SEALKEEP_PID=" + std::to_string(*a.pid));
  if (!a.unit.empty()) fields.push_back("SEALKEEP_UNIT=" + a.unit);
  if (!a.path.empty()) fields.push_back("SEALKEEP_PATH=" + a.path);
  if (!a.reason.empty()) fields.push_back("SEALKEEP_REASON=" + a.reason);
  return fields;
}

void JournalSink::Deliver(const Alert& a) {
  std::vector<std::string> fields = JournalFields(a);
  std::vector<iovec> iov;
  iov.reserve(fields.size());
  for (std::string& f : fields) iov.push_back({f.data(), f.size()});
  // Fails with -ENOENT when no journald listens; the alert is still counted.
  (void)sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
}

Alerts::Alerts(std::unique_ptr<AlertSink> sink, std::size_t queue_capacity)
    : sink_(std::move(sink)), capacity_(queue_capacity) {
  worker_ = std::thread([this] { Run(); });
}

Alerts::~Alerts() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void Alerts::Raise(Alert alert) {
  counts_[static_cast<std::size_t>(alert.kind)].fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= capacity_) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queue_.push_back(std::move(alert));
  }
  cv_.notify_one();
}

std::uint64_t Alerts::Count(AlertKind kind) const {
  return counts_[static_cast<std::size_t>(kind)].load(std::memory_order_relaxed);
}

std::string Alerts::MetricsText() const {
  std::string out =
      "# HELP sealkeep_alerts_total Security alerts raised, by event.\n"
      "# TYPE sealkeep_alerts_total counter\n";
  for (std::size_t i = 0; i < kAlertKindCount; ++i) {
    auto kind = static_cast<AlertKind>(i);
    out += "sealkeep_alerts_total{event=\"" + std::string(AlertKindName(kind)) + "\"} " +
           std::to_string(Count(kind)) + "\n";
  }
  out +=
      "# HELP sealkeep_alerts_dropped_total Alerts not sent to the journal because its queue was full.\n"
      "# TYPE sealkeep_alerts_dropped_total counter\n"
      "sealkeep_alerts_dropped_total " +
      std::to_string(Dropped()) + "\n";
  return out;
}

void Alerts::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [this] { return queue_.empty() && !busy_; });
}

void Alerts::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) break;  // stop_ and drained
    Alert alert = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    sink_->Deliver(alert);
    lock.lock();
    busy_ = false;
    if (queue_.empty()) idle_cv_.notify_all();
  }
  idle_cv_.notify_all();
}

}  // namespace sk::alerts
