// POST /v1/sys/reseal on a real agent in this process (daemon::Agent + api::Api over a real
// swtpm and a real SQLite store), with the store's fault seam (agent/store/fault_vfs.h)
// armed: a re-seal whose journal entry cannot be written must not take effect, so that no
// re-seal ever happens unrecorded.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "agent/api/api.h"
#include "agent/api/router.h"
#include "agent/config/config.h"
#include "agent/daemon/agent.h"
#include "agent/store/fault_vfs.h"
#include "hsm/tpm/sealed_file_format.h"
#include "tests/hsm/tpm/test_util.h"

namespace sk::hsm::tpm {
namespace {

using sk::testing::ReadFile;

class AgentResealTest : public TpmTest {
 protected:
  void SetUp() override {
    config_.pcrs = {7};
    Provision();
    std::string agent_dir = dir_.Join("agent");
    ASSERT_EQ(::mkdir(agent_dir.c_str(), 0700), 0);
    std::string toml = "[agent]\nstate_dir = \"" + agent_dir + "\"\nsocket = \"" + agent_dir +
                       "/api.sock\"\n\n[backend]\nkind = \"tpm\"\n\n[tpm]\ntcti = \"" + config_.tcti +
                       "\"\nstate_dir = \"" + config_.state_dir + "\"\npcrs = [7]\n" +
                       "\n[policy]\nfile = \"\"\n\n[audit]\ndir = \"\"\n";  // root's built-in rule, no log
    auto config = config::ParseConfig(toml, "agent_reseal_test");
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    config->store.vfs = store::kFaultVfsName;
    store::FaultVfs().Clear();
    agent_ = std::make_unique<daemon::Agent>(std::move(config).value());
    Status st = agent_->Unseal();
    ASSERT_TRUE(st.ok()) << st.ToString();
    api_ = std::make_unique<api::Api>(*agent_);
  }
  void TearDown() override {
    store::FaultVfs().Clear();
    api_.reset();
    agent_.reset();
  }

  api::ApiResponse Call(const std::string& method, const std::string& target, const std::string& body = "") {
    api::ApiRequest req;
    req.method = method;
    req.target = target;
    req.body.assign(body.data(), body.size());
    req.subject.uid = ::getuid();  // the agent's own user: allowed by the built-in rule
    req.subject.gid = ::getgid();
    req.subject.pid = ::getpid();
    req.request_id = "agent-reseal-test-" + std::to_string(++requests_);
    api::RouteResult route = api::MatchRoute(method, target);
    EXPECT_TRUE(route.match.has_value()) << target;
    return api_->Handle(req, *route.match);
  }

  std::string Live() const { return config_.state_dir + "/" + SealedFileName(1); }
  std::string Staged() const { return config_.state_dir + "/" + StagedSealedFileName(1); }

  std::unique_ptr<daemon::Agent> agent_;
  std::unique_ptr<api::Api> api_;
  int requests_ = 0;
};

TEST_F(AgentResealTest, AResealWhoseJournalEntryCannotBeWrittenDoesNotTakeEffect) {
  ASSERT_EQ(Call("PUT", "/v1/secrets/k", R"({"value":"v"})").status, 200u);
  const std::string before = ReadFile(Live());
  swtpm_.ExtendPcr(7);

  store::FaultVfs().fail_writes = 1'000'000;  // the store's disk is full
  api::ApiResponse r = Call("POST", "/v1/sys/reseal", R"({"pcrs":[7]})");
  const int fired = store::FaultVfs().fired;
  store::FaultVfs().Clear();
  EXPECT_EQ(r.status, 503u) << r.body;
  EXPECT_NE(r.body.find("\"store_io_error\""), std::string::npos) << r.body;
  EXPECT_GT(fired, 0) << "the journal write must have been attempted";

  EXPECT_TRUE(ReadFile(Live()) == before) << "not journaled, so the live seal must not change";
  EXPECT_FALSE(std::filesystem::exists(Staged())) << "the staged seal is dropped";
  api_.reset();
  agent_.reset();
  // Still sealed to the old PCR 7 only: the extended boot state does not unseal it.
  EXPECT_EQ(TpmBackend::Open(config_).status().reason(), "boot_state_changed");
  EXPECT_EQ(swtpm_.TransientHandles(), 0);
}

TEST_F(AgentResealTest, AJournaledResealTakesEffect) {
  swtpm_.ExtendPcr(7);
  api::ApiResponse r = Call("POST", "/v1/sys/reseal", R"({"pcrs":[7]})");
  ASSERT_EQ(r.status, 200u) << r.body;
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["pcrs"], nlohmann::json::array({7}));
  EXPECT_GT(j["seq"].get<std::uint64_t>(), 1u);
  EXPECT_FALSE(std::filesystem::exists(Staged()));
  api_.reset();
  agent_.reset();
  auto b = TpmBackend::Open(config_);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
}

}  // namespace
}  // namespace sk::hsm::tpm
