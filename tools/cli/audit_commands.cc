// `sealkeep audit verify [FILE|DIR]` and `sealkeep audit tail [DIR] [-n N] [-f]`: offline
// tools over an audit folder (format: agent/audit/audit_format.h, docs/audit.md).
//
// Verification needs the audit key AK, which only the backend can unwrap. Three ways:
//   - no TARGET, --key-file or --config: the running agent verifies its own log against
//     its live head (GET /v1/sys/audit/verify);
//   - --config F or --state DIR, with the agent stopped: this process opens the backend
//     and the store named by the agent's config (offline.h, as `sealkeep verify --config`
//     does), unwraps AK from the store, and verifies the config's audit folder (or TARGET);
//   - --key-file F: AK itself, 32 raw bytes or 64 hex digits (tests, copies of a log).
//
// Exit codes: verify: 0 the chain verifies, 7 it does not (the first broken record is
// named), 2 bad arguments or key file, 3 no log there, 6 the agent runs (--config) or the
// backend or store does not open. tail: 0, 3 no log there.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/audit/audit_env.h"
#include "agent/audit/audit_format.h"
#include "agent/audit/audit_verifier.h"
#include "agent/secrets/service.h"
#include "crypto/bytes.h"
#include "crypto/reasons.h"
#include "crypto/secret_bytes.h"
#include "tools/cli/agent_client.h"
#include "tools/cli/command.h"
#include "tools/cli/offline.h"

