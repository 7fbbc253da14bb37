// The KV v2 facade's HTTP answers through a real sealkeepd (agent/api/kv2.h): Vault's
// envelope and errors byte for byte where clients depend on them, how sealkeep values and KV
// objects map onto each other, bad input refused and nothing lost, the mount setting, the
// ignored X-Vault-Token, and what sealkeep is stricter about (versions that do not verify,
// an audit log that cannot be written, history that is never removed).
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "tests/fixtures/agent_process.h"
#include "tests/fixtures/temp_dir.h"
#include "tests/fixtures/test_user.h"

namespace sk::testing {
namespace {

using nlohmann::json;

class KvHttpTest : public ::testing::Test {
 protected:
  void SetUp() override { StartAgent(""); }
  void TearDown() override {
    if (!mounted_.empty()) {
      agent_->Stop();
      ::umount2(mounted_.c_str(), MNT_DETACH);
    }
  }
  // A fresh agent with `agent_keys` added to its [agent] table.
  void StartAgent(const std::string& agent_keys, const std::string& policy = kRootIsAdminPolicy) {
    if (agent_) agent_->Stop();
    agent_.reset();
    dir_ = std::make_unique<TempDir>("kvh");
    AgentProcess::Options o;
    o.policy = true;
    o.agent_config = agent_keys;
    agent_ = std::make_unique<AgentProcess>(dir_->path(), o);
    WriteFile(agent_->state_dir() + "/policy.toml", policy, 0640);
  }
  void Start() { agent_->Start(); }
  HttpResponse Call(const std::string& method, const std::string& target, const std::string& body = "",
                    const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    return Http(agent_->socket(), method, target, body, headers);
  }
  HttpResponse Write(const std::string& path, const json& data) {
    return Call("POST", "/v1/secret/data/" + path, json{{"data", data}}.dump());
  }
  std::vector<json> Records() const { return ReadAuditRecords(agent_->state_dir() + "/audit"); }
  // Everything the agent wrote: its log and every audit segment.
  std::string AllTheAgentWrote() const {
    std::string all = agent_->Log();
    for (const auto& e : std::filesystem::directory_iterator(agent_->state_dir() + "/audit")) {
      if (e.is_regular_file()) all += ReadFile(e.path().string());
    }
    return all;
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<AgentProcess> agent_;
  std::string mounted_;
};

// The fixture's agent, started.
class KvHttpStarted : public KvHttpTest {
 protected:
  void SetUp() override {
    KvHttpTest::SetUp();
    ASSERT_NO_FATAL_FAILURE(Start());
  }
};

TEST_F(KvHttpStarted, WritesAndReadsAnswerInVaultsEnvelope) {
  HttpResponse w = Write("app/cfg", {{"user", "u"}, {"pin", 1234}, {"on", true}});
  ASSERT_EQ(w.status, 200) << w.body;
  EXPECT_EQ(w.headers["content-type"], "application/json");
  json j = w.Json();
  EXPECT_EQ(j["request_id"], w.headers["x-request-id"]);
  EXPECT_EQ(j["lease_id"], "");
  EXPECT_EQ(j["renewable"], false);
  EXPECT_EQ(j["lease_duration"], 0);
  EXPECT_TRUE(j["wrap_info"].is_null());
  EXPECT_TRUE(j["warnings"].is_null());
  EXPECT_TRUE(j["auth"].is_null());
  EXPECT_EQ(j["data"]["version"], 1);
  EXPECT_EQ(j["data"]["destroyed"], false);
  EXPECT_EQ(j["data"]["deletion_time"], "");
  const std::string created = j["data"]["created_time"];
  ASSERT_EQ(created.size(), 24u) << created;  // 2024-05-01T12:00:00.123Z
  EXPECT_EQ(created[10], 'T');
  EXPECT_EQ(created.back(), 'Z');

  HttpResponse r = Call("GET", "/v1/secret/data/app/cfg");
  ASSERT_EQ(r.status, 200) << r.body;
  json d = r.Json()["data"];
  EXPECT_EQ(d["data"], json({{"user", "u"}, {"pin", 1234}, {"on", true}}));
  EXPECT_EQ(d["metadata"]["version"], 1);
  EXPECT_EQ(d["metadata"]["created_time"], created);
  EXPECT_EQ(d["metadata"]["deletion_time"], "");
  EXPECT_EQ(d["metadata"]["destroyed"], false);
  EXPECT_EQ(d["metadata"]["custom_metadata"], json({{"sealkeep.format", "kv2-json"}}));

  // PUT is a write too; ?version= reads an older one.
  ASSERT_EQ(Call("PUT", "/v1/secret/data/app/cfg", R"({"data":{"user":"v"}})").Json()["data"]["version"], 2);
  EXPECT_EQ(Call("GET", "/v1/secret/data/app/cfg?version=1").Json()["data"]["data"]["user"], "u");
  EXPECT_EQ(Call("GET", "/v1/secret/data/app/cfg?version=0").Json()["data"]["data"]["user"], "v");
}

TEST_F(KvHttpStarted, WhatIsMissingIs404WithEmptyErrors) {
  ASSERT_EQ(Write("there", {{"a", "b"}}).status, 200);
  for (const auto& [method, target] :
       std::vector<std::pair<std::string, std::string>>{{"GET", "/v1/secret/data/nothing"},
                                                        {"GET", "/v1/secret/data/there?version=5"},
                                                        {"GET", "/v1/secret/metadata/nothing"},
                                                        {"LIST", "/v1/secret/metadata/nothing"},
                                                        {"GET", "/v1/secret/metadata/there?list=true"}}) {
    HttpResponse r = Call(method, target);
    EXPECT_EQ(r.status, 404) << method << " " << target;
    EXPECT_EQ(r.body, R"({"errors":[]})") << method << " " << target;
  }
  // Changes of what is not there are done, as in Vault.
  EXPECT_EQ(Call("DELETE", "/v1/secret/data/nothing").status, 204);
  EXPECT_EQ(Call("POST", "/v1/secret/destroy/nothing", R"({"versions":[1]})").status, 204);
  EXPECT_EQ(Call("DELETE", "/v1/secret/metadata/nothing").status, 204);
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/nothing").status, 404) << "and nothing was made";
}

TEST_F(KvHttpStarted, ADeletedVersionAnswers404WithItsMetadata) {
  ASSERT_EQ(Write("gone", {{"a", "b"}}).status, 200);
  HttpResponse del = Call("DELETE", "/v1/secret/data/gone");
  EXPECT_EQ(del.status, 204);
  EXPECT_EQ(del.body, "");
  EXPECT_EQ(del.headers.count("content-length"), 0u) << "RFC 9110 8.6: no Content-Length in a 204";
  HttpResponse r = Call("GET", "/v1/secret/data/gone");
  ASSERT_EQ(r.status, 404) << r.body;
  json d = r.Json()["data"];
  EXPECT_TRUE(d["data"].is_null()) << r.body;
  EXPECT_EQ(d["metadata"]["version"], 1);
  EXPECT_EQ(d["metadata"]["destroyed"], false);
  EXPECT_NE(d["metadata"]["deletion_time"], "");
  EXPECT_EQ(r.Json()["request_id"], r.headers["x-request-id"]);
}

TEST_F(KvHttpStarted, SealkeepValuesReadAsValueObjects) {
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/plain/text", R"({"value":"hunter2"})").status, 200);
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/plain/bytes", R"({"value_b64":"//4A"})").status, 200);
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/plain/json", R"({"value":"{\"a\":1}"})").status, 200);
  EXPECT_EQ(Call("GET", "/v1/secret/data/plain/text").Json()["data"]["data"], json({{"value", "hunter2"}}));
  EXPECT_EQ(Call("GET", "/v1/secret/data/plain/bytes").Json()["data"]["data"], json({{"value_b64", "//4A"}}));
  EXPECT_EQ(Call("GET", "/v1/secret/data/plain/json").Json()["data"]["data"], json({{"value", "{\"a\":1}"}}))
      << "JSON text without the label stays a value";
  // A native put on a KV path keeps the path's labels; bytes that are no JSON object still
  // read as a value.
  ASSERT_EQ(Write("mixed", {{"a", "b"}}).status, 200);
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/mixed", R"({"value":"not json"})").status, 200);
  HttpResponse mixed = Call("GET", "/v1/secret/data/mixed");
  EXPECT_EQ(mixed.Json()["data"]["data"], json({{"value", "not json"}})) << mixed.body;
  EXPECT_EQ(mixed.Json()["data"]["metadata"]["custom_metadata"]["sealkeep.format"], "kv2-json");
}

TEST_F(KvHttpStarted, KvObjectsAreStoredAsCompactLabelledJson) {
  const std::string body =
      "{ \"options\" : { } ,\n \"data\" : { \"k\" : \"\\u0041\\/\\n\\u001f\\u00e9\" ,\t\"list\": [ 1 , 2.5e3 "
      ", "
      "null , { } , [ ] ] , \"t\" : true } }";
  ASSERT_EQ(Call("POST", "/v1/secret/data/compact", body).status, 200);
  HttpResponse native = agent_->Call("GET", "/v1/secrets/compact");
  ASSERT_EQ(native.status, 200) << native.body;
  EXPECT_EQ(native.Json()["value"],
            "{\"k\":\"A/\\n\\u001f\xc3\xa9\",\"list\":[1,2.5e3,null,{},[]],\"t\":true}");
  EXPECT_EQ(native.Json()["labels"], json({{"sealkeep.format", "kv2-json"}}));

  // A KV write keeps the path's other labels (policy conditions on them go on holding).
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/labelled", R"({"value":"v","labels":{"env":"prod"}})").status,
            200);
  HttpResponse w = Write("labelled", {{"a", "b"}});
  ASSERT_EQ(w.status, 200) << w.body;
  EXPECT_EQ(w.Json()["data"]["custom_metadata"], json({{"env", "prod"}, {"sealkeep.format", "kv2-json"}}));
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/labelled").Json()["labels"],
            json({{"env", "prod"}, {"sealkeep.format", "kv2-json"}}));
}

TEST_F(KvHttpStarted, BadInputIsAVaultShaped400AndChangesNothing) {
  const std::string secret = "s3cr3t-must-not-leak";
  struct Case {
    std::string method, target, body, says;
  };
  const std::vector<Case> cases = {
      {"POST", "/v1/secret/data/bad/x", "{\"data\": {\"password\": \"" + secret + "\", }",
       "malformed JSON at byte"},
      {"POST", "/v1/secret/data/bad/x", "{\"data\": {\"k\": \"" + secret + "\", \"k\": 1}}",
       "duplicate key at byte"},
      {"POST", "/v1/secret/data/bad/x", "{\"data\": \"" + secret + "\"}", "'data' must be a JSON object"},
      {"POST", "/v1/secret/data/bad/x", "{\"data\": [\"" + secret + "\"]}", "'data' must be a JSON object"},
      {"POST", "/v1/secret/data/bad/x", "{\"options\": {}}", "no data provided"},
      {"POST", "/v1/secret/data/bad/x", "{\"data\": null}", "no data provided"},
      {"POST", "/v1/secret/data/bad/x",
       "{\"data\": {\"p\": \"" + secret + "\"}, \"options\": {\"cas\": \"x\"}}",
       "error parsing check-and-set parameter"},
      {"POST", "/v1/secret/data/bad/x", "{\"data\": {\"p\": \"\xff\"}}", "not valid UTF-8"},
      {"POST", "/v1/secret/data/bad/../x", "{\"data\": {\"p\": \"" + secret + "\"}}", "bad_path"},
      {"GET", "/v1/secret/data/bad/x?version=one", "", "'version' must be a whole number"},
      {"POST", "/v1/secret/delete/bad/x", "{}", "no version number provided"},
      {"POST", "/v1/secret/destroy/bad/x", "{\"versions\": [\"one\"]}",
       "'versions' is a list of version numbers"},
  };
  for (const Case& c : cases) {
    HttpResponse r = Call(c.method, c.target, c.body);
    EXPECT_EQ(r.status, 400) << c.body << " -> " << r.body;
    json j = r.Json();
    ASSERT_TRUE(j["errors"].is_array() && !j["errors"].empty()) << r.body;
    EXPECT_NE(j["errors"][0].get<std::string>().find(c.says), std::string::npos) << r.body;
    EXPECT_EQ(r.body.find(secret), std::string::npos) << "the refusal quotes no secret: " << r.body;
  }
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets?prefix=bad").Json()["paths"].size(), 0u)
      << "nothing was written";
  EXPECT_EQ(AllTheAgentWrote().find(secret), std::string::npos) << "no secret in the log or the audit log";
}

TEST_F(KvHttpStarted, CasMapsToTheNativeCasAndAConflictIsVaults400) {
  HttpResponse create = Call("POST", "/v1/secret/data/cas", R"({"data":{"a":"1"},"options":{"cas":0}})");
  ASSERT_EQ(create.status, 200) << create.body;
  HttpResponse again = Call("POST", "/v1/secret/data/cas", R"({"data":{"a":"2"},"options":{"cas":0}})");
  ASSERT_EQ(again.status, 400) << again.body;
  json errors = again.Json()["errors"];
  ASSERT_EQ(errors.size(), 2u) << again.body;
  EXPECT_EQ(errors[0], "check-and-set parameter did not match the current version");
  EXPECT_NE(errors[1].get<std::string>().find("sealkeep cas_mismatch"), std::string::npos) << again.body;
  EXPECT_EQ(Call("POST", "/v1/secret/data/cas", R"({"data":{"a":"2"},"options":{"cas":1}})").status, 200);
  EXPECT_EQ(Call("POST", "/v1/secret/data/cas", R"({"data":{"a":"3"},"options":{"cas":"2"}})").status, 200)
      << "cas as a string, as Vault reads it";
  // The native cas sees the same head.
  EXPECT_EQ(agent_->Call("PUT", "/v1/secrets/cas", R"({"value":"x","cas":2})").ErrorCode(), "cas_mismatch");
  // Unknown parameters are ignored with Vault's warning.
  HttpResponse extra = Call("POST", "/v1/secret/data/cas", R"({"data":{"a":"4"},"version":9})");
  ASSERT_EQ(extra.status, 200) << extra.body;
  EXPECT_EQ(extra.Json()["warnings"], json({"Endpoint ignored these unrecognized parameters: [version]"}));
}

TEST_F(KvHttpStarted, ListingsGiveOneLevelWithFoldersInBothForms) {
  for (const char* p : {"a/b", "a/c/d", "a/c/e", "a/c/f/g", "x", "x/y"})
    ASSERT_EQ(Write(p, {{"k", "v"}}).status, 200);
  EXPECT_EQ(Call("LIST", "/v1/secret/metadata/").Json()["data"]["keys"], json({"a/", "x", "x/"}));
  EXPECT_EQ(Call("LIST", "/v1/secret/metadata/a").Json()["data"]["keys"], json({"b", "c/"}));
  EXPECT_EQ(Call("GET", "/v1/secret/metadata/a/?list=true").Json()["data"]["keys"], json({"b", "c/"}));
  EXPECT_EQ(Call("GET", "/v1/secret/metadata/a/c?list=1").Json()["data"]["keys"], json({"d", "e", "f/"}));
  EXPECT_EQ(Call("GET", "/v1/secret/metadata/a?list=false").status, 404) << "not a listing: a's metadata";
  // Destroying every version of a/c/f/g takes the folder f/ away too.
  ASSERT_EQ(Call("DELETE", "/v1/secret/metadata/a/c/f/g").status, 204);
  EXPECT_EQ(Call("LIST", "/v1/secret/metadata/a/c").Json()["data"]["keys"], json({"d", "e"}));
}

TEST_F(KvHttpStarted, WhatTheFacadeDoesNotDoIsSaidInVaultsShape) {
  for (const auto& [method, target, status] :
       std::vector<std::tuple<std::string, std::string, int>>{{"PATCH", "/v1/secret/data/x", 405},
                                                              {"PATCH", "/v1/secret/metadata/x", 405},
                                                              {"POST", "/v1/secret/config", 405},
                                                              {"GET", "/v1/secret/subkeys/x", 404},
                                                              {"POST", "/v1/sys/mounts", 405}}) {
    HttpResponse r = Call(method, target, method == "GET" ? "" : "{}");
    EXPECT_EQ(r.status, status) << method << " " << target << ": " << r.body;
    ASSERT_TRUE(r.Json()["errors"].is_array()) << r.body;
    EXPECT_NE(r.Json()["errors"][0].get<std::string>().find("docs/vault-compat.md"), std::string::npos)
        << r.body;
  }
  // What is no KV path at all stays sealkeep's own 404.
  EXPECT_EQ(Call("GET", "/v1/secret/other/x").ErrorCode(), "no_route");
  EXPECT_EQ(Call("GET", "/v1/nothing").ErrorCode(), "no_route");
}

TEST_F(KvHttpStarted, MetadataWritesConfirmOnlyTheSettingsSealkeepHas) {
  ASSERT_EQ(agent_->Call("PUT", "/v1/secrets/set", R"({"value":"v","labels":{"env":"prod"}})").status, 200);
  for (const char* same : {R"({"delete_version_after":"0s"})", R"({"max_versions":0,"cas_required":false})",
                           R"({"custom_metadata":{"env":"prod"}})", R"({"unknown":1})", ""}) {
    HttpResponse r = Call("POST", "/v1/secret/metadata/set", same);
    EXPECT_EQ(r.status, 204) << same << ": " << r.body;
  }
  for (const auto& [body, key] : std::vector<std::pair<std::string, std::string>>{
           {R"({"max_versions":5})", "max_versions"},
           {R"({"cas_required":true})", "cas_required"},
           {R"({"delete_version_after":"1h"})", "delete_version_after"},
           {R"({"custom_metadata":{"env":"dev"}})", "custom_metadata"}}) {
    HttpResponse r = Call("POST", "/v1/secret/metadata/set", body);
    EXPECT_EQ(r.status, 400) << body << ": " << r.body;
    EXPECT_NE(r.body.find("sealkeep keeps no per-path KV settings: '" + key + "'"), std::string::npos)
        << r.body;
  }
  json versions = agent_->Call("GET", "/v1/secrets/set/versions").Json()["versions"];
  EXPECT_EQ(versions.size(), 1u) << "no version was written";
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/set").Json()["labels"], json({{"env", "prod"}}));
}

TEST_F(KvHttpStarted, HealthMountsAndConfigAnswerAsVaultsDo) {
  HttpResponse h = Call("GET", "/v1/sys/health");
  ASSERT_EQ(h.status, 200) << h.body;
  EXPECT_EQ(h.Json()["initialized"], true);
  EXPECT_EQ(h.Json()["sealed"], false);
  HttpResponse m = Call("GET", "/v1/sys/mounts");
  ASSERT_EQ(m.status, 200) << m.body;
  EXPECT_EQ(m.Json()["data"]["secret/"]["type"], "kv");
  EXPECT_EQ(m.Json()["data"]["secret/"]["options"]["version"], "2");
  EXPECT_EQ(m.Json()["secret/"]["options"]["version"], "2");
  HttpResponse c = Call("GET", "/v1/secret/config");
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(c.Json()["data"]["cas_required"], false);
  EXPECT_EQ(c.Json()["data"]["max_versions"], 0);
  EXPECT_EQ(Call("GET", "/v1/health").Json()["status"], "unsealed") << "sealkeep's own health is still there";

  ASSERT_EQ(Write("while", {{"a", "b"}}).status, 200);
  ASSERT_EQ(agent_->Call("POST", "/v1/sys/seal").status, 200);
  HttpResponse sealed = Call("GET", "/v1/sys/health");
  EXPECT_EQ(sealed.status, 503);
  EXPECT_EQ(sealed.Json()["sealed"], true);
  HttpResponse read = Call("GET", "/v1/secret/data/while");
  EXPECT_EQ(read.status, 503);
  EXPECT_EQ(read.Json()["errors"][0], "sealkeep is sealed") << read.body;
}

TEST_F(KvHttpTest, TheMountComesFromTheConfigAndEmptyTurnsTheFacadeOff) {
  StartAgent("kv_mount = \"kv\"\n");
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(Write("x", {{"a", "b"}}).ErrorCode(), "no_route") << "secret/ is not the mount";
  EXPECT_EQ(Call("POST", "/v1/kv/data/x", R"({"data":{"a":"b"}})").status, 200);
  EXPECT_EQ(Call("GET", "/v1/kv/data/x").Json()["data"]["data"]["a"], "b");
  EXPECT_EQ(Call("GET", "/v1/sys/mounts").Json()["data"]["kv/"]["type"], "kv");

  StartAgent("kv_mount = \"\"\n");
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(Write("x", {{"a", "b"}}).ErrorCode(), "no_route");
  EXPECT_EQ(Call("GET", "/v1/sys/health").ErrorCode(), "no_route");
  EXPECT_EQ(Call("GET", "/v1/health").status, 200);
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/x").status, 404) << "nothing was written";

  StartAgent("kv_mount = \"secrets\"\n");
  int status = 0;
  std::string out = RunCommandOutput(
      SealkeepdBinary() + " --check-config --config " + agent_->config_path() + " 2>&1", &status);
  EXPECT_NE(status, 0) << out;
  EXPECT_NE(out.find("agent.kv_mount \"secrets\" is taken by sealkeep's own /v1/secrets"), std::string::npos)
      << out;
}

TEST_F(KvHttpStarted, AnXVaultTokenIsIgnoredAndNotedOnTheRecord) {
  HttpResponse with =
      Call("POST", "/v1/secret/data/tok", R"({"data":{"a":"1"}})", {{"X-Vault-Token", "bogus"}});
  HttpResponse without = Call("POST", "/v1/secret/data/tok", R"({"data":{"a":"2"}})");
  EXPECT_EQ(with.status, 200) << with.body;
  EXPECT_EQ(without.status, 200) << without.body;
  int noted = 0, plain = 0;
  for (const json& rec : Records()) {
    if (rec["path"] != "tok" || rec["outcome"] != "allowed") continue;
    if (rec["route"] == "POST kv2.write (X-Vault-Token ignored)") ++noted;
    if (rec["route"] == "POST kv2.write") ++plain;
  }
  EXPECT_EQ(noted, 1);
  EXPECT_EQ(plain, 1);
  EXPECT_EQ(AllTheAgentWrote().find("bogus"), std::string::npos) << "the token itself is never kept";
}

TEST_F(KvHttpTest, AVersionThatDoesNotVerifyIsRefusedInVaultsShape) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_EQ(Write("t/x", {{"a", "1"}}).status, 200);
  ASSERT_EQ(Write("t/x", {{"a", "2"}}).status, 200);
  ASSERT_EQ(agent_->Stop(), 0);
  // Bytes of version 1 edited behind the agent's back.
  ASSERT_EQ(RunCommand("sqlite3 " + agent_->state_dir() +
                       "/store.db \"UPDATE versions SET ciphertext = randomblob(length(ciphertext)) "
                       "WHERE path = 't/x' AND version = 1\""),
            0);
  ASSERT_NO_FATAL_FAILURE(Start());
  HttpResponse r = Call("GET", "/v1/secret/data/t/x?version=1");
  EXPECT_EQ(r.status, 500) << r.body;
  ASSERT_TRUE(r.Json()["errors"].is_array()) << r.body;
  const std::string why = r.Json()["errors"][0];
  EXPECT_NE(why.find("does not verify, so it is not served"), std::string::npos) << why;
  EXPECT_NE(why.find("content_mismatch"), std::string::npos) << why;
  EXPECT_EQ(Call("GET", "/v1/secret/data/t/x").Json()["data"]["data"]["a"], "2")
      << "version 2 still verifies";
  HttpResponse meta = Call("GET", "/v1/secret/metadata/t/x");
  ASSERT_EQ(meta.status, 200) << meta.body;
  EXPECT_EQ(meta.Json()["warnings"][0],
            "version 1 does not verify (content_mismatch): sealkeep will not serve it");
}

