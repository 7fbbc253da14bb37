// Offline work on a stopped agent's state: what `sealkeep verify --config`, `sealkeep
// recover --accept-rollback --config` and `sealkeep audit verify --config` share.
//
// OpenOffline() loads the agent's config file and opens the backend it names (PKCS#11
// token or TPM) in this process. It refuses, through Fail() (exit 6, store_locked), when
// an agent answers on the config's socket (a sealed agent does not hold the store open,
// but it still answers) or another process holds the store's lock, and points at the
// online form of the command instead. Under socket activation that check itself starts
// the agent: stop sealkeepd.socket too before working offline.
#pragma once

#include <memory>
#include <string>

#include "agent/config/config.h"
#include "hsm/key_backend.h"

namespace sk::cli {

// Run as root, an offline command creates files in the agent's state folder (a store's
// -wal, a restored store, SoftHSM2 object files when an anchor moves). The agent's user
// could not read root's 0600 files, and would stay sealed: when the last copy of this goes
// (also when the command fails), every file and folder under `dir` owned by root is given
// to the owner of `dir`, as `sealkeep setup` made it.
struct StateOwnerGuard {
  explicit StateOwnerGuard(std::string d) : dir(std::move(d)) {}
  ~StateOwnerGuard();
  StateOwnerGuard(const StateOwnerGuard&) = delete;
  StateOwnerGuard& operator=(const StateOwnerGuard&) = delete;
  std::string dir;
};

struct Offline {
  std::shared_ptr<StateOwnerGuard> owner;  // first: destroyed last, after the backend
  config::AgentConfig config;
  std::shared_ptr<hsm::KeyBackend> backend;
};

// `online_form` is the command to suggest when the agent runs ("sealkeep verify").
Offline OpenOffline(const std::string& config_path, const std::string& online_form);

// Ends the program: the agent runs, use `online_form` without --config (exit 6).
[[noreturn]] void AgentRunning(const std::string& online_form);

}  // namespace sk::cli
