// The host-side steps of `sealkeep setup` (setup_commands.cc): files that are written only
// when absent or already identical, ownership, systemd-creds and systemctl. Each step
// reports what it did, so a second run can say that nothing changed.
//
// Nothing here puts a secret on argv, in the environment or in a file: the PIN goes to
// systemd-creds on its standard input, and only the encrypted credential is written.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk::cli::setup {

// What a step did, for the summary ("created /etc/sealkeep/sealkeep.toml").
struct Step {
  std::string what;   // "config", "policy", "unit drop-in", "token", "PIN credential"...
  std::string path;   // the file or object it concerns
  std::string state;  // "created", "unchanged", "kept" (exists, left as the admin has it)
};

struct Account {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;
};
// The agent's system user (made by the package's sysusers.d file).
Result<Account> LookUpAccount(const std::string& user);

// Writes `content` to `path` (temp file, fsync, rename, fsync of the folder) with `mode`
// and owner uid:gid, unless it exists: identical content gives "unchanged"; different
// content is refused (reason setup_conflict, exit 4) unless `keep_existing`, which gives
// "kept". Parent folders must exist.
Result<Step> WriteOnce(const std::string& what, const std::string& path, const std::string& content,
                       mode_t mode, uid_t uid, gid_t gid, bool keep_existing = false);

// mkdir -p with `mode` for every folder it creates, each owned by uid:gid.
Status MakeDirs(const std::string& path, mode_t mode, uid_t uid, gid_t gid);
// chown -R uid:gid of `path` and everything below it (never following links).
Status ChownTree(const std::string& path, uid_t uid, gid_t gid);

// Runs argv[0] (a full path) with `input` on its standard input and nothing secret on its
// command line; its output goes to our stderr. Fails with the program's exit status.
Status Run(const std::vector<std::string>& argv, const SecretBytes* input = nullptr);

// `systemd-creds encrypt --name=NAME - PATH`: the credential from `value`, root 0600.
Status EncryptCredential(const std::string& name, const SecretBytes& value, const std::string& path);

// Whether systemd runs as PID 1 here (/run/systemd/system exists).
bool SystemdRunning();

bool Exists(const std::string& path);

}  // namespace sk::cli::setup
