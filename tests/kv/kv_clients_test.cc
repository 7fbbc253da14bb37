// Real Vault clients, unchanged, against a real sealkeepd over its socket: hvac (Debian's
// python3-hvac) and node-vault (pinned in tests/kv/node, two releases: 0.12.0 over axios and
// 0.10.9 over postman-request). The scripts assert each call's result and print "ok <step>";
// these tests check every step ran, then look at what the agent kept through its native API
// and its audit log. A missing client fails the test with how to install it (never a skip).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/temp_dir.h"
#include "tests/fixtures/test_user.h"
#include "tests/kv/kv_test_util.h"

namespace sk::testing {
namespace {

using nlohmann::json;

// Every step the hvac script reports in mode "full": one per secrets.kv.v2 method.
const std::vector<std::string> kHvacSteps = {"create_or_update_secret",
                                             "create_or_update_secret_with_cas",
                                             "cas_conflict",
                                             "read_secret_version_latest",
                                             "read_secret_version_by_version",
                                             "list_secrets",
                                             "read_secret_metadata",
                                             "update_metadata",
                                             "delete_latest_version_of_secret",
                                             "undelete_secret_versions",
                                             "delete_secret_versions",
                                             "destroy_secret_versions",
                                             "delete_metadata_and_all_versions",
                                             "configuration_and_mounts"};
const std::vector<std::string> kNodeSteps = {"health", "write", "cas_conflict", "read", "list", "delete"};

void ExpectSteps(const ProgramRun& run, const std::vector<std::string>& steps) {
  EXPECT_EQ(run.status, 0) << run.output;
  for (const std::string& s : steps)
    EXPECT_TRUE(run.Printed("ok " + s)) << "step " << s << ":\n" << run.output;
}

class KvClientsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AgentProcess::Options o;
    o.policy = true;  // root (the test) is an admin; every request goes through the policy
    agent_ = std::make_unique<AgentProcess>(dir_.path(), o);
    WriteFile(agent_->state_dir() + "/policy.toml", kRootIsAdminPolicy, 0640);
  }
  std::vector<json> Records() const { return ReadAuditRecords(agent_->state_dir() + "/audit"); }

  TempDir dir_{"kvc"};
  std::unique_ptr<AgentProcess> agent_;
};

TEST_F(KvClientsTest, HvacKvV2MethodsWorkUnchangedAgainstTheAgent) {
  std::string why;
  const std::string python = HvacPython(&why);
  ASSERT_FALSE(python.empty()) << why;
  ASSERT_NO_FATAL_FAILURE(agent_->Start());
  ProgramRun run = RunProgram({python, "-B", KvTestDir() + "/hvac_kv2.py", agent_->socket(), "full", "hvac"});
  ExpectSteps(run, kHvacSteps);

  // What sealkeep kept: every version in its history (destroyed ones without their bytes),
  // the last write's object as compact JSON, labelled so `sealkeep get` users know.
  json versions = agent_->Call("GET", "/v1/secrets/hvac/app/db/versions").Json();
  ASSERT_EQ(versions["versions"].size(), 3u) << versions.dump();
  EXPECT_EQ(versions["versions"][0]["state"], "destroyed");
  EXPECT_EQ(versions["versions"][1]["state"], "destroyed");
  EXPECT_EQ(versions["versions"][2]["state"], "live");
  HttpResponse native = agent_->Call("GET", "/v1/secrets/hvac/app/db");
  ASSERT_EQ(native.status, 200) << native.body;
  EXPECT_EQ(native.Json()["value"], "{\"again\":\"yes\"}");
  EXPECT_EQ(native.Json()["labels"]["sealkeep.format"], "kv2-json");
  EXPECT_EQ(agent_->Call("GET", "/v1/sys/journal/verify").Json()["ok"], true);

  // Each change went through the audit log before it was made, saying whose identity
  // counted: the kernel's, with the token hvac sent ignored.
  bool write_noted = false, cas_refusal = false;
  for (const json& rec : Records()) {
    const std::string route = rec.value("route", "");
    if (route == "POST kv2.write (X-Vault-Token ignored)" && rec["path"] == "hvac/app/db" &&
        rec["outcome"] == "allowed" && rec["uid"] == 0)
      write_noted = true;
    if (route.rfind("POST kv2.write", 0) == 0 && rec["outcome"] == "failed" &&
        rec["reason"] == "cas_mismatch")
      cas_refusal = true;
  }
  EXPECT_TRUE(write_noted) << "a KV write's record names route, path, caller and the ignored token";
  EXPECT_TRUE(cas_refusal) << "the refused cas write is on record with its reason";
}

