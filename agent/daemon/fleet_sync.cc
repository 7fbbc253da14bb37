#include "agent/daemon/fleet_sync.h"

#include <algorithm>
#include <charconv>

#include "agent/audit/audit_record.h"
#include "agent/daemon/agent.h"
#include "agent/daemon/systemd.h"
#include "agent/fleet/fleet_host.h"
#include "hsm/credential.h"

namespace sk::daemon {
namespace {

// The anchor's value: "<seq> <hash as 64 hex digits>".
std::string AnchorText(const fleet::ChainHead& head) {
  return std::to_string(head.seq) + " " + HexEncode(head.hash);
}

Result<fleet::ChainHead> ParseAnchor(std::string_view text, const std::string& path) {
  fleet::ChainHead head;
  const std::size_t space = text.find(' ');
  const auto bad = [&path] {
    return Corruption("the fleet anchor " + path + " does not hold \"<seq> <hash>\"", "fleet_anchor_invalid");
  };
  if (space == std::string_view::npos) return bad();
  auto [end, ec] = std::from_chars(text.data(), text.data() + space, head.seq);
  if (ec != std::errc() || end != text.data() + space) return bad();
  std::optional<Bytes> hash = HexDecode(text.substr(space + 1));
  if (!hash || hash->size() != head.hash.size()) return bad();
  std::copy(hash->begin(), hash->end(), head.hash.begin());
  return head;
}

// The database password: [fleet] password_file, else the systemd credential
// fleet-db-password when the unit passes one, else none.
Result<std::optional<SecretBytes>> ReadPassword(const config::FleetConfig& c) {
  Result<SecretBytes> pw = hsm::ReadCredential(c.password_file, "fleet-db-password");
  if (pw.ok()) return std::optional<SecretBytes>(std::move(pw).value());
  if (c.password_file.empty() && pw.status().reason() == "credential_missing")
    return std::optional<SecretBytes>();
  return pw.status().WithContext("the fleet database's password");
}

}  // namespace

struct FleetSync::Live {
  std::shared_ptr<secrets::SecretService> svc;
  std::shared_ptr<hsm::KeyBackend> backend;  // the host key may use its connection: kept as long
  std::unique_ptr<fleet::FleetHost> host;
  std::unique_ptr<fleet::FleetDb> db;
  int backoff_s = 1;
};

std::uint64_t FleetSync::NowMs() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

FleetSync::FleetSync(Agent& agent, config::FleetConfig config)
    : agent_(agent), config_(std::move(config)), live_(std::make_unique<Live>()) {
  state_.host_id = config_.host_id;
}

FleetSync::~FleetSync() { Stop(); }

void FleetSync::Start() {
  if (thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stop_ = false;
  }
  thread_ = std::thread([this] { Run(); });
}

void FleetSync::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  live_->host.reset();  // before the backend its key may use
  live_->db.reset();
  live_->svc.reset();
  live_->backend.reset();
}

void FleetSync::Wake() {
  {
    std::lock_guard lock(mu_);
    wake_ = true;
  }
  cv_.notify_all();
}

FleetSync::State FleetSync::Report() const {
  std::lock_guard lock(mu_);
  return state_;
}

void FleetSync::NoteError(const std::string& what) {
  std::lock_guard lock(mu_);
  if (state_.error != what) Log(LogLevel::kWarning, "fleet: " + what);
  state_.error = what;
}

void FleetSync::NoteRefusal(const Status& refusal) {
  std::string key = std::string(refusal.reason()) + ": " + std::string(refusal.message());
  bool raise = false;
  {
    std::lock_guard lock(mu_);
    ++state_.refusals;
    state_.refusal_reason = std::string(refusal.reason());
    state_.refusal_message = std::string(refusal.message());
    if (alerted_refusal_ != key) {
      alerted_refusal_ = key;
      raise = true;
    }
  }
  if (raise) {
    Log(LogLevel::kError,
        "fleet: refusing what the fleet database offers, serving the last good state: " + refusal.ToString());
    agent_.RaiseAlert(alerts::AlertKind::kFleetRefused,
                      "the fleet database offers what this host refuses (it keeps serving its last good "
                      "state): ",
                      refusal);
  }
}

