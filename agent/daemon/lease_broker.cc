#include "agent/daemon/lease_broker.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "agent/daemon/agent.h"
#include "agent/daemon/systemd.h"
#include "agent/secrets/generator.h"
#include "agent/secrets/path.h"
#include "crypto/random.h"
#include "crypto/unique_fd.h"

namespace sk::daemon {
namespace {

using Clock = std::chrono::steady_clock;
using secrets::LeaseRecord;
using secrets::LeaseState;

// The server makes a role in one transaction; dropping one waits for its sessions to end.
constexpr int kCallTimeoutMs = 30'000;
constexpr std::size_t kMaxAnswer = 64 * 1024;

std::uint64_t NowMs() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// Not reached: nothing was asked (lease_server_unavailable).
Status Unavailable(const std::string& socket, const std::string& why) {
  return Status(Code::kUnavailable, "lease_server_unavailable",
                "the lease server (sealkeep-leases.service) does not answer on " + socket + ": " + why);
}

// Asked, but no usable answer: the work may or may not have been done (lease_server_no_answer).
Status NoAnswer(const std::string& socket, const std::string& why) {
  return Status(Code::kUnavailable, "lease_server_no_answer",
                "the lease server (sealkeep-leases.service) on " + socket +
                    " gave no usable answer (it may or may not have acted): " + why);
}

int MillisLeft(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(left);
}

// Writes all of `data` before the deadline.
bool WriteAll(int fd, const std::uint8_t* data, std::size_t size, Clock::time_point deadline) {
  while (size > 0) {
    pollfd p{fd, POLLOUT, 0};
    const int ms = MillisLeft(deadline);
    if (ms == 0) return false;
    const int n = ::poll(&p, 1, ms);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    const ssize_t w = ::send(fd, data, size, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return false;
    }
    data += w;
    size -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace

LeaseBroker::LeaseBroker(Agent& agent, std::string socket, std::chrono::seconds sweep_every)
    : agent_(agent), socket_(std::move(socket)), sweep_every_(sweep_every) {}

LeaseBroker::~LeaseBroker() { Stop(); }

void LeaseBroker::Start() {
  if (socket_.empty() || sweeper_.joinable()) return;
  sweeper_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      lock.unlock();
      SweepOnce();
      lock.lock();
      wake_.wait_for(lock, sweep_every_, [this] { return stop_; });
    }
  });
}

void LeaseBroker::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
}

Status LeaseBroker::Call(const std::string& header, const SecretBytes* password) const {
  if (socket_.size() >= sizeof(sockaddr_un::sun_path)) return Unavailable(socket_, "the path is too long");
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return Unavailable(socket_, std::string("socket: ") + std::strerror(errno));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_.data(), socket_.size());
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 &&
      errno != EINPROGRESS) {
    return Unavailable(socket_, std::strerror(errno));
  }
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(kCallTimeoutMs);
  SecretBytes request(header.size() + 1 + (password != nullptr ? password->size() + 1 : 0));
  auto at = std::copy(header.begin(), header.end(), request.Expose().begin());
  *at++ = '\n';
  if (password != nullptr) {
    at = std::copy(password->Expose().begin(), password->Expose().end(), at);
    *at = '\n';
  }
  if (!WriteAll(fd.get(), request.Expose().data(), request.size(), deadline))
    return Unavailable(socket_, "the request could not be sent");
  ::shutdown(fd.get(), SHUT_WR);
  std::string answer;
  char buf[4096];
  for (;;) {
    pollfd p{fd.get(), POLLIN, 0};
    const int ms = MillisLeft(deadline);
    if (ms == 0) return NoAnswer(socket_, "no answer within 30 s");
    const int n = ::poll(&p, 1, ms);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return NoAnswer(socket_, "no answer within 30 s");
    const ssize_t r = ::recv(fd.get(), buf, sizeof buf, 0);
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return NoAnswer(socket_, std::string("recv: ") + std::strerror(errno));
    }
    if (r == 0) break;
    answer.append(buf, static_cast<std::size_t>(r));
    if (answer.size() > kMaxAnswer) return NoAnswer(socket_, "the answer is over 64 KiB");
  }
  nlohmann::json j = nlohmann::json::parse(answer, nullptr, false);
  if (!j.is_object() || !j.contains("ok") || !j["ok"].is_boolean())
    return NoAnswer(socket_, answer.empty() ? "it closed without an answer" : "its answer is not understood");
  if (j["ok"].get<bool>()) return OkStatus();
  // Read by type: a value of another type must not throw in the agent.
  auto text = [&j](const char* key, const char* fallback) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string(fallback);
  };
  std::string reason = text("reason", "lease_server_failed");
  std::string message = text("message", "the lease server failed");
  if (reason.empty() || reason.size() > 64 ||
      reason.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos)
    reason = "lease_server_failed";
  Code code = Code::kFailedPrecondition;
  if (reason == "unknown_lease") code = Code::kNotFound;
  if (reason == "ttl_too_long" || reason == "bad_request") code = Code::kInvalidArgument;
  if (reason == "target_unavailable" || reason == "target_timeout") code = Code::kUnavailable;
  return Status(code, reason, message.substr(0, 2048));
}

