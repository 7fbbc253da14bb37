#include "agent/audit/audit_writer.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "crypto/ct.h"
#include "crypto/reasons.h"

namespace sk::audit {
namespace {

constexpr std::string_view kTmpSuffix = ".tmp";
constexpr std::size_t kPendingFlushBytes = 16 * 1024;    // read records written together
constexpr std::chrono::milliseconds kPendingMaxAge{50};  // the longest a read record waits under load

Status AsUnavailable(const Status& st) {
  if (st.ok() || st.reason() == sk::reason::kAuditUnavailable) return st;
  return Unavailable(std::string(st.message()), "audit_unavailable");
}

Status WriteAll(AuditFile& file, std::string_view line) {
  ByteView rest = AsBytes(line);
  while (!rest.empty()) {
    SK_ASSIGN_OR_RETURN(std::size_t n, file.Write(rest));
    if (n == 0 || n > rest.size()) return Unavailable("write made no progress", "audit_unavailable");
    rest = rest.subspan(n);
  }
  return OkStatus();
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

AuditRecord AgentEvent(std::string route, std::string reason) {
  AuditRecord r;
  r.peer.uid = static_cast<std::uint32_t>(::geteuid());
  r.peer.gid = static_cast<std::uint32_t>(::getegid());
  r.peer.pid = static_cast<std::int32_t>(::getpid());
  r.route = std::move(route);
  r.outcome = AuditOutcome::kEvent;
  r.reason = std::move(reason);
  return r;
}

AuditWriter::AuditWriter(const AuditWriterOptions& options, const SecretBytes& ak)
    : options_(options), env_(options.env != nullptr ? *options.env : *AuditEnv::Posix()), hmac_(ak) {}

AuditWriter::~AuditWriter() {
  if (!closed_) (void)Close();
}

Result<std::unique_ptr<AuditWriter>> AuditWriter::Open(const AuditWriterOptions& options,
                                                       const SecretBytes& ak) {
  if (ak.size() != kDigestSize) return InvalidArgument("the audit key must be 32 bytes", "bad_audit_key");
  if (options.dir.empty()) return InvalidArgument("no audit folder given");
  if (options.max_segment_bytes < 4096)
    return InvalidArgument("audit segments must allow at least 4096 bytes");
  std::unique_ptr<AuditWriter> w(new AuditWriter(options, ak));
  std::lock_guard<std::mutex> lock(w->mu_);
  Status st = w->OpenLocked();
  if (!st.ok()) {
    w->closed_ = true;  // nothing to flush or checkpoint
    return st;
  }
  return w;
}

Status AuditWriter::OpenLocked() {
  SK_RETURN_IF_ERROR(AsUnavailable(env_.CreateDir(options_.dir)));
  SK_ASSIGN_OR_RETURN(std::vector<std::string> names, env_.ListDir(options_.dir));
  for (const std::string& n : names) {
    if (EndsWith(n, kTmpSuffix)) SK_RETURN_IF_ERROR(env_.Remove(PathOf(n)));
  }
  SK_ASSIGN_OR_RETURN(std::vector<std::uint64_t> segments, ListSegments(env_, options_.dir));
  if (segments.empty()) {
    open_report_.created = true;
    open_report_.segments = 1;
    SK_RETURN_IF_ERROR(AsUnavailable(CreateSegment(1)));
    return AsUnavailable(CheckpointLocked());
  }
  open_report_.segments = segments.size();

  // The checkpoint, if any, must be reachable: never extend a log cut behind it.
  std::optional<audit::Checkpoint> cp;
  Result<std::string> cp_text = env_.ReadFile(PathOf(std::string(kCheckpointFileName)));
  if (cp_text.ok()) {
    Result<ParsedCheckpoint> parsed = ParseCheckpoint(*cp_text);
    if (!parsed.ok() || !ConstantTimeEqual(CheckpointMac(hmac_, parsed->sealed.body), parsed->sealed.mac)) {
      return Corruption("the audit checkpoint is malformed or forged", "audit_corrupt");
    }
    cp = parsed->checkpoint;
  } else if (cp_text.status().code() != Code::kNotFound) {
    return cp_text.status();
  }

  const std::uint64_t last = segments.back();
  const std::string name = SegmentFileName(last);
  SK_ASSIGN_OR_RETURN(std::string text, env_.ReadFile(PathOf(name)));
  ChainState chain;
  chain.linked = false;
  bool cp_seen = false;
  SegmentScan scan =
      ScanSegment(text, name, last, hmac_, chain, [&](std::uint64_t s, std::uint64_t q, const Digest& m) {
        if (cp && s == cp->segment && q == cp->last_seq && ConstantTimeEqual(m, cp->head_mac)) cp_seen = true;
      });
  if (scan.problem)
    return Corruption("the audit log's last segment is damaged: " + scan.problem->ToString(),
                      "audit_corrupt");
  if (cp && (cp->segment > last || (cp->segment == last && !cp_seen))) {
    return Corruption("the audit log was cut behind its checkpoint (seq " + std::to_string(cp->last_seq) +
                          ", segment " + std::to_string(cp->segment) + "); run `sealkeep audit verify`",
                      "audit_corrupt");
  }

  SK_ASSIGN_OR_RETURN(file_, env_.OpenAppend(PathOf(name)));
  segment_ = last;
  file_size_ = scan.valid_bytes;
  next_seq_ = chain.next_seq;
  open_report_.last_seq = next_seq_ - 1;
  head_mac_ = chain.prev;
  segment_has_records_ = scan.records > 0;
  if (scan.torn_bytes > 0) {
    // A crash mid-write left an unfinished line: it was never acknowledged. Cut it, and
    // say so in the log itself.
    SK_RETURN_IF_ERROR(file_->Truncate(file_size_));
    SK_RETURN_IF_ERROR(file_->Sync());
    open_report_.torn_bytes = scan.torn_bytes;
    open_report_.torn_file = name;
    AuditRecord event =
        AgentEvent("audit.open", "torn_tail_truncated: cut " + std::to_string(scan.torn_bytes) +
                                     " bytes of an unfinished line from " + name);
    std::string body = EncodeRecordBody(next_seq_, event);
    Digest mac = ChainMac(hmac_, head_mac_, body);
    std::string line = SealLine(body, mac);
    SK_RETURN_IF_ERROR(WriteAll(*file_, line));
    SK_RETURN_IF_ERROR(file_->Sync());
    file_size_ += line.size();
    ++next_seq_;
    head_mac_ = mac;
    segment_has_records_ = true;
  }
  return AsUnavailable(CheckpointLocked());
}

Status AuditWriter::CreateSegment(std::uint64_t segment) {
  SegmentHeader h{segment, next_seq_, head_mac_};
  std::string body = EncodeHeaderBody(h, std::chrono::system_clock::now());
  Digest mac = ChainMac(hmac_, head_mac_, body);
  std::string line = SealLine(body, mac);
  const std::string final_path = PathOf(SegmentFileName(segment));
  const std::string tmp_path = final_path + std::string(kTmpSuffix);
  SK_ASSIGN_OR_RETURN(std::unique_ptr<AuditFile> f, env_.Create(tmp_path));
  Status st = WriteAll(*f, line);
  if (st.ok()) st = f->Sync();
  if (st.ok()) st = env_.Rename(tmp_path, final_path);
  if (!st.ok()) {
    f.reset();
    (void)env_.Remove(tmp_path);
    return st;
  }
  // Renamed: the new segment is the log's end now, whatever happens next.
  file_ = std::move(f);
  segment_ = segment;
  file_size_ = line.size();
  head_mac_ = mac;
  segment_has_records_ = false;
  unsynced_ = false;
  if (Status ds = env_.SyncDir(options_.dir); !ds.ok()) {
    dir_sync_pending_ = true;
    return ds;
  }
  return OkStatus();
}

Status AuditWriter::RotateLocked() {
  SK_RETURN_IF_ERROR(SyncLocked());
  SK_RETURN_IF_ERROR(CreateSegment(segment_ + 1));
  return CheckpointLocked();
}

Status AuditWriter::SyncLocked() {
  SK_RETURN_IF_ERROR(FlushLocked());
  if (unsynced_) SK_RETURN_IF_ERROR(file_->Sync());
  unsynced_ = false;
  synced_seq_ = next_seq_ - 1;
  return OkStatus();
}

Status AuditWriter::CheckpointLocked() {
  SK_RETURN_IF_ERROR(SyncLocked());
  audit::Checkpoint c{segment_, next_seq_ - 1, head_mac_};
  std::string body = EncodeCheckpointBody(c, std::chrono::system_clock::now());
  std::string line = SealLine(body, CheckpointMac(hmac_, body));
  const std::string final_path = PathOf(std::string(kCheckpointFileName));
  const std::string tmp_path = final_path + std::string(kTmpSuffix);
  SK_ASSIGN_OR_RETURN(std::unique_ptr<AuditFile> f, env_.Create(tmp_path));
  Status st = WriteAll(*f, line);
  if (st.ok()) st = f->Sync();
  f.reset();
  if (st.ok()) st = env_.Rename(tmp_path, final_path);
  if (!st.ok()) {
    (void)env_.Remove(tmp_path);
    return st;
  }
  return env_.SyncDir(options_.dir);
}

Status AuditWriter::RecoverLocked() {
  if (dir_sync_pending_) {
    SK_RETURN_IF_ERROR(env_.SyncDir(options_.dir));
    dir_sync_pending_ = false;
  }
  SK_RETURN_IF_ERROR(file_->Truncate(file_size_));
  SK_RETURN_IF_ERROR(file_->Sync());
  unsynced_ = false;
  synced_seq_ = next_seq_ - 1;
  failed_ = false;
  return OkStatus();
}

Status AuditWriter::Fail(Status st) {
  failed_ = true;
  // Cut back any part of the line that reached the file; RecoverLocked() retries it.
  if (file_) (void)file_->Truncate(file_size_);
  return AsUnavailable(st);
}

Status AuditWriter::FlushLocked() {
  if (pending_.empty()) return OkStatus();
  if (Status st = WriteAll(*file_, pending_); !st.ok()) {
    // Those records never reached the file: the head goes back to the last one that did,
    // so the chain on disk and in memory stay one.
    next_seq_ = pending_first_seq_;
    head_mac_ = pending_prev_mac_;
    segment_has_records_ = pending_had_records_;
    pending_.clear();
    pending_records_ = 0;
    return Fail(st);
  }
  file_size_ += pending_.size();
  appends_ += pending_records_;
  unsynced_ = true;
  pending_.clear();
  pending_records_ = 0;
  return OkStatus();
}

Status AuditWriter::Append(const AuditRecord& record, Durability durability, std::uint64_t* seq) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return FailedPrecondition("the audit log is closed", "audit_unavailable");
  const bool recovered = failed_;
  if (failed_) {
    if (Status st = RecoverLocked(); !st.ok()) return AsUnavailable(st);
  }
  std::string body = EncodeRecordBody(next_seq_, record);
  if (segment_has_records_ &&
      file_size_ + pending_.size() + body.size() + kMacSuffixBytes + 1 > options_.max_segment_bytes) {
    SK_RETURN_IF_ERROR(FlushLocked());
    if (Status st = RotateLocked(); !st.ok()) return Fail(st);
  }
  Digest mac = ChainMac(hmac_, head_mac_, body);
  std::string line = SealLine(body, mac);
  const auto now = std::chrono::steady_clock::now();
  if (seq != nullptr) *seq = next_seq_;
  if (durability != Durability::kBuffered || recovered) {
    // A change's record (and the first record after a failure) goes to the file now,
    // behind whatever reads are still pending, so the order on disk is the chain's.
    SK_RETURN_IF_ERROR(FlushLocked());
    if (Status st = WriteAll(*file_, line); !st.ok()) return Fail(st);
    if (durability == Durability::kSync) {
      if (Status st = file_->Sync(); !st.ok()) return Fail(st);
      synced_seq_ = next_seq_;  // and every record before it, all written before this one
    }
    file_size_ += line.size();
    ++appends_;
    ++next_seq_;
    head_mac_ = mac;
    segment_has_records_ = true;
    unsynced_ = durability != Durability::kSync;
    return OkStatus();
  }
  if (pending_.empty()) {
    pending_first_seq_ = next_seq_;
    pending_prev_mac_ = head_mac_;
    pending_had_records_ = segment_has_records_;
    pending_since_ = now;
  }
  pending_ += line;
  ++pending_records_;
  ++next_seq_;
  head_mac_ = mac;
  segment_has_records_ = true;
  if (pending_.size() >= kPendingFlushBytes || now - pending_since_ >= kPendingMaxAge) return FlushLocked();
  return OkStatus();
}

Status AuditWriter::Sync() {
  std::shared_ptr<AuditFile> file;
  std::uint64_t appended = 0;
  std::uint64_t through = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return FailedPrecondition("the audit log is closed", "audit_unavailable");
    if (failed_) return AsUnavailable(RecoverLocked());
    SK_RETURN_IF_ERROR(FlushLocked());
    if (!unsynced_) {
      synced_seq_ = next_seq_ - 1;
      return OkStatus();
    }
    file = file_;
    appended = appends_;
    through = next_seq_ - 1;
  }
  Status synced = file->Sync();
  std::lock_guard<std::mutex> lock(mu_);
  if (file_ != file || closed_) return AsUnavailable(synced);  // rotated or closed meanwhile: synced there
  if (!synced.ok()) return Fail(synced);
  if (appends_ == appended) unsynced_ = false;
  synced_seq_ = std::max(synced_seq_, through);
  return OkStatus();
}

Status AuditWriter::Checkpoint() {
  SK_RETURN_IF_ERROR(Sync());  // the bulk of the sync without the lock; CheckpointLocked syncs the rest
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return FailedPrecondition("the audit log is closed", "audit_unavailable");
  if (failed_) SK_RETURN_IF_ERROR(AsUnavailable(RecoverLocked()));
  if (Status st = SyncLocked(); !st.ok()) return Fail(st);
  return AsUnavailable(CheckpointLocked());
}

Status AuditWriter::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return OkStatus();
  Status st = failed_ ? RecoverLocked() : OkStatus();
  if (st.ok()) st = CheckpointLocked();
  closed_ = true;
  file_.reset();
  return AsUnavailable(st);
}

AuditHead AuditWriter::Head() const {
  std::lock_guard<std::mutex> lock(mu_);
  return AuditHead{next_seq_ - 1, head_mac_, segment_};
}

std::uint64_t AuditWriter::SyncedSeq() const {
  std::lock_guard<std::mutex> lock(mu_);
  return synced_seq_;
}

bool AuditWriter::failed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failed_;
}

}  // namespace sk::audit