void FleetSync::CheckLag() {
  const auto since = last_success_ == std::chrono::steady_clock::time_point{} ? started_ : last_success_;
  if (std::chrono::steady_clock::now() - since < std::chrono::seconds(config_.lag_alert_seconds)) return;
  std::string error;
  {
    std::lock_guard lock(mu_);
    if (alerted_lag_) return;
    alerted_lag_ = true;
    error = state_.error;
  }
  agent_.RaiseAlert(
      alerts::AlertKind::kFleetBehind,
      "no pull of the fleet journal has succeeded for " + std::to_string(config_.lag_alert_seconds) + " s: ",
      Status(Code::kUnavailable, "fleet_behind", error.empty() ? "no error recorded" : error));
}

bool FleetSync::Round() {
  Live& l = *live_;
  std::shared_ptr<secrets::SecretService> svc = agent_.service();
  std::shared_ptr<hsm::KeyBackend> backend = agent_.backend();
  if (!svc || !backend) {
    l.host.reset();
    l.svc.reset();
    l.backend.reset();
    NoteError("sealed: nothing is applied until the agent is unsealed");
    return l.db != nullptr;
  }
  if (svc != l.svc) {  // unsealed anew: the key and anchor belong to the old service
    l.host.reset();
    l.svc = svc;
    l.backend = backend;
  }
  if (!l.host) {
    Result<std::unique_ptr<EcdhPrivateKey>> key = backend->OpenHostKey();
    if (!key.ok()) {
      NoteError("cannot open the fleet host key: " + key.status().ToString());
      return l.db != nullptr;
    }
    Bytes public_key = (*key)->public_key();
    fleet::ChainHead anchor;
    Result<secrets::SecretValue> stored = svc->Get(config_.prefix, std::nullopt);
    if (stored.ok()) {
      Result<fleet::ChainHead> parsed = ParseAnchor(AsChars(stored->value.Expose()), config_.prefix);
      if (!parsed.ok()) {
        NoteError(parsed.status().ToString());
        return l.db != nullptr;
      }
      anchor = *parsed;
    } else if (stored.status().code() != Code::kNotFound) {
      NoteError("cannot read the fleet anchor " + config_.prefix + ": " + stored.status().ToString());
      return l.db != nullptr;
    }
    auto host = fleet::FleetHost::Create(config_.host_id, std::move(key).value(), config_.signer_key, anchor);
    if (!host.ok()) {
      NoteError(host.status().ToString());
      return l.db != nullptr;
    }
    l.host = std::move(host).value();
    std::lock_guard lock(mu_);
    state_.key_kind = backend->Info().kind;
    state_.public_key = std::move(public_key);
    state_.applied_seq = anchor.seq;
  }
  // The database is gone (or never came): the next round connects anew.
  const auto lost = [&](const Status& st) {
    l.db.reset();
    {
      std::lock_guard lock(mu_);
      state_.db_reachable = false;
    }
    NoteError(st.ToString());
    return false;
  };
  if (!l.db) {
    Result<std::optional<SecretBytes>> pw = ReadPassword(config_);
    if (!pw.ok()) return lost(pw.status());
    auto db = fleet::FleetDb::Connect(config_.db, pw->has_value() ? &**pw : nullptr);
    if (!db.ok()) return lost(db.status());
    if (Status st = (*db)->Listen(); !st.ok()) return lost(st);
    l.db = std::move(db).value();
  }
  Result<fleet::ChainHead> head = l.db->Head();
  if (!head.ok()) return lost(head.status());
  {
    std::lock_guard lock(mu_);
    state_.db_head_seq = head->seq;
    state_.db_reachable = true;
  }
  Result<fleet::FleetHost::Pulled> pulled = l.host->Pull(*l.db);
  if (!pulled.ok()) return lost(pulled.status());
  for (fleet::EntryChanges& e : pulled->entries) {
    Status st = Apply(*svc, e);
    if (!st.ok()) {
      // Nothing of it is applied; a new FleetHost starts again from the stored anchor.
      l.host.reset();
      NoteError("cannot apply fleet entry " + std::to_string(e.seq) + ": " + st.ToString());
      return true;
    }
    l.host->Applied(e);
    std::lock_guard lock(mu_);
    state_.applied_seq = e.seq;
    ++state_.applied_entries;
  }
  const Status& refusal = pulled->refusal;
  if (!refusal.ok() && refusal.reason() == "fleet_unavailable") return lost(refusal);
  if (!refusal.ok()) {
    NoteRefusal(refusal);
  } else {
    std::lock_guard lock(mu_);
    state_.refusal_reason.clear();
    state_.refusal_message.clear();
    alerted_refusal_.clear();
  }
  const std::string refusal_reason = refusal.ok() ? "" : std::string(refusal.reason());
  if (Status st = l.db->ReportApplied({config_.host_id, l.host->anchor().seq, refusal_reason}); !st.ok()) {
    return lost(st);
  }
  last_success_ = std::chrono::steady_clock::now();
  l.backoff_s = 1;
  std::lock_guard lock(mu_);
  state_.last_success_ms = NowMs();
  state_.error.clear();
  alerted_lag_ = false;
  return true;
}