Result<LeaseBroker::Granted> LeaseBroker::Create(const std::string& name, std::chrono::seconds ttl,
                                                 const secrets::Actor& actor) {
  if (socket_.empty()) {
    return Status(Code::kFailedPrecondition, "leases_disabled",
                  "leases are off on this agent ([leases] socket = \"\" in its config)");
  }
  SK_RETURN_IF_ERROR(secrets::ValidatePath(name));
  if (ttl.count() < 1 || ttl > kMaxLeaseTtl)
    return InvalidArgument("a lease's ttl is 1 s to 365 d", "bad_ttl");
  auto svc = agent_.service();
  if (!svc) return agent_.sealed_status();
  SK_ASSIGN_OR_RETURN(Bytes raw, RandomBytes(8));
  LeaseRecord r;
  r.id = HexEncode(raw);
  r.name = name;
  r.role = secrets::LeaseRole(r.id);
  r.created_ms = NowMs();
  r.expires_ms = r.created_ms + static_cast<std::uint64_t>(ttl.count()) * 1000;
  r.state = LeaseState::kCreating;
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_.insert(r.id);
  }
  struct Done {
    LeaseBroker* self;
    std::string id;
    ~Done() {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->in_flight_.erase(id);
    }
  } done{this, r.id};
  SK_RETURN_IF_ERROR(svc->RecordLease(r, actor).status());
  secrets::GeneratorSpec spec;
  spec.length = 32;
  spec.symbol = false;  // a login that survives every client's quoting
  SK_ASSIGN_OR_RETURN(SecretBytes password, secrets::Generate(spec));
  nlohmann::json header = {
      {"op", "create"}, {"name", r.name}, {"role", r.role}, {"valid_until", (r.expires_ms + 999) / 1000}};
  Status made = Call(header.dump(), &password);
  if (!made.ok()) {
    // Refused before the database was touched: nothing to drop, the lease ends here.
    // Anything else may have made the role: `failed`, which the sweep drops.
    const std::string_view why = made.reason();
    const bool untouched = why == "unknown_lease" || why == "ttl_too_long" || why == "bad_request" ||
                           why == "forbidden" || why == "lease_server_unavailable";
    LeaseRecord failed = r;
    failed.state = untouched ? LeaseState::kRevoked : LeaseState::kFailed;
    failed.reason = std::string(why);
    (void)svc->RecordLease(failed, actor);
    return made;
  }
  r.state = LeaseState::kActive;
  auto written = svc->RecordLease(r, actor);
  if (!written.ok()) {
    // Revoked while it was being made (lease_state), or the journal failed: the role exists
    // and nobody gets its login, so it goes now (or, failing that, with the sweep).
    {
      std::lock_guard<std::mutex> lock(mu_);
      in_flight_.erase(r.id);
    }
    r.state = LeaseState::kCreating;
    (void)Drop(r, written.status().reason() == "lease_state" ? "revoked" : "not_recorded");
    return written.status();
  }
  r.seq = written->seq;
  r.actor = actor.text;
  r.updated_ms = NowMs();
  return Granted{std::move(r), std::move(password)};
}

void LeaseBroker::NoteFailure(const LeaseRecord& r, const Status& st) {
  bool raise = false;
  std::uint32_t attempts = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Failure& f = failures_[r.id];
    ++f.attempts;
    attempts = f.attempts;
    f.last_error = st.ToString();
    raise = !f.alerted;
    f.alerted = true;
  }
  if (!raise) return;
  alerts::Alert a;
  a.kind = alerts::AlertKind::kLeaseRevokeFailed;
  a.message = "lease " + r.id + " (role " + r.role + ", " + r.name + ") could not be revoked after " +
              std::to_string(attempts) + " attempt(s), retried every sweep: " + st.ToString();
  a.path = r.name;
  a.reason = std::string(st.reason());
  agent_.alerts().Raise(std::move(a));
}

