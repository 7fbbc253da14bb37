// `sealkeep fleet ...` (docs/fleet.md): the fleet journal on PostgreSQL.
//
//   init     an admin: makes the fleet signing key (P-256) in a new --key-file (0600, the
//            private scalar in hex) or, with --shares N --threshold M, as N recovery-style
//            share lines (SKR1-...) of which any M rebuild it (crypto/shamir.h), printed once
//            and kept nowhere; creates the schema; prints the public half for every host's
//            [fleet] signer_key. Signing commands then take --key-file or --shares-file.
//   enroll   on a host whose agent runs with [fleet]: publishes its host key (made in its
//            TPM or token, read from GET /v1/sys/fleet) as a pending host with --groups.
//   approve  an admin: signs a pending host into the fleet (a host entry), then re-issues
//            what its groups may read, in entries of --batch paths, with progress.
//   regroup  an admin: changes an admitted host's groups, re-issuing what it may now read.
//   put      an admin: one path's new value (a file, or stdin) for the hosts of --groups.
//   txn      an admin: several puts and deletes as one entry, all or nothing on each host.
//   snapshot an admin: names the versions of the live paths under --prefix, signed.
//   restore  an admin: one entry that puts a snapshot's paths back as they were.
//   status   with --db: the fleet (head, hosts, groups, what each applied, refusals);
//            without: this host's agent (GET /v1/sys/fleet).
// The database URL never holds a password: --password-file, or libpq's own ~/.pgpass.
// Signing commands verify the whole chain under the key before they extend it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "agent/config/config.h"
#include "agent/fleet/fleet_db.h"
#include "agent/fleet/fleet_writer.h"
#include "crypto/recovery_share.h"
#include "hsm/credential.h"
#include "tools/cli/agent_client.h"
#include "tools/cli/command.h"
#include "tools/cli/share_file.h"

