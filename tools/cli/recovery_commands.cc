// `sealkeep recovery init|rotate|status` and `sealkeep backup create|verify|restore`
// (docs/recovery.md): a way back when the hardware dies.
//
//   recovery init/rotate  through the running agent (POST /v1/sys/recovery, admin): the
//                         shares are printed once, here, and kept nowhere.
//   recovery status       GET /v1/sys/recovery.
//   backup create FILE    through the running agent (GET /v1/sys/backup): FILE is written
//                         whole or not at all (temp file, fsync, rename).
//   backup verify FILE    offline: any M shares (a TTY prompt, or --shares-file) rebuild
//                         the recovery key, no hardware needed; or --config: the hardware
//                         that made FILE opens its keys. Everything is verified against
//                         the backup's sealed manifest.
//   backup restore FILE   offline, --config naming the agent's config (the agent stopped):
//                         onto new hardware (its TPM or token freshly set up) with the
//                         shares; or on the hardware that made FILE, where the changes
//                         anchored after it are shown and lost only with --accept-loss.
// Shares are read one per line; blank lines and lines starting with '#' are skipped.
#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "agent/secrets/backup_manifest.h"
#include "agent/secrets/recovery_backend.h"
#include "crypto/recovery_share.h"
#include "tools/cli/agent_client.h"
#include "tools/cli/command.h"
#include "tools/cli/offline.h"
#include "tools/cli/share_file.h"

