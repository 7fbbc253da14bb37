#include "agent/daemon/housekeeping.h"

#include <algorithm>

#include "agent/daemon/systemd.h"
#include "crypto/reasons.h"

namespace sk::daemon {
namespace {

// Read records reach the disk within a tick (plus one fdatasync), whatever the watchdog.
constexpr int kTickMs = 200;
// A sealed agent retries unsealing after 1 s, then 2, 4, ... up to 60 s between tries.
constexpr auto kFirstRetry = std::chrono::seconds(1);
constexpr auto kMaxRetry = std::chrono::seconds(60);

}  // namespace

int TickMs() {
  const std::uint64_t watchdog_ms = WatchdogUsec() / 1000;
  if (watchdog_ms == 0) return kTickMs;
  return static_cast<int>(std::clamp<std::uint64_t>(watchdog_ms / 4, 10, kTickMs));
}

std::string StatusLine(Agent& agent) {
  auto svc = agent.service();
  if (!svc) return "sealed: " + agent.sealed_status().ToString();
  secrets::ServiceStatus s = svc->Report();
  return "unsealed; journal head " + std::to_string(s.head_seq) + ", anchored " +
         std::to_string(s.anchor.seq) + ", " + s.backend.kind + " generation " +
         std::to_string(s.backend.current_generation);
}

Housekeeping::Housekeeping(Agent& agent)
    : agent_(agent),
      watchdog_(std::chrono::microseconds(WatchdogUsec())),
      was_unsealed_(agent.service() != nullptr),
      delay_(kFirstRetry),
      next_retry_(Clock::now() + kFirstRetry) {}

void Housekeeping::operator()() {
  const Clock::time_point now = Clock::now();
  if (watchdog_.count() > 0 && now - last_ping_ >= watchdog_ / 2) {
    Notify("WATCHDOG=1");
    last_ping_ = now;
  }
  // Buffered read records reach the disk within a tick; the sealed checkpoint (what
  // truncation is checked against) moves every ten seconds.
  // Changes' records the store kept for the log (docs/audit.md) leave it once synced here.
  std::uint64_t audit_synced = 0;
  if (auto a = agent_.audit()) {
    if (now - last_checkpoint_ >= std::chrono::seconds(10)) {
      (void)a->Checkpoint();
      last_checkpoint_ = now;
    } else {
      (void)a->Sync();
    }
    audit_synced = a->SyncedSeq();
  }
  if (auto svc = agent_.service()) {
    if (audit_synced > 0) svc->NoteAuditSynced(audit_synced);
    svc->SweepCaches();
    // Versions written before the recovery key existed get their recovery wrap, a batch
    // per tick (docs/recovery.md); a no-op once none is left.
    auto wrapped = svc->RecoveryWrapBatch(500);
    if (!wrapped.ok()) Log(LogLevel::kWarning, "recovery wrap batch: " + wrapped.status().ToString());
  }
  WarnExpiring(now);
  (void)agent_.SealIfFenced();
  const bool open_now = agent_.service() != nullptr;
  if (was_unsealed_ && !open_now) {
    // Sealed while running (sys/seal, or the store changed behind the agent's back, which
    // the API may have caught first): say so once, and start retrying anew.
    Status why = agent_.sealed_status();
    Log(why.reason() == reason::kSealed ? LogLevel::kInfo : LogLevel::kError, "sealed: " + why.ToString());
    Notify("STATUS=" + StatusLine(agent_));
    delay_ = kFirstRetry;
    next_retry_ = now + delay_;
  }
  was_unsealed_ = open_now;
  if (!open_now) RetryUnseal(now);
}

void Housekeeping::WarnExpiring(Clock::time_point now) {
  auto svc = agent_.service();
  if (!svc) return;
  // Every minute (thresholds pass with time), and soon after a change (a put may bring a
  // version that is already close to its expiry). One pass over the index, no I/O.
  const std::uint64_t seq = svc->HeadSeq();
  const auto since = now - last_expiry_check_;
  if (since < std::chrono::seconds(60) && (seq == expiry_checked_seq_ || since < std::chrono::seconds(5)))
    return;
  last_expiry_check_ = now;
  expiry_checked_seq_ = seq;
  constexpr std::uint64_t kDay = 86'400'000;
  const auto now_ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                     std::chrono::system_clock::now().time_since_epoch())
                                                     .count());
  secrets::LifetimeReport life = svc->Lifetimes(now_ms, 10'000);
  std::map<std::pair<std::string, std::uint64_t>, int> seen;
  for (const secrets::LifetimeItem& item : life.expiring) {
    if (item.at_ms <= now_ms) continue;  // expired: reads say so (410); the gauge counts it
    const std::uint64_t left = item.at_ms - now_ms;
    const int level = left <= kDay ? 1 : left <= 7 * kDay ? 7 : 30;
    auto key = std::make_pair(item.path, item.version);
    auto it = expiry_alerted_.find(key);
    const int before = it == expiry_alerted_.end() ? 0 : it->second;
    seen[key] = before == 0 ? level : std::min(before, level);
    if (before != 0 && before <= level) continue;
    alerts::Alert a;
    a.kind = alerts::AlertKind::kExpiring;
    a.message = item.path + " version " + std::to_string(item.version) + " expires within " +
                std::to_string(level) + (level == 1 ? " day" : " days") + " (at " +
                std::to_string(item.at_ms / 1000) + " Unix time)";
    a.path = item.path;
    a.reason = "expires_within_" + std::to_string(level) + "d";
    agent_.alerts().Raise(std::move(a));
  }
  expiry_alerted_ = std::move(seen);  // forget versions no longer close to expiry (replaced, or expired)
}

void Housekeeping::ScheduleRetry() { next_retry_ = Clock::now() + delay_; }

void Housekeeping::RetryUnseal(Clock::time_point now) {
  if (reason::RetryCannotHelp(agent_.sealed_status().reason()) || now < next_retry_) return;
  Status st = agent_.Unseal();  // READY=1 comes from the agent's on-unsealed callback
  if (st.ok()) {
    delay_ = kFirstRetry;
    return;
  }
  delay_ = std::min(delay_ * 2, std::chrono::duration_cast<Clock::duration>(kMaxRetry));
  next_retry_ = Clock::now() + delay_;
  Log(LogLevel::kWarning,
      "still sealed, next unseal attempt in " +
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(delay_).count()) +
          " s: " + st.ToString());
  Notify("STATUS=" + StatusLine(agent_));
}

}  // namespace sk::daemon
