#include "agent/audit/sealed_queue.h"

#include <utility>

namespace sk::audit {

void SealedAuditQueue::Push(AuditRecord record, bool must_keep) {
  if (records_.size() >= capacity_ && !must_keep) {
    ++dropped_;
    return;
  }
  records_.push_back(std::move(record));
}

Status SealedAuditQueue::WriteTo(AuditWriter& writer) {
  if (records_.empty() && dropped_ == 0) return OkStatus();
  AuditRecord event =
      AgentEvent("audit.sealed",
                 "sealed_records: " + std::to_string(records_.size()) +
                     " records of requests made while the agent was sealed follow, with their own times; " +
                     std::to_string(dropped_) + " more were dropped (at most " + std::to_string(capacity_) +
                     " are kept)");
  SK_RETURN_IF_ERROR(writer.Append(event, AuditWriter::Durability::kBuffered));
  for (const AuditRecord& r : records_) {
    SK_RETURN_IF_ERROR(writer.Append(r, AuditWriter::Durability::kBuffered));
  }
  SK_RETURN_IF_ERROR(writer.Sync());
  records_.clear();
  dropped_ = 0;
  return OkStatus();
}

}  // namespace sk::audit
