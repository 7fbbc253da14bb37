// `sealkeep lease create|revoke|list` (a leased database user: the agent's /v1/leases) and
// `sealkeep rotator --serve-leases`, the lease server the agent asks to make and drop the
// roles (docs/rotation.md "Leases"; the agent's half: agent/daemon/lease_broker.h).
//
// The lease server answers only the agent: a peer whose uid is not the owner of the agent's
// API socket is refused before it is read. It keeps no state (the agent's journal does) and
// handles one request at a time; the admin login it uses is a sealkeep secret it reads
// from the agent for each request (the [[lease]] table's database.admin_secret).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "agent/secrets/lease_record.h"
#include "crypto/unique_fd.h"
#include "tools/cli/agent_client.h"
#include "tools/cli/command.h"
#include "tools/cli/lease_database.h"
#include "tools/cli/rotation_config.h"

namespace sk::cli {
namespace {

constexpr const char* kLeaseSocket = "/run/sealkeep-leases/leases.sock";
constexpr std::size_t kMaxRequest = 64 * 1024;
constexpr int kReadTimeoutMs = 10'000;
// The agent asks for VALID UNTIL = now + ttl, rounded up; a little clock slack on top.
constexpr std::int64_t kTtlSlackS = 5;

struct LeaseFlags {
  std::string name;
  std::string ttl = "1h";
  std::string id;
  bool all = false;
  std::string config;  // the lease server's
  std::string listen;
};

LeaseFlags& Flags() {
  static LeaseFlags f;
  return f;
}

void RunCreate() {
  auto& f = Flags();
  Json req = {{"name", f.name}, {"ttl", f.ttl}};
  const std::string body = req.dump();
  HttpResponse r = CallOrFail({"POST", "/v1/leases", body, std::chrono::milliseconds(60'000)});
  WipeOnExit wipe(r.body);
  if (Globals().json) {
    PrintBody(r);
    return;
  }
  Json j = ParseBody(r);
  std::string password = Str(j, "password");
  WipeOnExit wipe_pw(password);
  std::printf("lease     %s\nusername  %s\npassword  %s\nexpires   %s\n", Str(j, "id").c_str(),
              Str(j, "username").c_str(), password.c_str(), FormatTimeMs(U64(j, "expires_ms")).c_str());
  if (j.contains("password")) {
    std::string& p = j["password"].get_ref<std::string&>();
    WipeString(p);
  }
}

void PrintLeaseLine(const Json& l) {
  std::string state = Str(l, "state");
  if (U64(l, "failed_attempts") > 0)
    state +=
        " (" + std::to_string(U64(l, "failed_attempts")) + " failed drop(s): " + Str(l, "last_error") + ")";
  std::printf("%s %s: %s\n", Str(l, "id").c_str(), Str(l, "role").c_str(), state.c_str());
}

void RunRevoke() {
  auto& f = Flags();
  if (!secrets::ValidLeaseId(f.id))
    Fail(InvalidArgument("a lease id is 16 lower-case hex digits", "bad_request"));
  HttpResponse r =
      CallOrFail({"POST", "/v1/leases/" + f.id + "/revoke", "", std::chrono::milliseconds(60'000)});
  if (Globals().json) {
    PrintBody(r);
  } else {
    PrintLeaseLine(ParseBody(r));
  }
  // 202: journaled as revoking, the drop failed; the agent retries it every sweep.
  if (r.status == 202) {
    if (!Globals().json)
      std::fprintf(stderr, "sealkeep: the role is not dropped yet; the agent retries it until it is\n");
    throw ExitRequest{kExitSealed};
  }
}

void RunList() {
  HttpResponse r = CallOrFail({"GET", std::string("/v1/leases") + (Flags().all ? "?all=1" : "")});
  if (Globals().json) {
    PrintBody(r);
    return;
  }
  Json j = ParseBody(r);
  std::vector<std::vector<std::string>> rows = {{"ID", "NAME", "ROLE", "STATE", "EXPIRES", "NOTE"}};
  if (j.contains("leases") && j["leases"].is_array()) {
    for (const Json& l : j["leases"]) {
      std::string note = Str(l, "reason");
      if (U64(l, "failed_attempts") > 0) {
        note =
            std::to_string(U64(l, "failed_attempts")) + " failed drop(s), retrying: " + Str(l, "last_error");
      }
      rows.push_back({Str(l, "id"), Str(l, "name"), Str(l, "role"), Str(l, "state"),
                      FormatTimeMs(U64(l, "expires_ms")), note.empty() ? "-" : note});
    }
  }
  PrintTable(rows);
}

// ---- the lease server ----

std::string Answer(const Status& st) {
  if (st.ok()) return "{\"ok\":true}\n";
  return Json{{"ok", false}, {"reason", std::string(st.reason())}, {"message", std::string(st.message())}}
             .dump() +
         "\n";
}

// The request, all of it (the agent shuts its side after writing), into locked memory.
Result<SecretBytes> ReadRequest(int fd) {
  SecretBytes buf(kMaxRequest + 1);
  std::size_t used = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kReadTimeoutMs);
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now())
            .count();
    if (left <= 0) return InvalidArgument("the request did not arrive within 10 s", "bad_request");
    pollfd p{fd, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    const ssize_t r = ::recv(fd, buf.Expose().data() + used, buf.size() - used, 0);
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return InvalidArgument(std::string("recv: ") + std::strerror(errno), "bad_request");
    }
    if (r == 0) break;
    used += static_cast<std::size_t>(r);
    if (used > kMaxRequest) return InvalidArgument("the request is over 64 KiB", "bad_request");
  }
  SecretBytes out(used);
  std::copy_n(buf.Expose().begin(), used, out.Expose().begin());
  return out;
}

// How long past its VALID UNTIL a lease role may linger before the reap drops it without
// a record: well beyond the agent's own sweep, which drops it with one.
constexpr std::int64_t kReapGraceS = 3600;

// Every kind's database: drop lease roles long past their end (LeaseDatabase::Reap).
Status Reap(const std::vector<LeaseEntry>& leases, std::string* log) {
  int dropped = 0;
  Status first;
  for (const LeaseEntry& e : leases) {
    auto admin = FetchValue(e.admin_secret);
    if (!admin.ok()) {
      if (first.ok()) first = admin.status().WithContext("reading the admin password " + e.admin_secret);
      continue;
    }
    auto db = MakeLeaseDatabase({e.db, e.create, e.revoke}, std::move(admin).value());
    auto n = db.ok() ? (*db)->Reap(kReapGraceS) : Result<int>(db.status());
    if (!n.ok()) {
      if (first.ok()) first = n.status();
      continue;
    }
    dropped += *n;
  }
  *log = "reap: " + std::to_string(dropped) + " expired lease role(s) without a record dropped";
  return first;
}

Status Handle(const std::vector<LeaseEntry>& leases, const SecretBytes& request, std::string* log) {
  ByteView all = request.Expose();
  const auto nl = std::find(all.begin(), all.end(), std::uint8_t{'\n'});
  if (nl == all.end()) return InvalidArgument("the request has no header line", "bad_request");
  const std::string header(all.begin(), nl);
  Json h = Json::parse(header, nullptr, false);
  if (!h.is_object()) return InvalidArgument("the header is not a JSON object", "bad_request");
  auto text = [&h](const char* key) {
    auto it = h.find(key);
    return it != h.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const std::string op = text("op"), name = text("name"), role = text("role");
  *log = op + " " + name + " " + role;
  if (op == "reap") return Reap(leases, log);
  const std::string id = role.size() == 25 ? role.substr(9) : "";
  if (!secrets::ValidLeaseId(id) || role != secrets::LeaseRole(id))
    return InvalidArgument("the role is not a lease's (sk_lease_ and 16 hex digits)", "bad_request");
  const auto entry =
      std::find_if(leases.begin(), leases.end(), [&](const LeaseEntry& e) { return e.name == name; });
  if (entry == leases.end())
    return Status(Code::kNotFound, "unknown_lease",
                  "no [[lease]] named " + name.substr(0, 256) + " in " + Flags().config);
  auto admin = FetchValue(entry->admin_secret);
  if (!admin.ok()) return admin.status().WithContext("reading the admin password " + entry->admin_secret);
  LeaseDatabaseSpec spec{entry->db, entry->create, entry->revoke};
  SK_ASSIGN_OR_RETURN(std::unique_ptr<LeaseDatabase> db, MakeLeaseDatabase(spec, std::move(admin).value()));
  if (op == "drop") return db->Drop(role);
  if (op != "create") return InvalidArgument("op is create or drop", "bad_request");
  if (!h.contains("valid_until") || !h["valid_until"].is_number_integer())
    return InvalidArgument("create needs valid_until", "bad_request");
  const std::int64_t until = h["valid_until"].get<std::int64_t>();
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  if (until <= now) return InvalidArgument("valid_until is in the past", "bad_request");
  if (until - now > entry->max_ttl.count() + kTtlSlackS) {
    return InvalidArgument(
        "a lease of " + name + " lasts at most " + std::to_string(entry->max_ttl.count()) + " s (max_ttl)",
        "ttl_too_long");
  }
  // The whole line, ended by its newline: a request cut short must not make a role.
  ByteView password(nl + 1, all.end());
  if (password.size() < 2 || password.back() != '\n')
    return InvalidArgument("create needs the password line, whole", "bad_request");
  password = password.first(password.size() - 1);
  return db->Create(role, password, until);
}

// sd_notify("READY=1") when started by systemd (Type=notify): the socket is listening, so
// units ordered after this one (and `systemctl start`) find it there.
void NotifyReady() {
  const char* where = std::getenv("NOTIFY_SOCKET");
  if (where == nullptr || where[0] == '\0') return;
  std::string path = where;
  if (path.size() >= sizeof(sockaddr_un::sun_path) || (path[0] != '/' && path[0] != '@')) return;
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') addr.sun_path[0] = '\0';  // abstract
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  static constexpr char kReady[] = "READY=1";
  (void)::sendto(fd.get(), kReady, sizeof kReady - 1, MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr),
                 len);
}

// The agent's uid: the owner of its API socket (it made it).
Result<uid_t> AgentUid() {
  struct stat st {};
  if (::stat(Globals().socket.c_str(), &st) != 0) {
    return Status(Code::kUnavailable, "agent_unreachable",
                  "cannot stat the agent's socket " + Globals().socket + ": " + std::strerror(errno));
  }
  return st.st_uid;
}

}  // namespace

void ServeLeases(const std::string& config, const std::string& listen) {
  LeaseFlags& f = Flags();
  f.config = config;
  f.listen = listen.empty() ? std::string(kLeaseSocket) : listen;
  auto leases = LoadLeaseConfig(f.config);
  if (!leases.ok()) Fail(leases.status());
  if (leases->empty())
    Fail(InvalidArgument(f.config + " has no [[lease]] table: there is nothing to serve", "bad_config"));
  if (f.listen.empty() || f.listen.size() >= sizeof(sockaddr_un::sun_path))
    Fail(InvalidArgument("--listen is a socket path of at most 107 bytes", "bad_request"));
  ::signal(SIGPIPE, SIG_IGN);
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (listener.get() < 0) Fail(Status(Code::kInternal, "socket_failed", std::strerror(errno)));
  struct stat old {};
  if (::lstat(f.listen.c_str(), &old) == 0) {
    if (!S_ISSOCK(old.st_mode))
      Fail(Status(Code::kFailedPrecondition, "bad_listen", f.listen + " exists and is not a socket"));
    ::unlink(f.listen.c_str());  // a previous server's
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, f.listen.data(), f.listen.size());
  // Only the agent is answered (SO_PEERCRED below); the mode keeps everyone else from even
  // taking a place in the queue. The socket's group is this process's: the unit runs it
  // with Group=sealkeep, the agent's group.
  if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::chmod(f.listen.c_str(), 0660) != 0 || ::listen(listener.get(), 64) != 0) {
    Fail(Status(Code::kUnavailable, "listen_failed",
                "cannot listen on " + f.listen + ": " + std::strerror(errno)));
  }
  std::fprintf(stderr, "sealkeep lease server: %zu lease kind(s) from %s, listening on %s\n", leases->size(),
               f.config.c_str(), f.listen.c_str());
  NotifyReady();
  for (;;) {
    UniqueFd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (conn.get() < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      Fail(Status(Code::kUnavailable, "accept_failed", std::strerror(errno)));
    }
    ucred peer{};
    socklen_t len = sizeof peer;
    auto agent = AgentUid();
    std::string log = "?";
    Status st;
    if (::getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 || !agent.ok() ||
        peer.uid != *agent) {
      st = Status(Code::kForbidden, "forbidden", "only the agent may ask the lease server");
      log = "refused uid " + std::to_string(peer.uid);
    } else {
      auto request = ReadRequest(conn.get());
      try {
        st = request.ok() ? Handle(*leases, *request, &log) : request.status();
      } catch (const std::exception&) {
        st = InvalidArgument("the request is not understood", "bad_request");
      }
    }
    const std::string answer = Answer(st);
    (void)::send(conn.get(), answer.data(), answer.size(), MSG_NOSIGNAL);
    std::fprintf(stderr, "lease %s: %s\n", log.substr(0, 400).c_str(),
                 st.ok() ? "ok" : st.ToString().c_str());
    std::fflush(stderr);
  }
}

namespace {

void Add(CLI::App& app) {
  auto& f = Flags();
  auto* lease = app.add_subcommand(
      "lease",
      "Leased database users: a role made for you with an end time, dropped when it ends or is revoked "
      "(docs/rotation.md, Leases). Needs `lease` on the lease's name; the agent asks "
      "sealkeep-leases.service");
  lease->require_subcommand(1);

  auto* create = lease->add_subcommand(
      "create",
      "Make a database role of lease kind NAME ([[lease]] in rotation.toml) and print its login, once: it is "
      "stored nowhere. The role ends at the TTL (VALID UNTIL in the database, and dropped by the agent)");
  create->add_option("NAME", f.name, "The lease kind, e.g. pg/readonly")->required();
  create->add_option("--ttl", f.ttl, "How long it lasts: 90s, 15m, 1h, 7d (at most the kind's max_ttl)")
      ->capture_default_str();
  create->callback(RunCreate);

  auto* revoke = lease->add_subcommand(
      "revoke",
      "End lease ID now: its sessions are terminated and its role dropped. Exit 6 when the database could "
      "not "
      "be reached: the lease stays `revoking` and the agent retries until the role is gone");
  revoke->add_option("ID", f.id, "The lease id (16 hex digits)")->required();
  revoke->callback(RunRevoke);

  auto* list = lease->add_subcommand("list", "The leases you may see: id, kind, role, state, end, retries");
  list->add_flag("--all", f.all, "Include revoked leases");
  list->callback(RunList);
}

const Registrar kRegistrar(Add, 46);

}  // namespace
}  // namespace sk::cli
