// The pure parts of the KV v2 facade: the raw `data` member of a request body (to locked
// memory whole, compact, by the same rules as every body), CompactJson, the KV shapes of the
// route table, the mount check and the kv_mount setting.
#include <gtest/gtest.h>

#include "agent/api/kv2.h"
#include "agent/api/request_body.h"
#include "agent/config/config.h"

namespace sk::api {
namespace {

std::string Text(const SecretBytes& b) { return std::string(AsChars(b.Expose())); }

std::string Compact(std::string_view in) {
  auto r = CompactJson(AsBytes(in));
  return r.ok() ? Text(*r) : "error: " + std::string(r.status().message());
}

TEST(CompactJson, DropsWhitespaceAndKeepsOnlyTheEscapesJsonNeeds) {
  EXPECT_EQ(Compact(" { \"a\" : [ 1 , -2.5e+3 , true , false , null ] ,\n\t\"b\" : { } }\n"),
            R"({"a":[1,-2.5e+3,true,false,null],"b":{}})");
  EXPECT_EQ(Compact(R"("\u0041\/\"\\\b\f\n\r\t\u0001\u00e9\ud83d\ude00")"),
            "\"A/\\\"\\\\\\b\\f\\n\\r\\t\\u0001\xc3\xa9\xf0\x9f\x98\x80\"");
  EXPECT_EQ(Compact("\"\x7f\""), "\"\x7f\"") << "DEL needs no escape";
  EXPECT_EQ(Compact("12"), "12");
  EXPECT_EQ(Compact("{\"z\":1,\"a\":2}"), "{\"z\":1,\"a\":2}") << "members keep their order";
}

TEST(CompactJson, CompactingItsOwnOutputGivesItBack) {
  for (const char* in : {R"({ "k" : "\u00e9\n" , "l" : [ { "m" : [ ] } ] })", R"([ "\u001F", 0.5E-2 ])"}) {
    const std::string once = Compact(in);
    EXPECT_EQ(Compact(once), once) << in;
  }
}

TEST(CompactJson, RefusesWhatEveryRequestBodyRefusesWithoutQuotingIt) {
  const std::string deep = std::string(33, '[') + std::string(33, ']');
  for (const std::string& bad :
       {std::string("{\"k\":\"secret-a\",\"k\":\"secret-b\"}"), std::string("{\"k\":\"secret\",}"),
        std::string("\"secret"), std::string("{\"k\":\"sec\x01ret\"}"), std::string("{\"k\":\"\\x\"}"),
        std::string("\"\\ud800 secret\""), std::string("01"), std::string("1."), std::string("[1] x"),
        std::string(""), std::string("\"secret\xff\""), deep}) {
    auto r = CompactJson(AsBytes(bad));
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().reason(), "bad_json") << bad;
    EXPECT_EQ(std::string(r.status().message()).find("secret"), std::string::npos) << r.status().message();
  }
  auto dup = CompactJson(AsBytes(std::string(R"({"k":1,"k":2})")));
  EXPECT_EQ(dup.status().message(), "duplicate key at byte 7");
  EXPECT_TRUE(CompactJson(AsBytes(std::string(32, '[') + std::string(32, ']'))).ok()) << "32 levels are fine";
}

TEST(RequestBodyRawMember, TakesTheNamedTopLevelMemberWholeIntoLockedMemory) {
  auto body = ParseRequestBody(
      R"({"options": {"cas": 3, "data": "plain"}, "data": { "value" : "x", "n" : [1] }})", "data");
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  EXPECT_TRUE(body->json["data"].is_binary());
  EXPECT_EQ(body->json["options"]["data"], "plain") << "only the top-level member is raw";
  EXPECT_EQ(body->json["options"]["cas"], 3u);
  ASSERT_EQ(body->secrets.size(), 1u) << "a \"value\" inside the raw member is not taken apart";
  auto data = RawJsonField(*body, body->json, "data");
  ASSERT_TRUE(data.ok() && data->has_value());
  EXPECT_EQ(Text(**data), R"({"value":"x","n":[1]})");
  auto none = RawJsonField(*body, body->json, "other");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST(RequestBodyRawMember, AnyTypeIsTakenAndTheNativeParseIsUnchanged) {
  auto s = ParseRequestBody(R"({"data":"a string"})", "data");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(Text(*RawJsonField(*s, s->json, "data").value()), "\"a string\"");
  // Without a raw member, "data" is an ordinary member and "value" still goes to locked memory.
  auto native = ParseRequestBody(R"({"data":{"k":"v"},"value":"secret"})");
  ASSERT_TRUE(native.ok());
  EXPECT_EQ(native->json["data"]["k"], "v");
  ASSERT_EQ(native->secrets.size(), 1u);
  EXPECT_EQ(Text(*ValueField(*native, native->json)), "secret");
  // A marker the parser did not make is refused.
  Json forged = {{"data", "text"}};
  EXPECT_EQ(RawJsonField(*native, forged, "data").status().reason(), "bad_request");
  // The raw member's errors are the body's.
  auto bad = ParseRequestBody(R"({"data":{"a":1,"a":2}})", "data");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().reason(), "bad_json");
  EXPECT_EQ(bad.status().message(), "duplicate key at byte 15");
}

struct KvRouteCase {
  const char* method;
  const char* target;
  Route route;
  const char* mount;
  const char* path;
};

TEST(KvRoutes, VaultTargetsMapToKvRoutes) {
  const KvRouteCase cases[] = {
      {"GET", "/v1/secret/data/a/b", Route::kKvRead, "secret", "a/b"},
      {"GET", "/v1/secret/data/a/b?version=2", Route::kKvRead, "secret", "a/b"},
      {"POST", "/v1/secret/data/a", Route::kKvWrite, "secret", "a"},
      {"PUT", "/v1/kv/data/a", Route::kKvWrite, "kv", "a"},
      {"DELETE", "/v1/secret/data/a", Route::kKvDelete, "secret", "a"},
      {"POST", "/v1/secret/delete/a", Route::kKvDelete, "secret", "a"},
      {"POST", "/v1/secret/undelete/a", Route::kKvUndelete, "secret", "a"},
      {"POST", "/v1/secret/destroy/a", Route::kKvDestroy, "secret", "a"},
      {"GET", "/v1/secret/metadata/a", Route::kKvMetadata, "secret", "a"},
      {"DELETE", "/v1/secret/metadata/a", Route::kKvDestroyAll, "secret", "a"},
      {"LIST", "/v1/secret/metadata/a/", Route::kKvList, "secret", "a"},
      {"LIST", "/v1/secret/metadata/", Route::kKvList, "secret", ""},
      {"GET", "/v1/secret/metadata/a?list=true", Route::kKvList, "secret", "a"},
      {"GET", "/v1/secret/metadata/?list=1", Route::kKvList, "secret", ""},
      {"GET", "/v1/secret/metadata/a?list=false", Route::kKvMetadata, "secret", "a"},
      {"GET", "/v1/secret/config", Route::kKvInfo, "secret", "config"},
      {"GET", "/v1/sys/health", Route::kKvInfo, "", "sys/health"},
      {"GET", "/v1/sys/mounts", Route::kKvInfo, "", "sys/mounts"},
      {"PATCH", "/v1/secret/data/a", Route::kKvUnsupported, "secret", "data/a"},
      {"POST", "/v1/secret/metadata/a", Route::kKvMetadata, "secret", "a"},
      {"PATCH", "/v1/secret/metadata/a", Route::kKvUnsupported, "secret", "metadata/a"},
      {"GET", "/v1/secret/subkeys/a", Route::kKvUnsupported, "secret", "subkeys/a"},
      {"GET", "/v1/secret/data/", Route::kKvUnsupported, "secret", "data/"},
  };
  for (const KvRouteCase& c : cases) {
    RouteResult r = MatchRoute(c.method, c.target);
    ASSERT_TRUE(r.match) << c.method << " " << c.target;
    EXPECT_EQ(r.match->route, c.route) << c.method << " " << c.target;
    EXPECT_EQ(r.match->mount, c.mount) << c.method << " " << c.target;
    EXPECT_EQ(r.match->path, c.path) << c.method << " " << c.target;
    EXPECT_TRUE(IsKvRoute(r.match->route));
  }
  EXPECT_EQ(MatchRoute("GET", "/v1/secret/data/a?version=2").match->query.at("version"), "2");
}

TEST(KvRoutes, NativeRoutesWinAndOtherTargetsStayUnknown) {
  RouteResult native = MatchRoute("GET", "/v1/secrets/data/x");
  ASSERT_TRUE(native.match);
  EXPECT_EQ(native.match->route, Route::kSecretGet) << "sealkeep's own /v1/secrets first";
  EXPECT_EQ(native.match->path, "data/x");
  EXPECT_EQ(MatchRoute("GET", "/v1/health").match->route, Route::kHealth);
  EXPECT_EQ(MatchRoute("GET", "/v1/sys/status").match->route, Route::kStatus);
  for (const char* target : {"/v1/secret/other/x", "/v1/secret", "/v1/sys/other", "/v2/secret/data/x",
                             "/v1/sys/data/x", "/v1/./data/x"}) {
    EXPECT_EQ(MatchRoute("GET", target).error, RouteError::kNotFound) << target;
  }
  EXPECT_EQ(MatchRoute("GET", "/v1/secret/data/a%2Fb").error, RouteError::kBadTarget);
}

TEST(KvRoutes, TheMountOfTheConfigIsServedAndNothingWhenItIsEmpty) {
  const RouteMatch data = *MatchRoute("GET", "/v1/secret/data/a").match;
  const RouteMatch health = *MatchRoute("GET", "/v1/sys/health").match;
  EXPECT_TRUE(KvMountServed(data, "secret"));
  EXPECT_FALSE(KvMountServed(data, "kv"));
  EXPECT_FALSE(KvMountServed(data, ""));
  EXPECT_TRUE(KvMountServed(health, "kv"));
  EXPECT_FALSE(KvMountServed(health, ""));
}

TEST(KvMountConfig, DefaultsToSecretAndRefusesWhatCannotBeAMount) {
  auto plain = config::ParseConfig("", "t.toml");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->kv_mount, "secret");
  for (const char* ok : {"", "kv", "team.kv-2"}) {
    auto c = config::ParseConfig(std::string("[agent]\nkv_mount = \"") + ok + "\"\n", "t.toml");
    ASSERT_TRUE(c.ok()) << ok << ": " << c.status().ToString();
    EXPECT_EQ(c->kv_mount, ok);
  }
  for (const char* bad : {"a/b", "..", "se cret", "sys", "secrets", "snapshots", "txn", "health"}) {
    auto c = config::ParseConfig(std::string("[agent]\nkv_mount = \"") + bad + "\"\n", "t.toml");
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(c.status().reason(), "bad_config") << bad;
  }
}

}  // namespace
}  // namespace sk::api