namespace sk::cli {
namespace {

using audit::AuditEnv;
using nlohmann::json;

struct AuditFlags {
  std::string target;  // FILE or DIR; default DefaultAuditDir()
  std::string key_file;
  std::string config;  // --config F, or --state DIR (F = DIR/sealkeep.toml): AK from the backend
  std::string state;
  std::optional<std::uint64_t> expect_last_seq;
  std::size_t lines = 10;
  bool follow = false;
};

AuditFlags& Flags() {
  static AuditFlags flags;
  return flags;
}

// $SEALKEEP_STATE/audit (the quick start's state folder), else the packaged location.
std::string DefaultAuditDir() {
  const char* state = std::getenv("SEALKEEP_STATE");
  if (state != nullptr && *state != '\0') return std::string(state) + "/audit";
  return "/var/lib/sealkeep/audit";
}

std::string Target() { return Flags().target.empty() ? DefaultAuditDir() : Flags().target; }

Result<SecretBytes> LoadKeyFile(const std::string& key_file) {
  if (key_file.empty()) {
    return InvalidArgument(
        "verifying a log offline needs the audit key: pass --config FILE (or --state DIR) to unwrap it with "
        "the stopped agent's backend, or --key-file FILE; or run `sealkeep audit verify` with no arguments "
        "to "
        "have the running agent verify its own log",
        "audit_key_needed");
  }
  std::ifstream in(key_file, std::ios::binary);
  if (!in) return InvalidArgument("cannot read key file " + key_file, "bad_audit_key");
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Result<SecretBytes> key = InvalidArgument(
      "key file " + key_file + " holds neither 32 raw bytes nor 64 hex digits", "bad_audit_key");
  if (raw.size() == kDigestSize) {
    key = SecretBytes::CopyFrom(AsBytes(raw));
  } else {
    std::string hex = raw;
    while (!hex.empty() && (hex.back() == '\n' || hex.back() == '\r' || hex.back() == ' ')) hex.pop_back();
    if (std::optional<Bytes> bytes = HexDecode(hex); bytes && bytes->size() == kDigestSize) {
      key = SecretBytes::CopyFrom(*bytes);
      std::fill(bytes->begin(), bytes->end(), std::uint8_t{0});
    }
    std::fill(hex.begin(), hex.end(), '\0');
  }
  std::fill(raw.begin(), raw.end(), '\0');
  return key;
}

// AK unwrapped through the stopped agent's backend from its store (opened read-only, so
// the journal is verified on the way: a store that is not the anchored history fails).
// *audit_dir gets the config's audit folder.
SecretBytes UnwrapAuditKey(const std::string& config_path, std::string* audit_dir) {
  Offline off = OpenOffline(config_path, "sealkeep audit verify");
  *audit_dir = off.config.audit_dir;
  secrets::ServiceOptions options = off.config.store;
  options.read_only = true;
  auto svc = secrets::SecretService::Open(off.backend, options);
  if (!svc.ok()) {
    if (svc.status().reason() == sk::reason::kStoreLocked) AgentRunning("sealkeep audit verify");
    Fail(svc.status().WithContext("unwrapping the audit key from the store " + off.config.store.store_path));
  }
  return SecretBytes::CopyFrom((*svc)->audit_key().Expose());
}

json ReportJson(const std::string& target, const audit::AuditVerifyReport& r) {
  json j = {{"target", target},
            {"ok", r.ok()},
            {"segments", r.segments},
            {"records", r.records},
            {"first_seq", r.first_seq},
            {"last_seq", r.last_seq},
            {"head_mac", HexEncode(r.head_mac)},
            {"checkpoint_checked", r.checkpoint_checked},
            {"torn_tail_bytes", r.torn_tail_bytes},
            {"notes", r.notes}};
  if (r.problem) {
    j["problem"] = {{"kind", std::string(r.problem->KindName())},
                    {"file", r.problem->file},
                    {"line", r.problem->line},
                    {"seq", r.problem->seq},
                    {"detail", r.problem->detail}};
  }
  return j;
}

// Without a key file or a target, the running agent verifies its own log against its
// live head (it holds the audit key, which the backend wraps).
void RunVerifyOnline() {
  HttpResponse r = CallOrFail({"GET", "/v1/sys/audit/verify", {}, std::chrono::milliseconds{600000}});
  Json j = ParseBody(r);
  if (Globals().json) {
    PrintBody(r);
  } else if (j.value("ok", false)) {
    std::printf(
        "audit log: ok: %llu records (seq %llu..%llu) in %llu segment(s), up to the agent's live head\n",
        j.value("records", 0ULL), j.value("first_seq", 0ULL), j.value("last_seq", 0ULL),
        j.value("segments", 0ULL));
  } else {
    const Json& p = j["problem"];
    std::printf("audit log: BROKEN at %s:%llu (seq %llu): %s: %s\n", p.value("file", "").c_str(),
                p.value("line", 0ULL), p.value("seq", 0ULL), p.value("kind", "").c_str(),
                p.value("detail", "").c_str());
  }
  if (!j.value("ok", false)) throw ExitRequest{kExitCorruption};
}

void RunVerify() {
  AuditFlags& f = Flags();
  if (!f.state.empty()) f.config = f.state + "/sealkeep.toml";
  if (f.key_file.empty() && f.config.empty() && f.target.empty() &&
      std::getenv("CREDENTIALS_DIRECTORY") == nullptr) {
    return RunVerifyOnline();
  }
  std::string target = Target();
  Result<SecretBytes> key = InvalidArgument("no audit key", "audit_key_needed");
  if (!f.config.empty()) {
    std::string audit_dir;
    key = UnwrapAuditKey(f.config, &audit_dir);
    if (f.target.empty()) {
      if (audit_dir.empty())
        Fail(NotFound(f.config + " configures no audit log ([audit] dir)", "no_audit_log"));
      target = audit_dir;
    }
  } else {
    key = LoadKeyFile(f.key_file);
  }
  if (!key.ok()) Fail(key.status());
  audit::AuditVerifyOptions options;
  options.expected_last_seq = f.expect_last_seq;
  Result<audit::AuditVerifyReport> report = audit::VerifyAuditLog(target, *key, options);
  if (!report.ok()) Fail(report.status());
  const audit::AuditVerifyReport& r = *report;
  if (Globals().json) {
    std::printf("%s\n", ReportJson(target, r).dump().c_str());
    if (!r.ok()) throw ExitRequest{kExitCorruption};
    return;
  }
  for (const std::string& note : r.notes) std::printf("note: %s\n", note.c_str());
  if (!r.ok()) {
    std::printf("%s: BROKEN after %llu good records: %s\n", target.c_str(),
                static_cast<unsigned long long>(r.records), r.problem->ToString().c_str());
    Fail(Corruption("the audit chain does not verify at " + r.problem->ToString(), "audit_tampered"));
  }
  std::printf("%s: ok: %llu records (seq %llu..%llu) in %llu segments; checkpoint %s\n", target.c_str(),
              static_cast<unsigned long long>(r.records), static_cast<unsigned long long>(r.first_seq),
              static_cast<unsigned long long>(r.last_seq), static_cast<unsigned long long>(r.segments),
              r.checkpoint_checked ? "verified" : "not checked");
}

// Complete record lines (headers skipped) of a segment's text, from byte `from`.
std::vector<std::string> RecordLines(std::string_view text, std::size_t& consumed) {
  std::vector<std::string> out;
  std::size_t pos = consumed;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) break;  // an unfinished line: wait for the rest
    std::string_view line = text.substr(pos, nl - pos);
    if (line.rfind("{\"sealkeep_audit\":", 0) != 0) out.emplace_back(line);
    pos = nl + 1;
  }
  consumed = pos;
  return out;
}