TEST_F(KvClientsTest, NodeVaultWriteReadListDeleteWorkOverBothOfItsTransports) {
  std::string why;
  const std::string node = NodeWithVault(&why);
  ASSERT_FALSE(node.empty()) << why;
  ASSERT_NO_FATAL_FAILURE(agent_->Start());
  for (const std::string client : {"axios", "postman"}) {
    SCOPED_TRACE("node-vault over " + client);
    ProgramRun run = RunProgram(
        {node, KvTestDir() + "/node_vault_kv2.js", agent_->socket(), client, "full", "node-" + client});
    ExpectSteps(run, kNodeSteps);
    // The secret it wrote last is there natively, as JSON, with its history.
    HttpResponse db = agent_->Call("GET", "/v1/secrets/node-" + client + "/db");
    ASSERT_EQ(db.status, 200) << db.body;
    EXPECT_EQ(json::parse(db.Json()["value"].get<std::string>())["password"].get<std::string>().size(), 16u);
    json session = agent_->Call("GET", "/v1/secrets/node-" + client + "/web/session/versions").Json();
    ASSERT_EQ(session["versions"].size(), 2u) << session.dump();
    EXPECT_EQ(session["versions"][1]["state"], "destroyed") << "DELETE metadata destroyed every version";
  }
}

// kRootIsAdminPolicy plus a role for the test user ("@USER@").
const std::string kTeamPolicy = std::string(kRootIsAdminPolicy) + R"(
[roles.team]
grants = [{ capabilities = ["read", "list", "write"], paths = ["team/**"] }]

[[bindings]]
name = "team"
roles = ["team"]
match = { user = "@USER@" }
)";

TEST_F(KvClientsTest, ForbiddenPathsAnswerVaultsShapedDenialToARealUser) {
  ASSERT_EQ(::geteuid(), 0u) << "makes a user and runs the clients as that user: run as root";
  std::string why;
  const std::string python = HvacPython(&why);
  ASSERT_FALSE(python.empty()) << why;
  const std::string node = NodeWithVault(&why);
  ASSERT_FALSE(node.empty()) << why;
  TestUser user;
  ASSERT_TRUE(user.ok()) << user.error();
  std::string policy = kTeamPolicy;
  policy.replace(policy.find("@USER@"), 6, user.name());
  WriteFile(agent_->state_dir() + "/policy.toml", policy, 0640);
  agent_->LetUserConnect(user.name(), dir_.path());
  ASSERT_NO_FATAL_FAILURE(agent_->Start());
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/private/db", R"({"value":"root-only"})").status, 200);

  auto as_user = [&user] { return user.Become(); };
  ProgramRun hvac =
      RunProgram({python, "-B", KvTestDir() + "/hvac_kv2.py", agent_->socket(), "forbidden", "-"}, as_user);
  ExpectSteps(hvac,
              {"allowed_path", "forbidden_read", "forbidden_write", "listing_shows_only_what_may_be_listed"});
  ProgramRun nv = RunProgram(
      {node, KvTestDir() + "/node_vault_kv2.js", agent_->socket(), "axios", "forbidden", "-"}, as_user);
  ExpectSteps(nv, {"allowed_path", "forbidden_path"});

  // Nothing of private/ changed, and the refusals are on record under the user's uid.
  json versions = agent_->Call("GET", "/v1/secrets/private/db/versions").Json();
  ASSERT_EQ(versions["versions"].size(), 1u) << versions.dump();
  EXPECT_EQ(versions["versions"][0]["state"], "live");
  int denied_writes = 0;
  for (const json& rec : Records()) {
    if (rec["uid"] == user.uid() && rec["outcome"] == "denied" && rec["path"] == "private/db" &&
        rec.value("route", "").rfind("POST kv2.write", 0) == 0)
      ++denied_writes;
  }
  EXPECT_EQ(denied_writes, 2) << "hvac's and node-vault's refused writes";
}

