// SealedAuditQueue: the audit records of requests answered while the agent is sealed.
//
// While sealed the agent has no audit key (AK is wrapped by the backend, which is not open
// yet), so no AuditWriter exists. Records made then (denials, failed reads, sys/unseal and
// sys/recover attempts) wait here, in memory and in order, and are written as soon as a
// writer exists after a successful unseal or recover, before that request is answered.
//
// Bounded: it keeps the first `capacity` records; later ones are dropped and counted,
// except records pushed with `must_keep` (the "allowed" record of a change made while
// sealed, i.e. an admin's sys/unseal or sys/recover), which a flood of denied requests
// must not push out. The one change that happens while sealed, recover, is also
// journaled with who asked, so a crash before the queue reaches the log loses the
// audit line but not the record of the change. The
// write starts with one `event` record (route "audit.sealed") that says how many records
// follow and how many were dropped, so a reader of the log knows why their times are older
// than the lines around them. Records carry no value, key or PIN (AuditRecord has no field
// for one), so nothing secret is ever held here.
//
// Not thread-safe: the owner (daemon::Agent) serialises every call with its own lock, which
// also makes "is there a writer yet? else queue" one step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

#include "agent/audit/audit_record.h"
#include "agent/audit/audit_writer.h"
#include "crypto/status.h"

namespace sk::audit {

class SealedAuditQueue {
 public:
  static constexpr std::size_t kDefaultCapacity = 1024;
  explicit SealedAuditQueue(std::size_t capacity = kDefaultCapacity) : capacity_(capacity) {}

  // Keeps `record` (its time is the time of the request), or counts it as dropped
  // when full and not `must_keep`.
  void Push(AuditRecord record, bool must_keep = false);

  // Writes the event record and every queued record, in order with their original times,
  // and syncs them; then the queue is empty and the drop count is zero. Nothing to write:
  // OK at once. On failure (audit_unavailable) everything stays queued, so a later call
  // writes it again; records that reached the file before the failure then appear twice.
  Status WriteTo(AuditWriter& writer);

  std::size_t size() const { return records_.size(); }
  std::uint64_t dropped() const { return dropped_; }
  std::size_t capacity() const { return capacity_; }

 private:
  const std::size_t capacity_;
  std::deque<AuditRecord> records_;
  std::uint64_t dropped_ = 0;
};

}  // namespace sk::audit