namespace sk::cli {
namespace {

constexpr std::chrono::milliseconds kBackupTimeout{1'800'000};

struct Flags {
  int shares = 5;
  int threshold = 3;
  std::string file;
  std::string shares_file;
  std::string config;
  bool accept_loss = false;
  bool new_recovery_key = false;
};

Flags& F() {
  static Flags f;
  return f;
}

Status IoError(const std::string& what, const std::string& path) {
  return Status(Code::kUnavailable, "io_error", what + " " + path + ": " + std::strerror(errno));
}

// --- recovery ---

void PrintRecovery(const Json& j) {
  if (!j.value("configured", false)) {
    std::printf("recovery key: none (`sealkeep recovery init --shares 5 --threshold 3` makes one)\n");
    return;
  }
  const std::uint64_t versions = U64(j, "versions"), wrapped = U64(j, "wrapped");
  std::printf("recovery key: %s, %d of %d shares rebuild it (journal seq %llu)\n", Str(j, "key_id").c_str(),
              j.value("threshold", 0), j.value("shares", 0), static_cast<unsigned long long>(U64(j, "seq")));
  std::printf("wrapped:      %llu of %llu live versions%s\n", static_cast<unsigned long long>(wrapped),
              static_cast<unsigned long long>(versions),
              wrapped < versions ? " (the agent wraps the rest in batches; run status again)" : "");
}

void RunInit(bool replace) {
  Json body = {{"threshold", F().threshold}, {"shares", F().shares}, {"replace", replace}};
  const std::string text = body.dump();
  HttpResponse r = CallOrFail({"POST", "/v1/sys/recovery", text, std::chrono::milliseconds(120'000)});
  WipeOnExit wipe(r.body);
  if (Globals().json) return PrintBody(r);
  Json j = ParseBody(r);
  const Json lines = j.value("share_lines", Json::array());
  std::printf(
      "Recovery key %s: any %d of these %d shares rebuild it. They are shown once and kept nowhere:\n"
      "give each to a different person, on paper or in a password manager, never together.\n\n",
      Str(j, "key_id").c_str(), j.value("threshold", 0), static_cast<int>(lines.size()));
  int i = 0;
  for (const Json& line : lines) std::printf("  share %d: %s\n", ++i, line.get<std::string>().c_str());
  std::printf("\n");
  PrintRecovery(j);
  std::fflush(stdout);
}

void RunStatus() {
  HttpResponse r = CallOrFail({"GET", "/v1/sys/recovery"});
  if (Globals().json) return PrintBody(r);
  PrintRecovery(ParseBody(r));
}

// --- shares ---

std::string ReadHiddenLine(const std::string& prompt) {
  std::fprintf(stderr, "%s", prompt.c_str());
  std::fflush(stderr);
  termios old{};
  const bool tty = ::tcgetattr(STDIN_FILENO, &old) == 0;
  if (tty) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  std::string line;
  char c;
  while (::read(STDIN_FILENO, &c, 1) == 1 && c != '\n') line += c;
  if (tty) {
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    std::fprintf(stderr, "\n");
  }
  return line;
}

// The recovery key from shares: --shares-file, else typed at the terminal one at a time
// (each checked as it is typed: a typo is caught before the next is asked for).
std::shared_ptr<RecoveryOpener> ReadShares() {
  std::vector<RecoveryShare> shares;
  if (!F().shares_file.empty()) {
    shares = ReadSharesFile(F().shares_file);
  } else {
    if (!::isatty(STDIN_FILENO)) {
      Fail(InvalidArgument("no --shares-file and no terminal to type shares at", "too_few_shares"));
    }
    int needed = 0;
    for (int i = 1; needed == 0 || static_cast<int>(shares.size()) < needed; ++i) {
      std::string line = ReadHiddenLine("recovery share " + std::to_string(i) +
                                        (needed ? " of " + std::to_string(needed) : "") + ": ");
      if (line.find_first_not_of(" \t\r") == std::string::npos) {
        Fail(InvalidArgument("no share typed", "too_few_shares"));
      }
      auto s = ParseRecoveryShare(line);
      WipeString(line);
      if (!s.ok()) {
        std::fprintf(stderr, "  %s; type it again\n", std::string(s.status().message()).c_str());
        --i;
        continue;
      }
      needed = s->threshold;
      shares.push_back(std::move(s).value());
    }
  }
  auto key = CombineRecoveryShares(shares);
  if (!key.ok()) Fail(key.status());
  auto opener = RecoveryOpener::Create(std::move(key).value());
  if (!opener.ok()) Fail(opener.status());
  return std::shared_ptr<RecoveryOpener>(std::move(opener).value());
}

// --- backup ---

void PrintManifest(const secrets::BackupManifest& m) {
  std::printf("store:    %s\n", m.store_id.c_str());
  std::printf("head:     seq %llu (%s)\n", static_cast<unsigned long long>(m.head_seq),
              HexEncode(m.head_hash).substr(0, 16).c_str());
  std::printf("versions: %llu live, %llu wrapped to recovery key %s\n",
              static_cast<unsigned long long>(m.versions),
              static_cast<unsigned long long>(m.recovery_wrapped),
              m.recovery_key_id.empty() ? "(none)" : m.recovery_key_id.c_str());
}

void RunCreate() {
  const std::string& file = F().file;
  struct stat st {};
  if (::lstat(file.c_str(), &st) == 0) {
    Fail(FailedPrecondition(file + " exists; a backup is written to a new file", "backup_exists"));
  }
  HttpRequest req("GET", "/v1/sys/backup", {}, kBackupTimeout);
  ResponseLimits limits;
  limits.max_body_bytes = std::size_t{16} << 30;
  auto r = HttpCall(Globals().socket, req, limits);
  if (!r.ok()) Fail(r.status());
  if (Status s = StatusFromResponse(*r); !s.ok()) Fail(s);
  const std::string tmp = file + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) Fail(IoError("cannot create", tmp));
  std::string_view out = r->body;
  while (!out.empty()) {
    ssize_t n = ::write(fd, out.data(), out.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      ::unlink(tmp.c_str());
      Fail(IoError("cannot write", tmp));
    }
    out.remove_prefix(static_cast<std::size_t>(n));
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0 || ::rename(tmp.c_str(), file.c_str()) != 0) {
    ::unlink(tmp.c_str());
    Fail(IoError("cannot finish", file));
  }
  const std::string dir = std::filesystem::absolute(file).parent_path().string();
  if (int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
    (void)::fsync(d);
    ::close(d);
  }
  auto m = secrets::ReadBackupManifest(file);
  if (!m.ok()) Fail(m.status());
  if (Globals().json) {
    std::printf("%s\n", Json({{"file", file},
                              {"store_id", m->store_id},
                              {"head_seq", m->head_seq},
                              {"versions", m->versions},
                              {"recovery_key_id", m->recovery_key_id},
                              {"recovery_wrapped", m->recovery_wrapped},
                              {"bytes", r->body.size()}})
                            .dump()
                            .c_str());
    return;
  }
  std::printf("backup:   %s (%zu bytes)\n", file.c_str(), r->body.size());
  PrintManifest(*m);
  if (m->recovery_key_id.empty()) {
    std::printf(
        "warning:  this store has no recovery key: the backup restores only where its master key lives\n");
  } else if (m->recovery_wrapped < m->versions) {
    std::printf(
        "warning:  %llu versions are not yet wrapped to the recovery key: without this host's hardware they "
        "cannot be restored from this backup\n",
        static_cast<unsigned long long>(m->versions - m->recovery_wrapped));
  }
}

std::string WorkDir() {
  const char* t = std::getenv("TMPDIR");
  return t != nullptr && *t != '\0' ? t : "/tmp";
}

void PrintReport(const secrets::VerifyReport& r) {
  std::printf("verified: %s: %llu entries, %llu versions checked\n", r.ok ? "ok" : "DOES NOT VERIFY",
              static_cast<unsigned long long>(r.entries),
              static_cast<unsigned long long>(r.versions_checked));
  for (const auto& p : r.problems) {
    std::printf("  seq %llu %s v%llu: %s: %s\n", static_cast<unsigned long long>(p.seq), p.path.c_str(),
                static_cast<unsigned long long>(p.version), p.reason.c_str(), p.detail.c_str());
  }
}

void RunVerify() {
  auto unsealed = secrets::ReadBackupManifest(F().file);
  if (!unsealed.ok()) Fail(unsealed.status());
  Result<secrets::BackupCheck> check = Status(Code::kInternal, "internal", "not run");
  if (!F().config.empty()) {
    // On the hardware that made the backup: its master key opens the keys, no shares.
    Offline off = OpenOffline(F().config, "sealkeep backup verify FILE --shares-file F");
    check = secrets::VerifyBackupOnHardware(F().file, off.backend, WorkDir());
  } else {
    check = secrets::VerifyBackupWithShares(F().file, ReadShares(), WorkDir());
  }
  if (!check.ok()) Fail(check.status());
  if (Globals().json) {
    std::printf("%s\n", Json({{"ok", check->report.ok},
                              {"head_seq", check->manifest.head_seq},
                              {"versions_checked", check->report.versions_checked},
                              {"problems", check->report.problems.size()}})
                            .dump()
                            .c_str());
  } else {
    std::printf("backup:   %s\n", F().file.c_str());
    PrintManifest(check->manifest);
    PrintReport(check->report);
  }
  if (!check->report.ok) throw ExitRequest{kExitCorruption};
}

void RunRestoreSameHardware(const Offline& off) {
  secrets::Actor actor("uid=" + std::to_string(::getuid()) + " sealkeep backup restore --accept-loss");
  auto r = secrets::RestoreOnSameHardware(F().file, off.backend, off.config.store, F().accept_loss, actor);
  if (!r.ok()) Fail(r.status());
  if (Globals().json) {
    std::printf("%s\n", Json({{"ok", r->report.ok},
                              {"lost", r->lost},
                              {"kept_aside", r->kept_aside},
                              {"restored_seq", r->restored_seq},
                              {"versions_checked", r->report.versions_checked}})
                            .dump()
                            .c_str());
  } else {
    std::printf("restored: %s onto %s (same hardware)\n", F().file.c_str(),
                off.config.store.store_path.c_str());
    PrintManifest(r->manifest);
    std::printf("lost:     %llu anchored changes after the backup's head (the anchor was at seq %llu)\n",
                static_cast<unsigned long long>(r->lost), static_cast<unsigned long long>(r->anchor.seq));
    if (!r->kept_aside.empty()) std::printf("kept:     the replaced store is at %s\n", r->kept_aside.c_str());
    PrintReport(r->report);
  }
  if (!r->report.ok) throw ExitRequest{kExitCorruption};
}

void RunRestore() {
  auto unsealed = secrets::ReadBackupManifest(F().file);
  if (!unsealed.ok()) Fail(unsealed.status());
  Offline off = OpenOffline(F().config, "sealkeep backup restore");
  // Hardware that anchors something made (or took over) a store: a restore there is a
  // restore on the same hardware. Fresh hardware: onto new hardware, with the shares.
  auto anchor = off.backend->ReadAnchor();
  if (!anchor.ok()) Fail(anchor.status());
  // (A restore onto new hardware cut short has anchored its `restored` entry already.)
  const bool fresh = anchor->seq == 0 || std::filesystem::exists(off.config.store.store_path + ".restoring");
  if (!fresh) return RunRestoreSameHardware(off);
  auto opener = ReadShares();
  secrets::Actor actor("uid=" + std::to_string(::getuid()) + " sealkeep backup restore");
  auto r = secrets::RestoreOntoNewHardware(F().file, opener, off.backend, off.config.store, actor);
  if (!r.ok()) Fail(r.status());
  if (Globals().json) {
    std::printf("%s\n", Json({{"ok", r->report.ok},
                              {"resumed", r->resumed},
                              {"restored_seq", r->restored_seq},
                              {"rewrapped_seq", r->rewrapped_seq},
                              {"versions_checked", r->report.versions_checked}})
                            .dump()
                            .c_str());
  } else {
    std::printf("restored: %s onto %s%s\n", F().file.c_str(), off.config.store.store_path.c_str(),
                r->resumed ? " (finished a restore cut short)" : "");
    PrintManifest(r->manifest);
    std::printf(
        "journal:  `restored` at seq %llu, every key moved under this host's %s master key at seq %llu\n",
        static_cast<unsigned long long>(r->restored_seq), off.backend->Info().kind.c_str(),
        static_cast<unsigned long long>(r->rewrapped_seq));
    PrintReport(r->report);
  }
  if (!r->report.ok) throw ExitRequest{kExitCorruption};
  if (!F().new_recovery_key) {
    if (!Globals().json) {
      std::printf(
          "next:     start the agent; then `sealkeep recovery rotate` (the old shares have been used)\n");
    }
    return;
  }
  // A new recovery key at once, before the agent serves: the old shares have been typed here.
  auto svc = secrets::SecretService::Open(off.backend, off.config.store);
  if (!svc.ok()) Fail(svc.status().WithContext("reopening the restored store"));
  auto init = (*svc)->InitRecovery(F().threshold, F().shares, true, actor);
  if (!init.ok()) Fail(init.status().WithContext("making the new recovery key"));
  while (true) {
    auto n = (*svc)->RecoveryWrapBatch(2000);
    if (!n.ok()) Fail(n.status().WithContext("wrapping to the new recovery key"));
    if (*n == 0) break;
  }
  std::printf(
      "\nNew recovery key %s: any %d of these %d shares rebuild it; the old shares no longer open new "
      "backups. Shown once:\n\n",
      init->info.key_id.c_str(), F().threshold, F().shares);
  int i = 0;
  for (const SecretBytes& line : init->shares) {
    std::printf("  share %d: %.*s\n", ++i, static_cast<int>(line.size()),
                reinterpret_cast<const char*>(line.Expose().data()));
  }
  std::printf("\nnext:     start the agent\n");
  std::fflush(stdout);
}

void Add(CLI::App& app) {
  auto* rec = app.add_subcommand("recovery", "The recovery key: the way back when the TPM or token dies");
  rec->require_subcommand(1);
  auto params = [](CLI::App* c) {
    c->add_option("--shares", F().shares, "How many shares to print (2-16)")->default_val(5);
    c->add_option("--threshold", F().threshold, "How many shares rebuild the key (2-shares)")->default_val(3);
  };
  auto* init = rec->add_subcommand("init",
                                   "Through the running agent (admin): make a recovery key, print its "
                                   "private half once as --shares Shamir "
                                   "shares of which --threshold rebuild it, wrap every data key to its "
                                   "public half (POST /v1/sys/recovery)");
  params(init);
  init->callback([] { RunInit(false); });
  auto* rotate = rec->add_subcommand(
      "rotate", "Like init, replacing the current recovery key (after a restore, or when a share is lost)");
  params(rotate);
  rotate->callback([] { RunInit(true); });
  rec->add_subcommand("status",
                      "The recovery key and how many versions are wrapped to it (GET /v1/sys/recovery)")
      ->callback(RunStatus);

  auto* backup = app.add_subcommand("backup", "Verified backups, and restoring one onto new hardware");
  backup->require_subcommand(1);
  auto* create = backup->add_subcommand(
      "create",
      "Through the running agent (admin): write a consistent copy of the store with a manifest sealed by its "
      "journal key to a new FILE (GET /v1/sys/backup); writers go on meanwhile");
  create->add_option("FILE", F().file, "The backup file to write (must not exist)")->required();
  create->callback(RunCreate);
  auto* verify = backup->add_subcommand("verify",
                                        "Offline, without the hardware: rebuild the recovery key from shares "
                                        "and verify every entry and version of "
                                        "FILE against its sealed manifest; exits 7 when it does not verify");
  verify->add_option("FILE", F().file, "The backup file")->required();
  auto* shares_file =
      verify->add_option("--shares-file", F().shares_file,
                         "Read the shares from this file, one per line (default: type them at the terminal)");
  verify
      ->add_option(
          "--config", F().config,
          "Instead of shares: on the hardware that made FILE, with the agent stopped, its config (its "
          "TPM or token opens the keys)")
      ->excludes(shares_file);
  verify->callback(RunVerify);
  auto* restore =
      backup->add_subcommand("restore",
                             "Offline, with the agent stopped. Onto new hardware (its TPM or token freshly "
                             "set up, no store yet): rebuild "
                             "the recovery key from shares, restore FILE as the store of --config, move "
                             "every key under the new master "
                             "key and verify; run it again if it is cut short. On the hardware that made "
                             "FILE: show what the hardware "
                             "anchored after the backup (what would be lost) and change nothing unless "
                             "--accept-loss; then replace the "
                             "store (kept aside) and journal a `restored` entry naming both heads");
  restore->add_flag("--accept-loss", F().accept_loss,
                    "Same hardware: accept losing the changes anchored after the backup's head");
  restore->add_flag(
      "--new-recovery-key", F().new_recovery_key,
      "New hardware: replace the recovery key at once and print the new shares (--shares, --threshold)");
  params(restore);
  restore->add_option("FILE", F().file, "The backup file")->required();
  restore
      ->add_option("--config", F().config, "The new host's agent config (e.g. /etc/sealkeep/sealkeep.toml)")
      ->required();
  restore->add_option("--shares-file", F().shares_file,
                      "Read the shares from this file, one per line (default: type them at the terminal)");
  restore->callback(RunRestore);
}

const Registrar kRecovery(Add, 240);

}  // namespace
}  // namespace sk::cli
