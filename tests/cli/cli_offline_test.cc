// `sealkeep verify --config` and `sealkeep recover --accept-rollback [--config]`: the
// admin commands that open the store themselves while the agent is stopped, and the
// recovery of an agent that refuses a replayed (older) copy of its store.
#include <filesystem>

#include <nlohmann/json.hpp>

#include "tests/cli/cli_test_util.h"

namespace sk::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class CliOffline : public CliTest {
 protected:
  std::string Config() const { return Quote(agent_->config_path()); }

  // store.db and its -wal/-shm files (not the lock file).
  std::vector<fs::path> StoreFiles(const fs::path& dir) const {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir)) {
      std::string name = e.path().filename().string();
      if (name.rfind("store.db", 0) == 0 && name != "store.db.lock") out.push_back(e.path());
    }
    return out;
  }

  void SaveStore(const std::string& aside) {
    fs::create_directories(aside);
    for (const auto& f : StoreFiles(agent_->state_dir())) fs::copy_file(f, fs::path(aside) / f.filename());
  }

  void RestoreStore(const std::string& aside) {
    for (const auto& f : StoreFiles(agent_->state_dir())) fs::remove(f);
    for (const auto& f : StoreFiles(aside)) fs::copy_file(f, fs::path(agent_->state_dir()) / f.filename());
  }

  // Leaves the agent running on an older copy of its store, sealed with replay_detected:
  // "r/x" was v1 in the copy; v2 and a rollback came after it.
  void ReplayAnOlderStore() {
    Put("r/x", "v1");
    StopAgent();
    SaveStore(dir_.Join("aside"));
    StartAgent();
    ASSERT_FALSE(HasFatalFailure());
    Put("r/x", "v2");
    ASSERT_EQ(Run("rollback r/x --to 1").status, 0);
    StopAgent();
    RestoreStore(dir_.Join("aside"));
    StartAgent();
    ASSERT_FALSE(HasFatalFailure());
    HttpResponse health = agent_->Call("GET", "/v1/health");
    ASSERT_EQ(health.status, 503) << health.body;
    ASSERT_EQ(health.Json()["reason"], "replay_detected") << health.body;
  }
};

TEST_F(CliOffline, VerifyWithConfigChecksAStoppedAgentsStore) {
  Put("o/a", "1");
  Put("o/a", "2");
  CliRun running = Run("verify --config " + Config());
  EXPECT_EQ(running.status, 6) << running.out << running.err;
  EXPECT_NE(running.err.find("the agent is running: use `sealkeep verify` without --config"),
            std::string::npos)
      << running.err;

  StopAgent();
  CliRun v = Run("verify --config " + Config());
  ASSERT_EQ(v.status, 0) << v.out << v.err;
  EXPECT_NE(v.out.find("journal:  verifies (offline"), std::string::npos) << v.out;
  CliRun by_state = Run("verify --state " + Quote(agent_->state_dir()));
  EXPECT_EQ(by_state.status, 0) << by_state.out << by_state.err;
  EXPECT_EQ(Run("verify --state " + Quote(agent_->state_dir()) + " --config " + Config()).status, 2);
  json j = json::parse(Run("--json verify --config " + Config()).out);
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["anchor_state"].get<std::string>().empty(), false);

  StartAgent();  // the offline run left the store as it was
  EXPECT_EQ(Get("o/a"), "2");
  EXPECT_EQ(Run("verify --config " + Quote(dir_.Join("missing.toml"))).status, 3);
}

TEST_F(CliOffline, RecoverWithConfigAcceptsAReplayedStore) {
  ReplayAnOlderStore();
  ASSERT_FALSE(HasFatalFailure());
  CliRun sealed = Run("get r/x");
  EXPECT_EQ(sealed.status, 6);
  EXPECT_NE(sealed.err.find("replay_detected"), std::string::npos) << sealed.err;
  CliRun running = Run("recover --accept-rollback --config " + Config());
  EXPECT_EQ(running.status, 6) << running.err;
  EXPECT_NE(running.err.find("the agent is running"), std::string::npos) << running.err;

  StopAgent();
  CliRun verify = Run("verify --config " + Config());
  EXPECT_EQ(verify.status, 7) << verify.out << verify.err;
  EXPECT_NE(verify.out.find("replay_detected"), std::string::npos) << verify.out;
  EXPECT_EQ(Run("recover --config " + Config()).status, 2);  // --accept-rollback is required

  CliRun recover = Run("recover --accept-rollback --config " + Config());
  ASSERT_EQ(recover.status, 0) << recover.out << recover.err;
  EXPECT_NE(recover.out.find("accepted: "), std::string::npos) << recover.out;
  EXPECT_EQ(Run("verify --config " + Config()).status, 0);
  CliRun again = Run("recover --accept-rollback --config " + Config());
  EXPECT_EQ(again.status, 4) << again.err;  // nothing_to_recover

  StartAgent();
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(agent_->Call("GET", "/v1/health").status, 200);
  EXPECT_EQ(Get("r/x"), "v1");
  EXPECT_EQ(Run("verify").status, 0);
}

TEST_F(CliOffline, RecoverOnlineUnsealsAnAgentThatRefusedAReplayedStore) {
  EXPECT_EQ(Run("recover --accept-rollback").status, 4);  // unsealed: nothing to recover
  ReplayAnOlderStore();
  ASSERT_FALSE(HasFatalFailure());
  CliRun status = Run("status");
  EXPECT_EQ(status.status, 6);
  EXPECT_NE(status.out.find("replay_detected"), std::string::npos) << status.out;
  CliRun recover = Run("recover --accept-rollback");
  ASSERT_EQ(recover.status, 0) << recover.out << recover.err;
  EXPECT_NE(recover.out.find("accepted: "), std::string::npos) << recover.out;
  EXPECT_EQ(agent_->Call("GET", "/v1/health").status, 200);
  EXPECT_EQ(Get("r/x"), "v1");
  CliRun verify = Run("verify");
  EXPECT_EQ(verify.status, 0) << verify.out;
}

}  // namespace
}  // namespace sk::testing