// docs/vault-compat.md's migration recipe, as written: tools/kv2_copy.py export | import, from
// a KV v2 server (here another sealkeepd: it speaks the same API as Vault) into sealkeep.
TEST_F(KvClientsTest, TheMigrationRecipeCopiesEverySecretWithItsHistory) {
  std::string why;
  const std::string python = HvacPython(&why);
  ASSERT_FALSE(python.empty()) << why;
  ASSERT_NO_FATAL_FAILURE(agent_->Start());
  auto write = [&](const std::string& path, const json& data) {
    HttpResponse r = agent_->Call("POST", "/v1/secret/data/" + path, json{{"data", data}}.dump());
    ASSERT_EQ(r.status, 200) << r.body;
  };
  write("app/db", {{"password", "one"}});
  write("app/db", {{"password", "two"}});
  write("app/db", {{"password", "three"}, {"port", 5432}});
  ASSERT_EQ(agent_->Call("POST", "/v1/secret/delete/app/db", R"({"versions":[2]})").status, 204);
  write("app/api/key", {{"k", "old"}});
  write("app/api/key", {{"k", "new"}});
  ASSERT_EQ(agent_->Call("POST", "/v1/secret/destroy/app/api/key", R"({"versions":[1]})").status, 204);
  write("top", {{"t", true}});
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/plain", R"({"value":"native"})").status, 200);

  TempDir target_dir("kvt");
  AgentProcess::Options o;
  o.policy = true;
  AgentProcess target(target_dir.path(), o);
  WriteFile(target.state_dir() + "/policy.toml", kRootIsAdminPolicy, 0640);
  ASSERT_NO_FATAL_FAILURE(target.Start());

  const std::string copy = std::string(SK_SOURCE_DIR) + "/tools/kv2_copy.py";
  ProgramRun run = RunProgram({"/bin/sh", "-c",
                               python + " " + copy + " export --addr unix:" + agent_->socket() + " | " +
                                   python + " " + copy + " import --socket " + target.socket()});
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_TRUE(run.Printed("copied app/db: 3 versions (1 deleted, 0 destroyed)")) << run.output;
  EXPECT_TRUE(run.Printed("copied app/api/key: 2 versions (0 deleted, 1 destroyed)")) << run.output;
  EXPECT_EQ(run.output.find("three"), std::string::npos) << "no secret is printed";

  // Every path, every version's state, every readable version's data, as in the source.
  for (const std::string path : {"app/db", "app/api/key", "top", "plain"}) {
    SCOPED_TRACE(path);
    json from = agent_->Call("GET", "/v1/secret/metadata/" + path).Json()["data"];
    json to = target.Call("GET", "/v1/secret/metadata/" + path).Json()["data"];
    ASSERT_EQ(to["current_version"], from["current_version"]) << to.dump();
    for (const auto& [number, v] : from["versions"].items()) {
      EXPECT_EQ(to["versions"][number]["destroyed"], v["destroyed"]) << number;
      EXPECT_EQ(to["versions"][number]["deletion_time"] == "", v["deletion_time"] == "") << number;
      HttpResponse a = agent_->Call("GET", "/v1/secret/data/" + path + "?version=" + number);
      HttpResponse b = target.Call("GET", "/v1/secret/data/" + path + "?version=" + number);
      EXPECT_EQ(b.status, a.status) << number;
      if (a.status == 200) {
        EXPECT_EQ(b.Json()["data"]["data"], a.Json()["data"]["data"]) << number;
      }
    }
  }
  // Copying again changes nothing and says why.
  ProgramRun again = RunProgram({"/bin/sh", "-c",
                                 python + " " + copy + " export --addr unix:" + agent_->socket() + " | " +
                                     python + " " + copy + " import --socket " + target.socket()});
  EXPECT_EQ(again.status, 1) << again.output;
  EXPECT_TRUE(again.Printed("skipped app/db: it exists in sealkeep already")) << again.output;
}

TEST(KvClientScripts, AMissingClientFailsTheRunAndSaysHowToInstallIt) {
  // Python without its site packages cannot import hvac: the script stops with exit 3.
  ProgramRun hvac =
      RunProgram({"/usr/bin/python3", "-S", "-B", KvTestDir() + "/hvac_kv2.py", "/nonexistent", "full", "x"});
  EXPECT_EQ(hvac.status, 3) << hvac.output;
  EXPECT_NE(hvac.output.find("apt-get install python3-hvac python3-requests-unixsocket"), std::string::npos)
      << hvac.output;

  // The node script away from its node_modules: the same.
  std::string why;
  const std::string node = NodeWithVault(&why);
  ASSERT_FALSE(node.empty()) << why;
  TempDir elsewhere("kvn");
  const std::string copy = elsewhere.Join("node_vault_kv2.js");
  std::filesystem::copy_file(KvTestDir() + "/node_vault_kv2.js", copy);
  ProgramRun nv = RunProgram({node, copy, "/nonexistent", "axios", "full", "x"});
  EXPECT_EQ(nv.status, 3) << nv.output;
  EXPECT_NE(nv.output.find("npm ci in tests/kv/node"), std::string::npos) << nv.output;
}

}  // namespace
}  // namespace sk::testing
