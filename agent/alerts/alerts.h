// Alerts: security events a monitor should see at once (docs/design.md), sent to the
// system journal with structured fields, and counted for /metrics.
//
// Journal entry fields (sd_journal_sendv; the native protocol keeps them structured):
//   MESSAGE=<one line for humans>      PRIORITY=<2 crit | 3 err | 4 warning>
//   MESSAGE_ID=<fixed 128-bit id per kind, journalctl MESSAGE_ID=... filters on it>
//   SYSLOG_IDENTIFIER=sealkeepd        SEALKEEP_EVENT=<kind name, below>
//   SEALKEEP_REQUEST_ID, SEALKEEP_UID, SEALKEEP_PID, SEALKEEP_UNIT, SEALKEEP_PATH,
//   SEALKEEP_REASON                    (each only when set)
// Kinds: denied (4), rollback_refused (4), tamper_detected (2), replay_detected (2),
// unseal_failed (3), audit_unavailable (3), rotation_failed (3: a rotation was aborted, the
// reason given), expiring (4: a secret's current version expires within 30, 7 or 1 days;
// once per version and threshold), fleet_refused (2: the fleet database offered what this
// host refuses: a history behind its anchor, a broken chain, a forged entry; docs/fleet.md),
// fleet_behind (4: no pull of the fleet journal has succeeded for [fleet] lag_alert_seconds).
//
// Raise() never blocks the request path and never fails it: it bumps the counter, then
// queues the alert for a background thread that calls the sink. sd_journal_sendv can
// block when journald is slow, and fails (harmlessly) when no journald runs; a full
// queue drops the alert and counts the drop. Counters count every Raise(), sent or not.
// Thread-safe. Alerts never carry a value, key or PIN: build them from names and ids.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace sk::alerts {

enum class AlertKind : std::uint8_t {
  kDenied = 0,
  kRollbackRefused,
  kTamperDetected,
  kReplayDetected,
  kUnsealFailed,
  kAuditUnavailable,
  kRotationFailed,
  kExpiring,
  kLeaseRevokeFailed,
  kFleetRefused,
  kFleetBehind,
};
inline constexpr std::size_t kAlertKindCount = 11;

std::string_view AlertKindName(AlertKind kind);  // "denied", "rollback_refused", ...
int AlertPriority(AlertKind kind);               // syslog priority: 2, 3 or 4

struct Alert {
  AlertKind kind = AlertKind::kDenied;
  std::string message;
  std::string request_id;
  std::optional<std::uint32_t> uid;
  std::optional<std::int32_t> pid;
  std::string unit;
  std::string path;
  std::string reason;
};

// The journal entry for `alert`: "NAME=value" strings in the order listed at the top of
// this file (empty optional fields left out). Pure; JournalSink sends exactly these.
std::vector<std::string> JournalFields(const Alert& alert);
std::string_view AlertMessageId(AlertKind kind);  // 32 lower-case hex digits

// Where alerts go. Deliver() runs on the Alerts thread only.
class AlertSink {
 public:
  virtual ~AlertSink() = default;
  virtual void Deliver(const Alert& alert) = 0;
};

// The system journal. Failures (no journald) are ignored: counters still count.
class JournalSink : public AlertSink {
 public:
  void Deliver(const Alert& alert) override;
};

class Alerts {
 public:
  explicit Alerts(std::unique_ptr<AlertSink> sink = std::make_unique<JournalSink>(),
                  std::size_t queue_capacity = 1024);
  ~Alerts();  // delivers what is queued, then stops the thread
  Alerts(const Alerts&) = delete;
  Alerts& operator=(const Alerts&) = delete;

  void Raise(Alert alert);

  std::uint64_t Count(AlertKind kind) const;
  std::uint64_t Dropped() const { return dropped_.load(std::memory_order_relaxed); }
  // Prometheus text: sealkeep_alerts_total{event="..."} per kind, and
  // sealkeep_alerts_dropped_total.
  std::string MetricsText() const;
  // Waits until every queued alert has been delivered (tests, shutdown).
  void Flush();

 private:
  void Run();

  std::unique_ptr<AlertSink> sink_;
  const std::size_t capacity_;
  std::array<std::atomic<std::uint64_t>, kAlertKindCount> counts_{};
  std::atomic<std::uint64_t> dropped_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;       // work arrived, or stop
  std::condition_variable idle_cv_;  // the queue drained
  std::deque<Alert> queue_;
  bool busy_ = false;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace sk::alerts