void Print(const std::vector<std::string>& lines) {
  for (const std::string& l : lines) std::printf("%s\n", l.c_str());
  std::fflush(stdout);
}

std::string ReadFrom(const std::string& path, std::size_t offset) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(static_cast<std::streamoff>(offset));
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void RunTail() {
  const AuditFlags& f = Flags();
  const std::string dir = Target();
  AuditEnv& env = *AuditEnv::Posix();
  Result<std::vector<std::uint64_t>> segments = audit::ListSegments(env, dir);
  if (!segments.ok()) Fail(segments.status());
  if (segments->empty()) Fail(NotFound("no audit segments (audit-*.log) in " + dir, "audit_empty"));

  // The last N records, reading segments from the newest back.
  std::deque<std::string> last;
  std::size_t end_offset = 0;
  for (auto it = segments->rbegin(); it != segments->rend() && last.size() < f.lines; ++it) {
    std::string text = ReadFrom(dir + "/" + audit::SegmentFileName(*it), 0);
    std::size_t consumed = 0;
    std::vector<std::string> lines = RecordLines(text, consumed);
    if (it == segments->rbegin()) end_offset = consumed;
    for (auto l = lines.rbegin(); l != lines.rend() && last.size() < f.lines; ++l) last.push_front(*l);
  }
  Print(std::vector<std::string>(last.begin(), last.end()));
  if (!f.follow) return;

  std::uint64_t segment = segments->back();
  std::size_t offset = end_offset;
  while (true) {
    // Look for the next segment before reading this one: the writer finishes a segment
    // before it creates the next, so if the next existed before this read, the read saw
    // everything this segment will ever hold.
    const bool rotated = ::access((dir + "/" + audit::SegmentFileName(segment + 1)).c_str(), F_OK) == 0;
    std::string fresh = ReadFrom(dir + "/" + audit::SegmentFileName(segment), offset);
    std::size_t consumed = 0;
    std::vector<std::string> lines = RecordLines(fresh, consumed);
    offset += consumed;
    Print(lines);
    if (rotated && consumed == 0) {
      ++segment;  // read the next from its start (its header is skipped)
      offset = 0;
      continue;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

void Add(CLI::App& app) {
  auto* cmd = app.add_subcommand("audit", "Verify the audit trail's MAC chain, or print its records");
  cmd->require_subcommand(1);
  auto& f = Flags();

  auto* verify = cmd->add_subcommand(
      "verify",
      "Check the audit log's HMAC chain; name the first broken record. With no TARGET, "
      "--config or --key-file, the running agent checks its own log against its live head "
      "(GET /v1/sys/audit/verify); with --config or --state, the stopped agent's backend "
      "unwraps the audit key");
  verify->add_option("TARGET", f.target,
                     "Audit folder or one segment file (default: $SEALKEEP_STATE/audit, else "
                     "/var/lib/sealkeep/audit)");
  auto* key_file = verify->add_option("--key-file", f.key_file,
                                      "File holding the audit key AK: 32 raw bytes or 64 hex digits");
  auto* config = verify
                     ->add_option("--config", f.config,
                                  "Offline: the stopped agent's config file; AK is unwrapped by its backend "
                                  "and TARGET defaults to its audit folder")
                     ->excludes(key_file);
  verify->add_option("--state", f.state, "Offline: a state folder holding sealkeep.toml (as --config)")
      ->excludes(config)
      ->excludes(key_file);
  verify->add_option("--expect-last-seq", f.expect_last_seq,
                     "The log must reach this record (a head known from elsewhere, e.g. the agent)");
  verify->footer(
      "Exit codes: 0 verifies, 7 broken (tampered, truncated...), 2 bad key or arguments, 3 no log, "
      "6 the agent runs (--config) or its backend or store does not open.");
  verify->callback(RunVerify);

  auto* tail = cmd->add_subcommand("tail", "Print the last audit records as JSON lines");
  tail->add_option("DIR", f.target,
                   "Audit folder (default: $SEALKEEP_STATE/audit, else /var/lib/sealkeep/audit)");
  tail->add_option("-n,--lines", f.lines, "How many records")->capture_default_str();
  tail->add_flag("-f,--follow", f.follow, "Keep printing records as they are written (follows rotation)");
  tail->callback(RunTail);
}

const Registrar kRegistrar(Add, 610);

}  // namespace
}  // namespace sk::cli