Status FleetSync::Apply(secrets::SecretService& svc, fleet::EntryChanges& e) {
  std::vector<secrets::Op> ops;
  for (fleet::Change& c : e.changes) {
    secrets::Op op;
    op.path = config_.prefix + "/" + c.path;
    if (c.kind == fleet::OpKind::kPut) {
      op.type = secrets::Op::Type::kPut;
      op.value = std::move(c.value);
      op.labels = {{kSeqLabel, std::to_string(e.seq)}, {kVersionLabel, std::to_string(c.version)}};
    } else {
      // A delete of a path this host never had, or whose head is deleted already, is a no-op.
      Result<secrets::SecretValue> head = svc.Get(op.path, std::nullopt);
      if (!head.ok()) {
        if (head.status().code() == Code::kNotFound || head.status().code() == Code::kExpired) continue;
        return head.status();
      }
      op.type = secrets::Op::Type::kDelete;
    }
    ops.push_back(std::move(op));
  }
  secrets::Op anchor;
  anchor.type = secrets::Op::Type::kPut;
  anchor.path = config_.prefix;
  std::string text = AnchorText({e.seq, e.hash});
  anchor.value = SecretBytes::CopyFrom(AsBytes(text));
  anchor.max_versions = 4;  // the anchor's history is the journal's; a few versions are enough
  ops.push_back(std::move(anchor));
  secrets::Actor actor("fleet entry " + std::to_string(e.seq));
  actor.fleet = true;
  SK_RETURN_IF_ERROR(svc.Transact(std::move(ops), "", actor).status());
  audit::AuditRecord record = audit::AgentEvent(
      "fleet.apply", "applied fleet entry " + std::to_string(e.seq) + ": " +
                         std::to_string(e.changes.size()) + " change(s) under " + config_.prefix);
  (void)agent_.Audit(record, audit::AuditWriter::Durability::kBuffered, true);
  return OkStatus();
}

void FleetSync::WaitForWork(bool connected) {
  Live& l = *live_;
  const auto wait = connected && l.db ? std::chrono::seconds(config_.poll_seconds)
                                      : std::chrono::seconds(std::min(l.backoff_s, config_.poll_seconds));
  if (!connected || !l.db) l.backoff_s = std::min(l.backoff_s * 2, config_.poll_seconds);
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (true) {
    {
      std::unique_lock lock(mu_);
      if (stop_) return;
      if (wake_) {
        wake_ = false;
        return;
      }
    }
    CheckLag();
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return;
    // Short slices, so that Stop() and Wake() are seen within a quarter second.
    const auto slice =
        std::min<std::chrono::steady_clock::duration>(deadline - now, std::chrono::milliseconds(250));
    if (l.db) {
      Result<bool> notified =
          l.db->WaitForNotify(std::chrono::duration_cast<std::chrono::milliseconds>(slice));
      if (!notified.ok()) {
        l.db.reset();
        return;
      }
      if (*notified) return;
    } else {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, slice, [this] { return stop_ || wake_; });
    }
  }
}

void FleetSync::Run() {
  Log(LogLevel::kInfo,
      "fleet: host " + config_.host_id + " follows the fleet journal (paths under " + config_.prefix + ")");
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
    const bool connected = Round();
    WaitForWork(connected);
  }
}

}  // namespace sk::daemon