Status LeaseBroker::Drop(const LeaseRecord& snapshot, const std::string& reason) {
  std::lock_guard<std::mutex> serial(drop_mu_);
  auto svc = agent_.service();
  if (!svc) return agent_.sealed_status();
  // The state now, not the caller's copy: a revoke and the sweep may both have come here.
  std::optional<LeaseRecord> now;
  for (LeaseRecord& l : svc->Leases()) {
    if (l.id == snapshot.id) now = std::move(l);
  }
  if (!now) return Status(Code::kNotFound, "no_such_lease", "no lease " + snapshot.id);
  if (now->state == LeaseState::kRevoked) {
    std::lock_guard<std::mutex> lock(mu_);
    failures_.erase(now->id);
    return OkStatus();
  }
  {
    // A create still under way: the role may not exist yet, so a drop now could come
    // before it. Journal the intent only; the create drops what it made when it sees it.
    std::lock_guard<std::mutex> lock(mu_);
    if (in_flight_.count(now->id) != 0) {
      if (now->state != LeaseState::kRevoking) {
        LeaseRecord revoking = *now;
        revoking.state = LeaseState::kRevoking;
        revoking.reason = reason;
        secrets::Actor a;
        a.text = "sealkeepd lease sweep";
        (void)svc->RecordLease(revoking, a);
      }
      return Status(Code::kUnavailable, "lease_creating", "lease " + now->id + " is still being created");
    }
  }
  const LeaseRecord& r = *now;
  secrets::Actor actor;
  actor.text = "sealkeepd lease sweep";
  nlohmann::json header = {{"op", "drop"}, {"name", r.name}, {"role", r.role}};
  Status dropped = Call(header.dump(), nullptr);
  if (!dropped.ok()) {
    if (r.state != LeaseState::kRevoking) {
      LeaseRecord revoking = r;
      revoking.state = LeaseState::kRevoking;
      revoking.reason = reason.empty() ? std::string(dropped.reason()) : reason;
      (void)svc->RecordLease(revoking, actor);
    }
    NoteFailure(r, dropped);
    return dropped;
  }
  LeaseRecord revoked = r;
  revoked.state = LeaseState::kRevoked;
  revoked.reason = reason;
  Status recorded = svc->RecordLease(revoked, actor).status();
  if (recorded.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    failures_.erase(r.id);
  }
  return recorded;  // not journaled: the next sweep drops again (a gone role is dropped) and records it
}

Result<LeaseBroker::Listed> LeaseBroker::Revoke(const std::string& id, const secrets::Actor&) {
  auto svc = agent_.service();
  if (!svc) return agent_.sealed_status();
  std::optional<LeaseRecord> found;
  for (LeaseRecord& r : svc->Leases()) {
    if (r.id == id) found = std::move(r);
  }
  if (!found) return Status(Code::kNotFound, "no_such_lease", "no lease " + id);
  // Drop journals revoked when the role is gone, revoking (retried by the sweep) when not.
  if (found->state != LeaseState::kRevoked) (void)Drop(*found, "revoked");
  for (Listed& l : List()) {
    if (l.record.id == id) return l;
  }
  return Status(Code::kNotFound, "no_such_lease", "no lease " + id);
}

std::vector<LeaseBroker::Listed> LeaseBroker::List() {
  std::vector<Listed> out;
  auto svc = agent_.service();
  if (!svc) return out;
  std::lock_guard<std::mutex> lock(mu_);
  for (LeaseRecord& r : svc->Leases()) {
    Listed l;
    if (auto it = failures_.find(r.id); it != failures_.end()) {
      l.failed_attempts = it->second.attempts;
      l.last_error = it->second.last_error;
    }
    l.record = std::move(r);
    out.push_back(std::move(l));
  }
  return out;
}

void LeaseBroker::SweepOnce() {
  auto svc = agent_.service();
  if (!svc || socket_.empty()) return;
  // Now and then, the server's safety net: roles long past their end that no record names.
  if (sweeps_++ % kReapEvery == 0) (void)Call(nlohmann::json{{"op", "reap"}}.dump(), nullptr);
  const std::uint64_t now = NowMs();
  for (const LeaseRecord& r : svc->Leases()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (in_flight_.count(r.id) != 0) continue;  // its create decides (and drops if revoked)
    }
    bool drop = false;
    switch (r.state) {
      case LeaseState::kActive:
        drop = r.expires_ms <= now;
        break;
      case LeaseState::kRevoking:
      case LeaseState::kFailed:
        drop = true;
        break;
      case LeaseState::kCreating:
        drop = r.updated_ms + static_cast<std::uint64_t>(kCreatingGrace.count()) * 1000 <= now;
        break;
      case LeaseState::kRevoked:
        break;
    }
    if (!drop) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    (void)Drop(r, r.state == LeaseState::kActive ? "expired" : "");
  }
}

}  // namespace sk::daemon
