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

struct Offline {
  config::AgentConfig config;
  std::shared_ptr<hsm::KeyBackend> backend;
};

// `online_form` is the command to suggest when the agent runs ("sealkeep verify").
Offline OpenOffline(const std::string& config_path, const std::string& online_form);

// Ends the program: the agent runs, use `online_form` without --config (exit 6).
[[noreturn]] void AgentRunning(const std::string& online_form);

}  // namespace sk::cli
