// How a change's "allowed" audit record waits in the store (the audit_outbox table, in the
// change's own transaction) until the audit log holding it is synced, and how it is read
// back to be written to the log again when the log lost it (power failed before the sync).
// Not part of the log's format (audit_format.h): the log holds the record as always.
//
//   "SKA1" | u64 time (microseconds since 1970, UTC) | u32 uid | u32 gid | u32 pid |
//   u8 outcome | Var16 request_id, unit, exe, route, path, reason      (big-endian)
#pragma once

#include "agent/audit/audit_record.h"
#include "crypto/bytes.h"
#include "crypto/status.h"

namespace sk::audit {

Bytes EncodeStoredRecord(const AuditRecord& r);
// Fails with corruption (reason audit_corrupt) on anything not written by EncodeStoredRecord.
Result<AuditRecord> DecodeStoredRecord(ByteView bytes);

}  // namespace sk::audit
