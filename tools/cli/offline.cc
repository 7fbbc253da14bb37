#include "tools/cli/offline.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "hsm/backend_config.h"
#include "tools/cli/agent_client.h"
#include "tools/cli/command.h"

namespace sk::cli {
namespace {

// True when an agent answers on the config's socket. A sealed agent does not hold the
// store open, so the store's lock alone cannot tell that it runs.
bool AgentAnswers(const std::string& socket) {
  auto r = HttpCall(socket, {"GET", "/v1/health", {}, std::chrono::milliseconds(5'000)});
  return r.ok();
}

// True when another process (the agent) holds the store's lock file (<store>.lock, see
// agent/store/store.h). Opening the store decides for real; this only gives a clear message.
bool StoreHeldByAgent(const std::string& store_path) {
  int fd = ::open((store_path + ".lock").c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // releases the lock if this probe took it
  return held;
}

}  // namespace

StateOwnerGuard::~StateOwnerGuard() {
  if (::geteuid() != 0 || dir.empty()) return;
  struct stat top {};
  if (::stat(dir.c_str(), &top) != 0 || top.st_uid == 0) return;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           dir, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0 && st.st_uid == 0 && !S_ISLNK(st.st_mode)) {
      (void)::lchown(it->path().c_str(), top.st_uid, top.st_gid);
    }
  }
}

void AgentRunning(const std::string& online_form) {
  Fail(Unavailable("the agent is running: use `" + online_form + "` without --config", "store_locked"));
}

Offline OpenOffline(const std::string& config_path, const std::string& online_form) {
  auto cfg = config::LoadConfig(config_path);
  if (!cfg.ok()) Fail(cfg.status());
  if (AgentAnswers(cfg->socket) || StoreHeldByAgent(cfg->store.store_path)) AgentRunning(online_form);
  auto owner = std::make_shared<StateOwnerGuard>(cfg->state_dir);
  auto backend = hsm::OpenBackend(cfg->backend);
  if (!backend.ok()) Fail(backend.status().WithContext("opening the " + cfg->backend.kind + " backend"));
  return {std::move(owner), std::move(cfg).value(),
          std::shared_ptr<hsm::KeyBackend>(std::move(backend).value())};
}

}  // namespace sk::cli
