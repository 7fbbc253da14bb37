#include "agent/alerts/alerts.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace sk::alerts {
namespace {

class RecordingSink : public AlertSink {
 public:
  void Deliver(const Alert& a) override {
    std::lock_guard<std::mutex> lock(mu_);
    got_.push_back(a);
  }
  std::vector<Alert> got() {
    std::lock_guard<std::mutex> lock(mu_);
    return got_;
  }

 private:
  std::mutex mu_;
  std::vector<Alert> got_;
};

// A journal that hangs until released.
class StuckSink : public AlertSink {
 public:
  void Deliver(const Alert&) override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return released_; });
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      released_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
};

TEST(AlertsTest, EachKindIsDeliveredAndCounted) {
  auto sink = std::make_unique<RecordingSink>();
  RecordingSink* seen = sink.get();
  Alerts alerts(std::move(sink));
  alerts.Raise({AlertKind::kDenied, "uid 1000 may not read apps/db", "req-1", 1000, 42, "web.service",
                "apps/db", "no_binding"});
  alerts.Raise(
      {AlertKind::kRollbackRefused, "rollback refused", "req-2", 0, 1, "", "apps/x", "seal_invalid"});
  alerts.Raise(
      {AlertKind::kTamperDetected, "audit chain broken", "", std::nullopt, std::nullopt, "", "", "bad_mac"});
  alerts.Raise({AlertKind::kReplayDetected, "store replayed", "", {}, {}, "", "", "replay_detected"});
  alerts.Raise({AlertKind::kUnsealFailed, "PCRs changed", "", {}, {}, "", "", "boot_state_changed"});
  alerts.Raise({AlertKind::kDenied, "again", "req-3", 1000, 43, "", "apps/db", "no_grant"});
  alerts.Flush();
  std::vector<Alert> got = seen->got();
  ASSERT_EQ(got.size(), 6U);
  EXPECT_EQ(got[0].unit, "web.service");
  EXPECT_EQ(got[1].reason, "seal_invalid");
  EXPECT_EQ(alerts.Count(AlertKind::kDenied), 2U);
  EXPECT_EQ(alerts.Count(AlertKind::kTamperDetected), 1U);
  EXPECT_EQ(alerts.Count(AlertKind::kAuditUnavailable), 0U);
  std::string metrics = alerts.MetricsText();
  EXPECT_NE(metrics.find("sealkeep_alerts_total{event=\"denied\"} 2\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("sealkeep_alerts_total{event=\"unseal_failed\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("sealkeep_alerts_dropped_total 0\n"), std::string::npos);
}

TEST(AlertsTest, PrioritiesAreWarningOrWorse) {
  for (std::size_t i = 0; i < kAlertKindCount; ++i) {
    EXPECT_LE(AlertPriority(static_cast<AlertKind>(i)), 4);
  }
  EXPECT_EQ(AlertPriority(AlertKind::kTamperDetected), 2);
  EXPECT_EQ(AlertKindName(AlertKind::kRollbackRefused), "rollback_refused");
}

TEST(AlertsTest, TheJournalEntryCarriesEveryFieldAMonitorFiltersOn) {
  Alert a{AlertKind::kRollbackRefused,
          "rollback refused: destroyed",
          "req-9",
          1000,
          42,
          "web.service",
          "apps/db",
          "destroyed"};
  std::vector<std::string> fields = JournalFields(a);
  std::vector<std::string> want = {"MESSAGE=rollback refused: destroyed",
                                   "PRIORITY=4",
                                   "MESSAGE_ID=97382282e2dae46628b2c0c3799cfe44",
                                   "SYSLOG_IDENTIFIER=sealkeepd",
                                   "SEALKEEP_EVENT=rollback_refused",
                                   "SEALKEEP_REQUEST_ID=req-9",
                                   "SEALKEEP_UID=1000",
                                   "SEALKEEP_PID=42",
                                   "SEALKEEP_UNIT=web.service",
                                   "SEALKEEP_PATH=apps/db",
                                   "SEALKEEP_REASON=destroyed"};
  EXPECT_EQ(fields, want);
  // Fields that are not set are left out, not sent empty; uid 0 is set.
  Alert tamper{AlertKind::kTamperDetected,
               "the audit log does not verify: bad_mac",
               "",
               0,
               std::nullopt,
               "",
               "",
               "bad_mac"};
  want = {"MESSAGE=the audit log does not verify: bad_mac",
          "PRIORITY=2",
          "MESSAGE_ID=c5c9532c4fd2c2d1ef0a46fa4ccf163c",
          "SYSLOG_IDENTIFIER=sealkeepd",
          "SEALKEEP_EVENT=tamper_detected",
          "SEALKEEP_UID=0",
          "SEALKEEP_REASON=bad_mac"};
  EXPECT_EQ(JournalFields(tamper), want);
  // Each kind: its own message id, priority warning (4) or more severe.
  std::set<std::string_view> ids;
  for (std::size_t i = 0; i < kAlertKindCount; ++i) {
    auto kind = static_cast<AlertKind>(i);
    Alert k{kind, "m", "", {}, {}, "", "", ""};
    std::vector<std::string> f = JournalFields(k);
    ASSERT_EQ(f.size(), 5U);
    EXPECT_EQ(f[1], "PRIORITY=" + std::to_string(AlertPriority(kind)));
    EXPECT_LE(AlertPriority(kind), 4);
    EXPECT_EQ(f[2], "MESSAGE_ID=" + std::string(AlertMessageId(kind)));
    EXPECT_EQ(AlertMessageId(kind).size(), 32U);
    ids.insert(AlertMessageId(kind));
    EXPECT_EQ(f[4], "SEALKEEP_EVENT=" + std::string(AlertKindName(kind)));
  }
  EXPECT_EQ(ids.size(), kAlertKindCount);
  EXPECT_EQ(AlertPriority(AlertKind::kUnsealFailed), 3);
  EXPECT_EQ(AlertPriority(AlertKind::kAuditUnavailable), 3);
  EXPECT_EQ(AlertPriority(AlertKind::kReplayDetected), 2);
  EXPECT_EQ(AlertPriority(AlertKind::kDenied), 4);
}

TEST(AlertsTest, AStuckJournalNeverBlocksTheRequestPath) {
  auto sink = std::make_unique<StuckSink>();
  StuckSink* stuck = sink.get();
  Alerts alerts(std::move(sink), 16);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 2000; ++i)
    alerts.Raise({AlertKind::kDenied, "denied", "", {}, {}, "", "", "no_binding"});
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::milliseconds(500));
  EXPECT_EQ(alerts.Count(AlertKind::kDenied), 2000U);
  EXPECT_GE(alerts.Dropped(), 2000U - 17U);
  stuck->Release();
  alerts.Flush();
}

TEST(AlertsTest, TheJournalSinkFailsHarmlesslyWithoutJournald) {
  Alerts alerts;  // the real JournalSink; no systemd runs here
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) {
    alerts.Raise({AlertKind::kTamperDetected, "test alert", "req", 0, 1, "", "x", "bad_mac"});
  }
  alerts.Flush();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(alerts.Count(AlertKind::kTamperDetected), 50U);
}

}  // namespace
}  // namespace sk::alerts