TEST_F(KvHttpStarted, DeleteMetadataDestroysEveryVersionAndTheSealedHistoryStays) {
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Write("hist/k", {{"n", i}}).status, 200);
  ASSERT_EQ(Call("POST", "/v1/secret/delete/hist/k", R"({"versions":[2]})").status, 204);
  EXPECT_EQ(Call("DELETE", "/v1/secret/metadata/hist/k").status, 204);
  EXPECT_EQ(Call("GET", "/v1/secret/metadata/hist/k").body, R"({"errors":[]})");
  EXPECT_EQ(Call("GET", "/v1/secret/data/hist/k?version=1").body, R"({"errors":[]})");
  json versions = agent_->Call("GET", "/v1/secrets/hist/k/versions").Json()["versions"];
  ASSERT_EQ(versions.size(), 3u);
  for (const json& v : versions) EXPECT_EQ(v["state"], "destroyed") << v.dump();
  json listed = agent_->Call("GET", "/v1/secrets?prefix=hist").Json()["paths"];
  ASSERT_EQ(listed.size(), 1u) << "the path and its journal stay";
  EXPECT_EQ(listed[0]["state"], "destroyed");
  json verify = agent_->Call("GET", "/v1/sys/journal/verify").Json();
  EXPECT_EQ(verify["ok"], true) << verify.dump();
  // Soft-deleted versions can come back; destroyed ones cannot, and a request to is passed over.
  EXPECT_EQ(Call("POST", "/v1/secret/undelete/hist/k", R"({"versions":[1,2,3]})").status, 204);
  EXPECT_EQ(agent_->Call("GET", "/v1/secrets/hist/k/versions").Json()["versions"][1]["state"], "destroyed");
}