namespace sk::cli {
namespace {

struct Flags {
  std::string db;
  std::string password_file;
  std::string key_file;
  std::string signer;
  std::string host_id;
  std::string groups;
  std::string path;
  std::string file;
  std::vector<std::string> puts;     // PATH=FILE
  std::vector<std::string> deletes;  // PATH
  std::string shares_file;
  int shares = 0;
  int threshold = 0;
  std::string name;
  std::string prefix;
  std::size_t batch = 256;
};

Flags& F() {
  static Flags f;
  return f;
}

template <typename T>
T OrFail(Result<T> r) {
  if (!r.ok()) Fail(r.status());
  return std::move(r).value();
}

void OrFail(const Status& st) {
  if (!st.ok()) Fail(st);
}

std::vector<std::string> Groups(const std::string& csv, bool required) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= csv.size() && !csv.empty()) {
    std::size_t comma = csv.find(',', start);
    std::string g = csv.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    OrFail(fleet::ValidateName("group", g));
    out.push_back(g);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  if (required && out.empty())
    Fail(InvalidArgument("--groups names at least one group: web,db", "bad_request"));
  if (out.size() > fleet::kMaxGroups) Fail(InvalidArgument("at most 64 groups", "bad_request"));
  return out;
}

std::unique_ptr<fleet::FleetDb> Connect() {
  if (F().db.empty()) Fail(InvalidArgument("--db names the fleet database (a libpq URL)", "bad_request"));
  if (config::DbUrlHasPassword(F().db)) {
    Fail(InvalidArgument("--db must not hold a password (argv is visible to every user): use --password-file",
                         "bad_request"));
  }
  std::optional<SecretBytes> password;
  if (!F().password_file.empty()) password = OrFail(hsm::ReadCredentialFile(F().password_file));
  return OrFail(fleet::FleetDb::Connect(F().db, password ? &*password : nullptr));
}

int HexDigit(std::uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The signing key from --shares-file: any threshold of its share lines, checked against
// the key id the shares carry.
SecretBytes KeyFromShares() {
  const std::vector<RecoveryShare> shares = ReadSharesFile(F().shares_file);
  SecretBytes key = OrFail(CombineRecoveryShares(shares));
  const Bytes public_key = OrFail(RecoveryPublicKey(key));
  if (RecoveryKeyId(public_key) != shares.front().key_id) {
    Fail(Status(Code::kInvalidArgument, "shares_mismatch", "the shares do not rebuild the key they name"));
  }
  return key;
}

// The signing key from --key-file (64 hex digits, decoded in locked memory) or --shares-file.
SecretBytes SigningKey() {
  if (!F().shares_file.empty()) return KeyFromShares();
  if (F().key_file.empty())
    Fail(InvalidArgument(
        "--key-file or --shares-file names the fleet signing key (made by `sealkeep fleet init`)",
        "bad_request"));
  SecretBytes hex = OrFail(hsm::ReadCredentialFile(F().key_file));
  if (hex.size() != 64)
    Fail(InvalidArgument(F().key_file + " does not hold a fleet signing key", "bad_key_file"));
  SecretBytes key(32);
  for (std::size_t i = 0; i < 32; ++i) {
    const int hi = HexDigit(hex.Expose()[2 * i]), lo = HexDigit(hex.Expose()[2 * i + 1]);
    if (hi < 0 || lo < 0)
      Fail(InvalidArgument(F().key_file + " does not hold a fleet signing key", "bad_key_file"));
    key.Expose()[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  OrFail(RecoveryPublicKey(key).status());
  return key;
}

// Writes `hex` to a new file, 0600, synced; refuses to replace one.
void WriteNewKeyFile(const std::string& path, const SecretBytes& key) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    Fail(Status(errno == EEXIST ? Code::kAlreadyExists : Code::kUnavailable, "io_error",
                "cannot create " + path + ": " + std::strerror(errno) +
                    (errno == EEXIST ? " (a fleet has one signing key: keep the one you have)" : "")));
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  SecretBytes hex(65);
  for (std::size_t i = 0; i < key.size(); ++i) {
    hex.Expose()[2 * i] = static_cast<std::uint8_t>(kDigits[key.Expose()[i] >> 4]);
    hex.Expose()[2 * i + 1] = static_cast<std::uint8_t>(kDigits[key.Expose()[i] & 15]);
  }
  hex.Expose()[64] = '\n';
  const bool ok =
      ::write(fd, hex.Expose().data(), hex.size()) == static_cast<ssize_t>(hex.size()) && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    Fail(Status(Code::kUnavailable, "io_error", "cannot write " + path + ": " + std::strerror(err)));
  }
}

void RunInit() {
  const bool shares = F().shares > 0;
  if (F().key_file.empty() == !shares) {
    Fail(InvalidArgument("give --key-file FILE or --shares N --threshold M (where the signing key goes)",
                         "bad_request"));
  }
  if (shares && (F().threshold < 2 || F().threshold > F().shares || F().shares > 16)) {
    Fail(InvalidArgument("--threshold M of --shares N: 2 <= M <= N <= 16", "bad_request"));
  }
  std::unique_ptr<fleet::FleetDb> db = Connect();
  RecoveryKeyPair pair = OrFail(GenerateRecoveryKey());
  OrFail(db->Migrate());
  std::vector<std::string> lines;
  if (shares) {
    for (ShamirShare& sh : OrFail(ShamirSplit(pair.private_key, F().threshold, F().shares))) {
      lines.push_back(
          EncodeRecoveryShare(RecoveryShare{F().threshold, RecoveryKeyId(pair.public_key), std::move(sh)}));
    }
  } else {
    WriteNewKeyFile(F().key_file, pair.private_key);
  }
  const std::string pub = HexEncode(pair.public_key);
  if (Globals().json) {
    Json out = {{"signer_key", pub}};
    if (shares) {
      out["share_lines"] = lines;
    } else {
      out["key_file"] = F().key_file;
    }
    std::printf("%s\n", out.dump().c_str());
    for (std::string& l : lines) std::fill(l.begin(), l.end(), '\0');
    return;
  }
  if (shares) {
    std::printf("fleet signing key: %d shares, any %d rebuild it. They are printed here only, once:\n",
                F().shares, F().threshold);
    for (std::string& l : lines) {
      std::printf("  %s\n", l.c_str());
      std::fill(l.begin(), l.end(), '\0');
    }
    std::printf("give one to each keeper; signing commands read %d of them with --shares-file\n",
                F().threshold);
  } else {
    std::printf("fleet signing key: %s (keep it offline; whoever holds it writes to every host)\n",
                F().key_file.c_str());
  }
  std::printf("schema:            ready in the fleet database\n\n");
  std::printf(
      "each host's /etc/sealkeep/sealkeep.toml:\n  [fleet]\n  db = \"%s\"\n  host_id = \"<this host>\"\n"
      "  signer_key = \"%s\"\n",
      F().db.c_str(), pub.c_str());
  std::printf("\nthen on each host: sealkeep fleet enroll --db URL --groups GROUPS\n");
}

void RunEnroll() {
  HttpResponse r = CallOrFail({"GET", "/v1/sys/fleet"});
  Json j = ParseBody(r);
  const std::string host_id = Str(j, "host_id");
  if (!F().host_id.empty() && F().host_id != host_id) {
    Fail(Status(Code::kConflict, "host_id_mismatch",
                "--host-id " + F().host_id + " is not this agent's [fleet] host_id " + host_id));
  }
  std::optional<Bytes> public_key = HexDecode(Str(j, "public_key"));
  if (!public_key || public_key->size() != fleet::kPublicKeySize) {
    Fail(Status(Code::kUnavailable, "fleet_key_not_ready",
                "the agent has no fleet host key yet (" + Str(j, "error") + "); is it unsealed?"));
  }
  fleet::PendingHost p;
  p.host_id = host_id;
  const std::string kind = Str(j, "key_kind");
  p.key_kind = kind == "tpm"      ? fleet::KeyKind::kTpm
               : kind == "pkcs11" ? fleet::KeyKind::kPkcs11
                                  : fleet::KeyKind::kSoftware;
  p.public_key = std::move(*public_key);
  p.groups = Groups(F().groups, true);
  std::unique_ptr<fleet::FleetDb> db = Connect();
  OrFail(db->PublishPending(p));
  std::printf("host %s: pending, key in its %s, groups %s\n", host_id.c_str(), kind.c_str(),
              F().groups.c_str());
  std::printf("an admin admits it: sealkeep fleet approve %s --db URL --key-file KEY\n", host_id.c_str());
}

std::unique_ptr<fleet::FleetWriter> Writer(fleet::FleetDb* db) {
  return OrFail(fleet::FleetWriter::Create(db, SigningKey()));
}

// What `host_id` may read now and could not under `before`, re-issued with progress.
void Reissue(fleet::FleetWriter& w, const std::string& host_id, const std::vector<std::string>& before) {
  const std::size_t n = OrFail(w.Reissue(host_id, before, F().batch, [](std::size_t done, std::size_t total) {
    std::fprintf(stderr, "re-issued %zu of %zu paths\n", done, total);
  }));
  std::printf("%zu path%s re-issued to %s (what its groups may read, written before)\n", n, n == 1 ? "" : "s",
              host_id.c_str());
}

void RunApprove() {
  std::unique_ptr<fleet::FleetDb> db = Connect();
  std::vector<fleet::PendingHost> pending = OrFail(db->Pending());
  auto it = std::find_if(pending.begin(), pending.end(),
                         [](const fleet::PendingHost& p) { return p.host_id == F().host_id; });
  if (it == pending.end()) {
    Fail(
        NotFound("no pending host " + F().host_id + " (it runs `sealkeep fleet enroll` first)", "not_found"));
  }
  fleet::HostRecord h;
  h.host_id = it->host_id;
  h.key_kind = it->key_kind;
  h.public_key = it->public_key;
  h.groups = F().groups.empty() ? it->groups : Groups(F().groups, true);
  std::unique_ptr<fleet::FleetWriter> w = Writer(db.get());
  OrFail(w->Sync());
  if (w->chain().hosts().count(h.host_id) != 0) {
    Fail(Status(
        Code::kAlreadyExists, "host_exists",
        "host " + h.host_id + " is in the fleet already: `sealkeep fleet regroup` changes its groups"));
  }
  const std::uint64_t seq = OrFail(w->PutHost(h));
  std::string groups;
  for (const std::string& g : h.groups) groups += (groups.empty() ? "" : ",") + g;
  std::printf("host %s admitted (fleet entry %llu), groups %s, key in its %s\n", h.host_id.c_str(),
              static_cast<unsigned long long>(seq), groups.c_str(),
              std::string(fleet::KeyKindName(h.key_kind)).c_str());
  Reissue(*w, h.host_id, {});
}

void RunRegroup() {
  std::unique_ptr<fleet::FleetDb> db = Connect();
  std::unique_ptr<fleet::FleetWriter> w = Writer(db.get());
  OrFail(w->Sync());
  auto it = w->chain().hosts().find(F().host_id);
  if (it == w->chain().hosts().end() || it->second.state != fleet::HostState::kAdmitted)
    Fail(NotFound("host " + F().host_id + " is not admitted to the fleet", "not_found"));
  fleet::HostRecord h = it->second;
  const std::vector<std::string> before = h.groups;
  h.groups = Groups(F().groups, true);
  const std::uint64_t seq = OrFail(w->PutHost(h));
  std::printf("host %s: groups %s (fleet entry %llu)\n", h.host_id.c_str(), F().groups.c_str(),
              static_cast<unsigned long long>(seq));
  Reissue(*w, h.host_id, before);
}

void Commit(std::vector<fleet::PlainOp> ops) {
  std::unique_ptr<fleet::FleetDb> db = Connect();
  std::unique_ptr<fleet::FleetWriter> w = Writer(db.get());
  const std::size_t n = ops.size();
  const std::uint64_t seq = OrFail(w->Commit(std::move(ops)));
  if (Globals().json) {
    std::printf("%s\n", Json{{"seq", seq}, {"ops", n}}.dump().c_str());
    return;
  }
  std::printf("fleet entry %llu: %zu op%s, signed and committed; each entitled host applies it\n",
              static_cast<unsigned long long>(seq), n, n == 1 ? "" : "s");
}

fleet::PlainOp PutOp(const std::string& path, const std::string& file,
                     const std::vector<std::string>& groups) {
  fleet::PlainOp op;
  op.path = path;
  op.kind = fleet::OpKind::kPut;
  op.groups = groups;
  op.value = ReadSecretInput(file, fleet::kMaxValueBytes);
  return op;
}

void RunPut() {
  std::vector<fleet::PlainOp> ops;
  ops.push_back(PutOp(F().path, F().file, Groups(F().groups, true)));
  Commit(std::move(ops));
}

void RunTxn() {
  const std::vector<std::string> groups = Groups(F().groups, true);
  std::vector<fleet::PlainOp> ops;
  for (const std::string& p : F().puts) {
    const std::size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == p.size())
      Fail(InvalidArgument("--put takes PATH=FILE, not " + p, "bad_request"));
    if (p.substr(eq + 1) == "-")
      Fail(InvalidArgument("a txn reads each value from a file, not stdin", "bad_request"));
    ops.push_back(PutOp(p.substr(0, eq), p.substr(eq + 1), groups));
  }
  for (const std::string& path : F().deletes) {
    fleet::PlainOp op;
    op.path = path;
    op.kind = fleet::OpKind::kDelete;
    op.groups = groups;
    ops.push_back(std::move(op));
  }
  if (ops.empty()) Fail(InvalidArgument("a txn needs at least one --put or --delete", "bad_request"));
  Commit(std::move(ops));
}

void RunSnapshot() {
  std::unique_ptr<fleet::FleetDb> db = Connect();
  std::unique_ptr<fleet::FleetWriter> w = Writer(db.get());
  fleet::FleetSnapshot snap = OrFail(w->Snapshot(F().name, F().prefix));
  if (Globals().json) {
    Json paths = Json::object();
    for (const fleet::SnapshotPath& p : snap.paths) paths[p.path] = p.version;
    std::printf("%s\n",
                Json{{"name", snap.name}, {"head_seq", snap.head_seq}, {"versions", paths}}.dump().c_str());
    return;
  }
  std::printf("fleet snapshot %s: %zu path%s at entry %llu\n", snap.name.c_str(), snap.paths.size(),
              snap.paths.size() == 1 ? "" : "s", static_cast<unsigned long long>(snap.head_seq));
}

void RunRestore() {
  std::unique_ptr<fleet::FleetDb> db = Connect();
  std::unique_ptr<fleet::FleetWriter> w = Writer(db.get());
  fleet::FleetWriter::Restored r = OrFail(w->Restore(F().name));
  if (Globals().json) {
    std::printf("%s\n",
                Json{{"seq", r.seq}, {"put", r.put}, {"deleted", r.deleted}, {"unchanged", r.unchanged}}
                    .dump()
                    .c_str());
    return;
  }
  if (r.seq == 0) {
    std::printf("fleet snapshot %s: nothing differs (%zu paths as they were)\n", F().name.c_str(),
                r.unchanged);
    return;
  }
  std::printf(
      "fleet entry %llu restores %s: %zu put back, %zu deleted, %zu unchanged; each host applies it "
      "all or nothing\n",
      static_cast<unsigned long long>(r.seq), F().name.c_str(), r.put, r.deleted, r.unchanged);
}

// The fleet as the database holds it, verified under the signer key.
void RunFleetStatus() {
  Bytes signer;
  if (!F().signer.empty()) {
    std::optional<Bytes> s = HexDecode(F().signer);
    if (!s || s->size() != fleet::kPublicKeySize)
      Fail(InvalidArgument("--signer is the fleet key's public half, 130 hex digits", "bad_request"));
    signer = std::move(*s);
  } else if (!F().key_file.empty()) {
    signer = OrFail(RecoveryPublicKey(SigningKey()));
  } else {
    Fail(InvalidArgument("fleet status --db verifies the journal: give --signer HEX or --key-file",
                         "bad_request"));
  }
  std::unique_ptr<fleet::FleetDb> db = Connect();
  fleet::FleetChain chain(signer);
  Status broken;
  while (broken.ok()) {
    Result<std::vector<Bytes>> entries = db->EntriesAfter(chain.head().seq, 256);
    if (!entries.ok()) Fail(entries.status());
    if (entries->empty()) break;
    for (const Bytes& e : *entries) {
      if (Status st = chain.Accept(e).status(); !st.ok()) {
        broken = st;
        break;
      }
    }
  }
  const std::vector<fleet::AppliedReport> applied = OrFail(db->Applied());
  const std::vector<fleet::PendingHost> pending = OrFail(db->Pending());
  std::map<std::string, fleet::AppliedReport> by_host;
  for (const fleet::AppliedReport& a : applied) by_host[a.host_id] = a;
  const std::uint64_t head = chain.head().seq;
  if (Globals().json) {
    Json hosts = Json::array();
    for (const auto& [id, h] : chain.hosts()) {
      auto a = by_host.find(id);
      const std::uint64_t seq = a == by_host.end() ? 0 : a->second.seq;
      hosts.push_back({{"host_id", id},
                       {"state", h.state == fleet::HostState::kAdmitted ? "admitted" : "removed"},
                       {"key_kind", fleet::KeyKindName(h.key_kind)},
                       {"groups", h.groups},
                       {"applied_seq", seq},
                       {"lag", head > seq ? head - seq : 0},
                       {"refusal", a == by_host.end() ? "" : a->second.refusal}});
    }
    Json p = Json::array();
    for (const fleet::PendingHost& h : pending) p.push_back({{"host_id", h.host_id}, {"groups", h.groups}});
    std::printf("%s\n", Json{{"head_seq", head},
                             {"verified", broken.ok()},
                             {"problem", broken.ok() ? "" : broken.ToString()},
                             {"hosts", hosts},
                             {"pending", p}}
                            .dump()
                            .c_str());
  } else {
    std::printf("fleet journal: head entry %llu, %s\n", static_cast<unsigned long long>(head),
                broken.ok() ? "every entry verifies" : ("STOPS VERIFYING: " + broken.ToString()).c_str());
    std::vector<std::vector<std::string>> rows = {
        {"HOST", "STATE", "KEY", "GROUPS", "APPLIED", "LAG", "REFUSAL"}};
    for (const auto& [id, h] : chain.hosts()) {
      auto a = by_host.find(id);
      const std::uint64_t seq = a == by_host.end() ? 0 : a->second.seq;
      std::string groups;
      for (const std::string& g : h.groups) groups += (groups.empty() ? "" : ",") + g;
      rows.push_back({id, h.state == fleet::HostState::kAdmitted ? "admitted" : "removed",
                      std::string(fleet::KeyKindName(h.key_kind)), groups,
                      a == by_host.end() ? "-" : std::to_string(seq),
                      std::to_string(head > seq ? head - seq : 0),
                      a == by_host.end() || a->second.refusal.empty() ? "-" : a->second.refusal});
    }
    PrintTable(rows);
    for (const fleet::PendingHost& h : pending) {
      if (chain.hosts().count(h.host_id) == 0)
        std::printf("pending: %s (sealkeep fleet approve %s)\n", h.host_id.c_str(), h.host_id.c_str());
    }
  }
  if (!broken.ok()) throw ExitRequest{kExitCorruption};
}

// This host, as its agent sees it.
void RunHostStatus() {
  HttpResponse r = CallOrFail({"GET", "/v1/sys/fleet"});
  if (Globals().json) return PrintBody(r);
  Json j = ParseBody(r);
  std::printf("host:       %s (key in its %s)\n", Str(j, "host_id").c_str(),
              Str(j, "key_kind").empty() ? "hardware, not opened yet" : Str(j, "key_kind").c_str());
  std::printf("applied:    entry %llu of %llu (lag %llu)\n",
              static_cast<unsigned long long>(U64(j, "applied_seq")),
              static_cast<unsigned long long>(U64(j, "db_head_seq")),
              static_cast<unsigned long long>(U64(j, "lag_entries")));
  std::printf("database:   %s, last pull %s\n", j.value("db_reachable", false) ? "reachable" : "UNREACHABLE",
              FormatTimeMs(U64(j, "last_success_ms")).c_str());
  const Json refusal = j.value("refusal", Json());
  if (refusal.is_object()) {
    std::printf("REFUSING:   %s: %s (serving the last good state)\n", Str(refusal, "reason").c_str(),
                Str(refusal, "message").c_str());
  }
  if (!Str(j, "error").empty()) std::printf("error:      %s\n", Str(j, "error").c_str());
}

void Add(CLI::App& app) {
  auto* fleet =
      app.add_subcommand("fleet", "The fleet: secrets for many hosts through PostgreSQL (docs/fleet.md)");
  fleet->require_subcommand(1);
  auto db = [](CLI::App* c, bool required) {
    auto* o = c->add_option("--db", F().db, "The fleet database: a libpq URL without a password");
    if (required) o->required();
    c->add_option("--password-file", F().password_file,
                  "The database password, in a file only you can read (default: libpq's ~/.pgpass)");
  };
  auto key = [](CLI::App* c) {
    auto* file =
        c->add_option("--key-file", F().key_file, "The fleet signing key (from `sealkeep fleet init`)");
    c->add_option("--shares-file", F().shares_file,
                  "Or: at least the threshold of the signing key's share lines, one per line")
        ->excludes(file);
  };
  auto* init =
      fleet->add_subcommand("init",
                            "Make the fleet signing key (in a new --key-file, or as --shares) and the "
                            "schema in the database; prints the public half for the hosts' [fleet] "
                            "signer_key");
  db(init, true);
  init->add_option("--key-file", F().key_file, "Where to write the new signing key (must not exist)");
  init->add_option("--shares", F().shares, "Instead: print the key as this many shares (2-16), kept nowhere");
  init->add_option("--threshold", F().threshold, "How many of the shares rebuild the key (2 to --shares)");
  init->callback(RunInit);

  auto* enroll = fleet->add_subcommand(
      "enroll", "On a host whose agent has [fleet]: publish its hardware host key as pending, with --groups");
  db(enroll, true);
  enroll->add_option("--host-id", F().host_id, "Checked against the agent's [fleet] host_id");
  enroll->add_option("--groups", F().groups, "The groups it asks to join: web,db")->required();
  enroll->callback(RunEnroll);

  auto* approve = fleet->add_subcommand(
      "approve", "Admit a pending host (a signed host entry), then re-issue what its groups may read");
  approve->add_option("HOST_ID", F().host_id, "The pending host")->required();
  db(approve, true);
  key(approve);
  approve->add_option("--groups", F().groups, "Its groups, if not the ones it asked for");
  approve->add_option("--batch", F().batch, "Paths per re-issuing entry (1-999)")->default_val(256);
  approve->callback(RunApprove);

  auto* regroup =
      fleet->add_subcommand("regroup", "Change an admitted host's groups; re-issue what it may now read");
  regroup->add_option("HOST_ID", F().host_id, "The host")->required();
  db(regroup, true);
  key(regroup);
  regroup->add_option("--groups", F().groups, "Its groups from now on: web,db")->required();
  regroup->add_option("--batch", F().batch, "Paths per re-issuing entry (1-999)")->default_val(256);
  regroup->callback(RunRegroup);

  auto* put = fleet->add_subcommand("put", "Write PATH for every host of --groups (one signed entry)");
  put->add_option("PATH", F().path, "A sealkeep path; hosts keep it under their [fleet] prefix")->required();
  db(put, true);
  key(put);
  put->add_option("--groups", F().groups, "Who may read it: web,db")->required();
  put->add_option("--file", F().file, "Read the value from this file (default: stdin)");
  put->callback(RunPut);

  auto* txn =
      fleet->add_subcommand("txn", "Several puts and deletes as one entry: every host applies all or none");
  db(txn, true);
  key(txn);
  txn->add_option("--groups", F().groups, "Who may read the paths written: web,db")->required();
  txn->add_option("--put", F().puts, "PATH=FILE: write PATH with FILE's bytes (repeatable)");
  txn->add_option("--delete", F().deletes, "PATH: delete it (repeatable)");
  txn->callback(RunTxn);

  auto* snapshot =
      fleet->add_subcommand("snapshot", "Name the versions of the live paths under --prefix (signed)");
  snapshot->add_option("NAME", F().name, "The snapshot's name ([A-Za-z0-9._-], never replaced)")->required();
  db(snapshot, true);
  key(snapshot);
  snapshot->add_option("--prefix", F().prefix, "Only the paths under this prefix (default: all)");
  snapshot->callback(RunSnapshot);

  auto* restore = fleet->add_subcommand(
      "restore", "One entry that puts a snapshot's paths back as they were and deletes the ones it lacks");
  restore->add_option("NAME", F().name, "The snapshot")->required();
  db(restore, true);
  key(restore);
  restore->callback(RunRestore);

  auto* status = fleet->add_subcommand(
      "status",
      "With --db: every host, its groups, what it applied, its refusals; without: this host's agent");
  db(status, false);
  status->add_option("--signer", F().signer, "The fleet key's public half, to verify the journal");
  status->add_option("--key-file", F().key_file, "Or the signing key itself");
  status->callback([] { F().db.empty() ? RunHostStatus() : RunFleetStatus(); });
}

const Registrar kRegistrar(Add, 95);

}  // namespace
}  // namespace sk::cli
