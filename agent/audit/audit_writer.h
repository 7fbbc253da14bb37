// AuditWriter: appends records to the audit log (audit_format.h), the daemon's one
// writer of it.
//
// Per request the daemon calls Append() before it sends the response:
//   - kSync for requests that change state (and for every denial of one): the record
//     is written and fdatasync'd before Append returns, and the daemon changes nothing
//     unless it returned OK. So a crash may lose no record of a state change.
//   - kWritten for a change made in one store transaction: written at once, synced with
//     the next sync; the store keeps the record in the change's transaction until then
//     and writes it again at the next start if the log lost it (docs/audit.md).
//   - kBuffered for reads: the record joins the chain at once (Head() includes it) and is
//     written to the file with the other pending reads, in one write, once they reach
//     16 KiB or the oldest is 50 ms old, or by the next kSync append, Sync(), Checkpoint()
//     or Close(); Sync() also makes them durable. The daemon calls Sync() every second,
//     so a crash or power loss may lose the reads of the last second (never a change);
//     a clean shutdown (Close) loses nothing. A write that fails drops the pending reads
//     and takes the head back to the last record in the file.
// Fail closed: any write, sync, rotation or rename error makes the call fail with
// kUnavailable, reason "audit_unavailable" (the daemon answers 503). The writer then
// stays failed: it has tried to cut the file back to the end of the last whole record,
// and each later call first retries that (cut + sync) and proceeds only when it works.
// No half-written line stays behind: a short write is cut back; if even that fails, the
// torn line is cut when the log is next opened, and that cut is itself recorded.
//
// Open() verifies the last segment's chain (so the log is never extended from a forged
// or damaged tail: that is kCorruption, reason "audit_corrupt"), cuts a torn last line
// and records that as an event, and writes a checkpoint. Thread-safe (one lock).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "agent/audit/audit_env.h"
#include "agent/audit/audit_format.h"
#include "agent/audit/audit_record.h"
#include "agent/audit/audit_verifier.h"
#include "crypto/mac.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk::audit {

struct AuditWriterOptions {
  std::string dir;  // created (0700) when missing
  std::uint64_t max_segment_bytes = kDefaultMaxSegmentBytes;
  AuditEnv* env = nullptr;  // nullptr: AuditEnv::Posix()
};

struct AuditOpenReport {
  bool created = false;          // the log was empty: segment 1 was made
  std::uint64_t torn_bytes = 0;  // cut from the end of the last segment
  std::string torn_file;         // which segment
  std::uint64_t segments = 0;
  std::uint64_t last_seq = 0;  // the log's last record as found, before any record of this open
};

class AuditWriter {
 public:
  // kWritten: written to the file at once (a failure is the caller's), synced with the
  // next Sync(): for a change's record whose durable copy travels in the change's own store
  // transaction (the store keeps it until SyncedSeq() passes its seq).
  enum class Durability : std::uint8_t { kSync, kBuffered, kWritten };

  // `ak` must be 32 bytes; the writer keeps only its keyed HMAC state.
  static Result<std::unique_ptr<AuditWriter>> Open(const AuditWriterOptions& options, const SecretBytes& ak);
  ~AuditWriter();
  AuditWriter(const AuditWriter&) = delete;
  AuditWriter& operator=(const AuditWriter&) = delete;

  // `seq`, when given, gets the record's seq in the log.
  Status Append(const AuditRecord& record, Durability durability, std::uint64_t* seq = nullptr);
  // Every record at or below this seq is on disk and synced.
  std::uint64_t SyncedSeq() const;
  // Makes every record written so far durable. The fdatasync runs without the lock, so
  // appends (the reads being served) do not wait for the disk meanwhile.
  Status Sync();
  // Syncs, then seals the current head into the checkpoint file.
  Status Checkpoint();
  // Sync + checkpoint; after it every call fails with failed_precondition.
  Status Close();

  // The last record's seq and the MAC of the last line, for live verification.
  AuditHead Head() const;
  const AuditOpenReport& open_report() const { return open_report_; }
  bool failed() const;

 private:
  AuditWriter(const AuditWriterOptions& options, const SecretBytes& ak);
  Status OpenLocked();
  Status CreateSegment(std::uint64_t segment);
  Status RotateLocked();
  Status WriteLine(std::string_view line);
  Status SyncLocked();
  Status FlushLocked();  // writes the pending read records
  Status CheckpointLocked();
  Status RecoverLocked();
  Status Fail(Status st);
  std::string PathOf(const std::string& name) const { return options_.dir + "/" + name; }

  AuditWriterOptions options_;
  AuditEnv& env_;
  mutable std::mutex mu_;
  Hmac hmac_;
  std::shared_ptr<AuditFile> file_;  // shared: Sync() syncs it outside the lock
  std::uint64_t segment_ = 0;
  std::uint64_t file_size_ = 0;  // end of the last whole line in the current segment
  std::uint64_t next_seq_ = 1;
  Digest head_mac_{};
  bool segment_has_records_ = false;
  bool unsynced_ = false;
  std::uint64_t appends_ = 0;  // records written, so Sync() knows whether more came meanwhile
  // Read records not yet written (whole lines, in chain order), and the head before them.
  std::string pending_;
  std::uint64_t pending_records_ = 0;
  std::uint64_t pending_first_seq_ = 0;
  Digest pending_prev_mac_{};
  bool pending_had_records_ = false;
  std::chrono::steady_clock::time_point pending_since_;
  std::uint64_t synced_seq_ = 0;
  bool failed_ = false;
  bool dir_sync_pending_ = false;
  bool closed_ = false;
  AuditOpenReport open_report_;
};

}  // namespace sk::audit