// kRootIsAdminPolicy plus a role for the test user ("@USER@").
const std::string kNoDestroyPolicy = std::string(kRootIsAdminPolicy) + R"(
[roles.team]
grants = [{ capabilities = ["read", "write", "delete"], paths = ["team/**"] },
          { capabilities = ["list"], paths = ["team/shown/**"] }]

[[bindings]]
name = "team"
roles = ["team"]
match = { user = "@USER@" }
)";

TEST_F(KvHttpTest, EachKvOperationNeedsItsNativeCapability) {
  ASSERT_EQ(::geteuid(), 0u) << "runs a client as a user made for the test: run as root";
  TestUser user;
  ASSERT_TRUE(user.ok()) << user.error();
  std::string policy = kNoDestroyPolicy;
  policy.replace(policy.find("@USER@"), 6, user.name());
  StartAgent("", policy);
  agent_->LetUserConnect(user.name(), dir_->path());
  ASSERT_NO_FATAL_FAILURE(Start());
  for (const char* p : {"team/k", "team/shown/a", "team/hidden"})
    ASSERT_EQ(Write(p, {{"v", "1"}}).status, 200);

  const std::string sock = agent_->socket();
  std::string answers =
      OutputOfChild([&user] { return user.Become(); },
                    [&sock] {
                      std::string out;
                      for (const auto& [method, target, body] :
                           std::vector<std::tuple<std::string, std::string, std::string>>{
                               {"POST", "/v1/secret/data/team/k", R"({"data":{"v":"2"}})"},  // write
                               {"DELETE", "/v1/secret/data/team/k", ""},                     // delete
                               {"POST", "/v1/secret/undelete/team/k", R"({"versions":[2]})"},
                               {"POST", "/v1/secret/destroy/team/k", R"({"versions":[1]})"},  // no destroy
                               {"DELETE", "/v1/secret/metadata/team/k", ""},                  // no destroy
                               {"LIST", "/v1/secret/metadata/team", ""}}) {  // list on shown/ only
                        HttpResponse r = Http(sock, method, target, body);
                        out += std::to_string(r.status) + " " + r.body + "\n";
                      }
                      return out;
                    });
  std::istringstream lines(answers);
  std::vector<std::string> got;
  for (std::string l; std::getline(lines, l);) got.push_back(l);
  ASSERT_EQ(got.size(), 6u) << answers;
  EXPECT_EQ(got[0].substr(0, 3), "200") << got[0];
  EXPECT_EQ(got[1], "204 ") << got[1];
  EXPECT_EQ(got[2], "204 ") << got[2];
  EXPECT_EQ(got[3].rfind("403 {\"errors\":[\"permission denied\",", 0), 0u) << got[3];
  EXPECT_EQ(got[4].rfind("403 {\"errors\":[\"permission denied\",", 0), 0u) << got[4];
  EXPECT_NE(got[5].find("\"keys\":[\"shown/\"]"), std::string::npos) << got[5];
  json versions = agent_->Call("GET", "/v1/secrets/team/k/versions").Json()["versions"];
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(versions[0]["state"], "live") << "nothing destroyed";
  EXPECT_EQ(versions[1]["state"], "live") << "deleted, then undeleted";
}

TEST_F(KvHttpTest, NoValueIsServedWhileTheAuditLogCannotBeWritten) {
  // The audit folder becomes a small tmpfs, filled up while the agent runs (as in
  // tests/api/policy_daemon_test.cc for native writes).
  const std::string audit = agent_->state_dir() + "/audit";
  std::filesystem::create_directories(audit);
  if (::mount("tmpfs", audit.c_str(), "tmpfs", 0, "size=128k,mode=0700") != 0) {
    FAIL() << "cannot mount a tmpfs here (not root in this namespace)";
  }
  mounted_ = audit;
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_EQ(Write("fc", {{"secret", "value-before"}}).status, 200);
  {
    std::ofstream filler(audit + "/filler", std::ios::binary);
    std::string chunk(4096, 'x');
    for (int i = 0; i < 64 && filler.write(chunk.data(), static_cast<std::streamsize>(chunk.size())); ++i) {
    }
  }
  bool refused = false;
  for (int i = 0; i < 200 && !refused; ++i) {
    HttpResponse r = Write("fc/" + std::to_string(i), {{"must", "not be stored"}});
    if (r.status == 200) continue;
    refused = true;
    EXPECT_EQ(r.status, 503) << r.body;
    EXPECT_NE(r.Json()["errors"][0].get<std::string>().find("audit_unavailable"), std::string::npos)
        << r.body;
  }
  ASSERT_TRUE(refused) << "the full disk never refused a write";
  HttpResponse read = Call("GET", "/v1/secret/data/fc");
  EXPECT_EQ(read.status, 503) << read.body;
  EXPECT_EQ(read.body.find("value-before"), std::string::npos) << "no value without its audit record";
}

}  // namespace
}  // namespace sk::testing
