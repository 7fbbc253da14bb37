// Pure pieces of the API: the route table, strict JSON, UTF-8, config parsing, and how
// the listening socket is created.
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "agent/api/json_util.h"
#include "agent/api/listen_socket.h"
#include "agent/api/request_body.h"
#include "agent/api/router.h"
#include "agent/api/server.h"
#include "agent/config/config.h"

namespace sk::api {
namespace {

TEST(Router, MapsEveryDocumentedRoute) {
  struct Case {
    const char* method;
    const char* target;
    Route route;
    const char* path;
  } cases[] = {
      {"GET", "/v1/health", Route::kHealth, ""},
      {"GET", "/v1/sys/status", Route::kStatus, ""},
      {"GET", "/metrics", Route::kMetrics, ""},
      {"GET", "/v1/secrets/db/pw", Route::kSecretGet, "db/pw"},
      {"GET", "/v1/secrets/db/pw?version=3", Route::kSecretGet, "db/pw"},
      {"PUT", "/v1/secrets/db/pw", Route::kSecretPut, "db/pw"},
      {"DELETE", "/v1/secrets/db/pw", Route::kSecretDelete, "db/pw"},
      {"GET", "/v1/secrets?prefix=db", Route::kSecretList, ""},
      {"GET", "/v1/secrets/db/pw/versions", Route::kSecretVersions, "db/pw"},
      {"POST", "/v1/secrets/db/pw/undelete", Route::kSecretUndelete, "db/pw"},
      {"POST", "/v1/secrets/db/pw/destroy", Route::kSecretDestroy, "db/pw"},
      {"POST", "/v1/secrets/db/pw/rollback", Route::kSecretRollback, "db/pw"},
      {"POST", "/v1/secrets/db/pw/floor", Route::kSecretFloor, "db/pw"},
      {"PUT", "/v1/secrets/app/floor", Route::kSecretPut, "app/floor"},
      {"POST", "/v1/txn", Route::kTxn, ""},
      {"POST", "/v1/snapshots", Route::kSnapshotCreate, ""},
      {"GET", "/v1/snapshots/rel-1", Route::kSnapshotGet, "rel-1"},
      {"POST", "/v1/snapshots/rel-1/restore", Route::kSnapshotRestore, "rel-1"},
      {"POST", "/v1/sys/rotate", Route::kRotate, ""},
      {"POST", "/v1/sys/seal", Route::kSeal, ""},
      {"POST", "/v1/sys/unseal", Route::kUnseal, ""},
      {"POST", "/v1/sys/recover", Route::kRecover, ""},
      {"POST", "/v1/sys/reseal", Route::kReseal, ""},
      {"GET", "/v1/sys/journal/verify", Route::kJournalVerify, ""},
      {"GET", "/v1/sys/audit/verify", Route::kAuditVerify, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.method) + " " + c.target);
    RouteResult r = MatchRoute(c.method, c.target);
    ASSERT_TRUE(r.match.has_value());
    EXPECT_EQ(r.match->route, c.route);
    EXPECT_EQ(r.match->path, c.path);
  }
  EXPECT_EQ(MatchRoute("GET", "/v1/secrets/db/pw?version=3").match->query.at("version"), "3");
}

TEST(Router, RefusesWhatIsNotThere) {
  EXPECT_EQ(MatchRoute("GET", "/v2/health").error, RouteError::kNotFound);
  EXPECT_EQ(MatchRoute("POST", "/v1/health").error, RouteError::kMethodNotAllowed);
  EXPECT_EQ(MatchRoute("PATCH", "/v1/secrets/a").error, RouteError::kMethodNotAllowed);
  EXPECT_EQ(MatchRoute("GET", "relative").error, RouteError::kBadTarget);
  EXPECT_EQ(MatchRoute("GET", "/v1/secrets/a%2Fb").error, RouteError::kBadTarget);
  EXPECT_EQ(MatchRoute("GET", "/v1/secrets?prefix=a&prefix=b").error, RouteError::kBadTarget);
  EXPECT_EQ(MatchRoute("GET", "/v1/secrets?prefix=%zz").error, RouteError::kBadTarget);
}

TEST(StrictJson, RefusesDeepNestingDuplicatesBadUtf8AndNonObjects) {
  EXPECT_TRUE(ParseJsonObject(R"({"value":"x","cas":1})").ok());
  EXPECT_TRUE(ParseJsonObject("").ok());
  std::string deep(100, '[');
  EXPECT_EQ(ParseJsonObject("{\"a\":" + deep).status().reason(), "bad_json");
  std::string nested;
  for (int i = 0; i < 40; ++i) nested += "{\"a\":";
  nested += "1" + std::string(40, '}');
  auto r = ParseJsonObject(nested);
  EXPECT_EQ(r.status().reason(), "bad_json");
  EXPECT_NE(r.status().message().find("deeper"), std::string_view::npos);
  EXPECT_EQ(ParseJsonObject(R"({"a":1,"a":2})").status().reason(), "bad_json");
  EXPECT_EQ(ParseJsonObject("{\"value\":\"\xff\"}").status().reason(), "bad_json");
  EXPECT_EQ(ParseJsonObject("[1,2]").status().reason(), "bad_json");
  EXPECT_EQ(ParseJsonObject("{").status().reason(), "bad_json");
}

TEST(StrictJson, AMalformedBodyIsNeverQuotedInTheError) {
  // Each stops the parser inside or right after the secret, where nlohmann's own message
  // would quote the token it was reading.
  const std::string secret = "hunter2-Zq7xK";
  for (const std::string& body :
       {"{\"value\":\"" + secret, "{\"value\":\"" + secret + "\x01tail\"}",
        "{\"value\":\"" + secret + "\\q\"}", "{\"value\":\"" + secret + "\\ud800\"}",
        "{\"value\":\"" + secret + "\"", "{\"value\":\"" + secret + "\" x}", "{\"value\":" + secret + "}",
        "{\"cas\":1e999999, \"value\":\"" + secret + "\"}"}) {
    SCOPED_TRACE(testing::PrintToString(body));
    auto r = ParseJsonObject(body);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().reason(), "bad_json");
    std::string message(r.status().message());
    EXPECT_EQ(message.find("hunter"), std::string::npos) << message;
    EXPECT_EQ(message.find("Zq7xK"), std::string::npos) << message;
    EXPECT_EQ(message.find("last read"), std::string::npos) << message;
  }
  EXPECT_EQ(ParseJsonObject("{\"value\":\"abc").status().message(), "malformed JSON at byte 13");
  EXPECT_EQ(ParseJsonObject("{\"value\":x}").status().message(), "malformed JSON at byte 9");
}

// A value goes from the body to locked memory and nowhere else: the parsed JSON holds only
// a marker (a binary value, which no JSON text can express), so one op cannot point at
// another's value either.
TEST(StrictJson, ValuesLandInLockedMemoryAndTheJsonHoldsOnlyAMarker) {
  auto j = ParseRequestBody(R"({"value":"hunter2"})");
  ASSERT_TRUE(j.ok());
  EXPECT_TRUE(j->json["value"].is_binary());
  EXPECT_EQ(j->json.dump().find("hunter2"), std::string::npos);
  auto v = ValueField(*j, j->json);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(std::string(AsChars(v->Expose())), "hunter2");
  auto b = ParseRequestBody(R"({"value_b64":"AAEC/w=="})");
  ASSERT_TRUE(b.ok());
  auto bv = ValueField(*b, b->json);
  ASSERT_TRUE(bv.ok());
  EXPECT_EQ(bv->size(), 4u);
  auto both = ParseRequestBody(R"({"value":"a","value_b64":"YQ=="})");
  EXPECT_EQ(ValueField(*both, both->json).status().reason(), "bad_request");
  auto bad = ParseRequestBody(R"({"value_b64":"!!"})");
  EXPECT_EQ(ValueField(*bad, bad->json).status().reason(), "bad_request");
  auto number = ParseRequestBody(R"({"value":7})");
  EXPECT_EQ(ValueField(*number, number->json).status().reason(), "bad_request");
  auto ops = ParseRequestBody(R"({"ops":[{"value":"one"},{"value":{"subtype":0}},{"value_b64":"dHdv"}]})");
  ASSERT_TRUE(ops.ok());
  ASSERT_EQ(ops->secrets.size(), 2u);
  EXPECT_EQ(std::string(AsChars(ValueField(*ops, ops->json["ops"][0])->Expose())), "one");
  EXPECT_EQ(ValueField(*ops, ops->json["ops"][1]).status().reason(), "bad_request") << "no forged reference";
  EXPECT_EQ(std::string(AsChars(ValueField(*ops, ops->json["ops"][2])->Expose())), "two");
}

TEST(StrictJson, StringsNumbersAndLiteralsFollowRfc8259) {
  auto r = ParseRequestBody(
      R"({"s":"a\"b\\c\/\b\f\n\r\t\u00e9\ud83d\udd11","u":18446744073709551615,"i":-9223372036854775808,)"
      R"("f":1.5e3,"z":0,"t":true,"n":null,"a":[],"o":{},"value":"\u0000x"})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->json["s"], "a\"b\\c/\b\f\n\r\t\u00e9\U0001F511");
  EXPECT_TRUE(r->json["u"].is_number_unsigned());
  EXPECT_EQ(r->json["u"].get<std::uint64_t>(), 18446744073709551615ULL);
  EXPECT_TRUE(r->json["i"].is_number_integer());
  EXPECT_EQ(r->json["f"].get<double>(), 1500.0);
  EXPECT_TRUE(r->json["t"].get<bool>());
  EXPECT_TRUE(r->json["n"].is_null());
  EXPECT_EQ(r->secrets.at(0).size(), 2u) << "an escaped NUL is a byte of the value";
  EXPECT_TRUE(ParseRequestBody(R"({"big":18446744073709551616})")->json["big"].is_number_float());
  for (const char* bad : {R"({"a":01})", R"({"a":1.})", R"({"a":.5})", R"({"a":-})", R"({"a":1e})",
                          R"({"a":tru})", R"({"a":"\x"})", R"({"a":"\udc00"})", R"({"a":"\ud800x"})",
                          R"({"a":"\u12"})", "{\"a\":\"\x1f\"}", R"({"a" 1})", R"({"a":1,})", R"({,})",
                          R"({"a":[1,]})", R"({"a":1} x)", R"({"a":1e400})", R"("text")", "  {} ,"}) {
    EXPECT_EQ(ParseRequestBody(bad).status().reason(), "bad_json") << bad;
  }
}

TEST(StrictJson, Utf8ValidatorRefusesOverlongsSurrogatesAndTruncation) {
  EXPECT_TRUE(IsValidUtf8(AsBytes("plain \xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91")));
  for (const char* bad : {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\x80", "\xff"}) {
    EXPECT_FALSE(IsValidUtf8(AsBytes(bad))) << bad;
  }
}

// The socket is bound under its own umask, so even a process umask of 0 never leaves it
// more open than asked for; it ends with exactly the mode and group of the config.
TEST(ListenSocket, HasExactlyTheConfiguredModeAndGroupWhateverTheUmask) {
  char tmpl[] = "/tmp/sk-listen-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  group* gr = ::getgrnam("nogroup");
  if (gr == nullptr) gr = ::getgrnam("nobody");
  ASSERT_NE(gr, nullptr);
  const gid_t gid = gr->gr_gid;
  const std::string name = gr->gr_name;
  mode_t old = ::umask(0);
  auto a = CreateListenSocket(dir + "/a.sock", 0660, name);
  auto b = CreateListenSocket(dir + "/b.sock", 0600, "");
  ::umask(old);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  struct stat st {};
  ASSERT_EQ(::lstat((dir + "/a.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_gid, gid);
  ASSERT_EQ(::lstat((dir + "/b.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_gid, ::getegid());
  EXPECT_EQ(CreateListenSocket(dir + "/a.sock", 0660, "").status().reason(), "socket_in_use")
      << "a socket someone serves is never replaced";
  EXPECT_EQ(CreateListenSocket(dir + "/c.sock", 0660, "no-such-group-sk").status().reason(), "bad_config");
  a->reset();
  b->reset();
  auto stale = CreateListenSocket(dir + "/a.sock", 0660, "");
  EXPECT_TRUE(stale.ok()) << "a stale socket file is replaced";
  std::filesystem::remove_all(dir);
}

TEST(Config, DefaultsAndEveryTableParse) {
  auto c = config::ParseConfig(R"(
[agent]
state_dir = "/srv/sk"
socket_mode = "0640"
io_spin_us = 0
[store]
anchor_mode = "strict"
epoch_seconds = 5
[backend]
kind = "tpm"
[tpm]
tcti = "swtpm:host=127.0.0.1,port=2321"
pcrs = [7, 11]
[limits]
max_connections = 10
[policy]
file = "policy.toml"
[audit]
dir = "audit"
)",
                               "t.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->store.store_path, "/srv/sk/store.db");
  EXPECT_EQ(c->store.anchor_mode, secrets::AnchorMode::kStrict);
  EXPECT_EQ(c->backend.tpm.pcrs, (std::vector<int>{7, 11}));
  EXPECT_EQ(c->backend.tpm.state_dir, "/srv/sk/tpm");
  EXPECT_EQ(c->policy_file, "/srv/sk/policy.toml");
  EXPECT_EQ(c->socket_mode, 0640u);
  EXPECT_EQ(c->limits.max_connections, 10u);
  EXPECT_EQ(c->io_spin_us, 0);
  EXPECT_EQ(config::ParseConfig("", "empty")->io_spin_us, 50) << "the default polls 50 us before sleeping";
  EXPECT_EQ(config::ParseConfig("", "empty")->creds_socket, "") << "no credential socket unless asked for";
  EXPECT_EQ(config::ParseConfig("[agent]\nstate_dir = \"/srv/sk\"\ncreds_socket = \"run/creds.sock\"\n", "c")
                ->creds_socket,
            "/srv/sk/run/creds.sock");
  EXPECT_FALSE(
      config::ParseConfig("[agent]\nsocket = \"/run/a.sock\"\ncreds_socket = \"/run/a.sock\"\n", "c").ok())
      << "one socket cannot speak both protocols";
}

// Non-ASCII text anywhere in a TOML file gets an answer, never undefined behaviour: toml++
// 3.3.0 reached __builtin_unreachable for U+00A1-U+0499 and more when it asked whether such a
// character is whitespace (agent/config/toml.h mends it; the UBSan suite fails without it).
TEST(Config, NonAsciiTextIsParsedOrRefusedNeverUndefined) {
  auto kept =
      config::ParseConfig("# caf\u00e9 \u0436 \u30c4\n[agent]\nstate_dir = \"/srv/caf\u00e9\"\n", "c");
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_EQ(kept->state_dir, "/srv/caf\u00e9");
  for (const char* text : {"[pkcs1\u03e9\nmodule = \"x\"\n", "[agent\u00e9]\n", "caf\u00e9 = 1\n",
                           "[agent]\nstate_dir\u00a1 = \"/x\"\n", "[a\u2d00]\n", "[a\ufb30]\n"}) {
    auto refused = config::ParseConfig(text, "c");
    ASSERT_FALSE(refused.ok()) << text;
    EXPECT_EQ(refused.status().reason(), "bad_config") << text;
  }
}

TEST(Config, MistakesAreRefusedWithTheLine) {
  auto typo =
      config::ParseConfig("[agent]\nstate_dir = \"/x\"\n[store]\nancor_mode = \"strict\"\n", "c.toml");
  ASSERT_FALSE(typo.ok());
  EXPECT_EQ(typo.status().reason(), "bad_config");
  EXPECT_NE(typo.status().message().find("c.toml:4"), std::string_view::npos) << typo.status().message();
  EXPECT_FALSE(config::ParseConfig("[agent]\nsocket_mode = \"0666\"\n", "c").ok())
      << "others may not use the socket";
  EXPECT_FALSE(config::ParseConfig("[store]\nanchor_mode = \"sometimes\"\n", "c").ok());
  EXPECT_FALSE(config::ParseConfig("[limits]\nmax_connections = -1\n", "c").ok());
  EXPECT_FALSE(config::ParseConfig("[agent]\nio_spin_us = 5000\n", "c").ok())
      << "a spin past 1 ms is a mistake";
  EXPECT_FALSE(config::ParseConfig("[nonsense]\n", "c").ok());
  EXPECT_FALSE(config::ParseConfig("this is = = not toml", "c").ok());
  EXPECT_EQ(config::LoadConfig("/nonexistent/sk.toml").status().reason(), "config_missing");
}

// [fleet] (docs/fleet.md): present means on; the prefix reaches the store's guard; a password
// in the URL, a host id out of the alphabet or a signer key that is not a P-256 point's
// encoding are refused.
TEST(Config, FleetTableParsesAndRefusesWhatWouldLeakOrMislead) {
  const std::string key = "04" + std::string(128, 'a');
  auto fleet = [&](const std::string& db, const std::string& host, const std::string& signer) {
    return config::ParseConfig("[fleet]\ndb = \"" + db + "\"\nhost_id = \"" + host + "\"\nsigner_key = \"" +
                                   signer + "\"\nprefix = \"shared\"\n",
                               "c");
  };
  auto ok = fleet("host=/run/pg dbname=sk user=web_1", "web-1", key);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_TRUE(ok->fleet.enabled);
  EXPECT_EQ(ok->fleet.signer_key.size(), 65U);
  EXPECT_EQ(ok->store.fleet_prefix, "shared");
  EXPECT_EQ(ok->fleet.poll_seconds, 30);
  EXPECT_FALSE(config::ParseConfig("", "empty")->fleet.enabled);
  EXPECT_EQ(config::ParseConfig("", "empty")->store.fleet_prefix, "");
  for (const std::string db : {"host=/run/pg password=hunter2", "postgresql://web:hunter2@pg/sk", ""}) {
    auto bad = fleet(db, "web-1", key);
    ASSERT_FALSE(bad.ok()) << db;
    EXPECT_EQ(bad.status().message().find("hunter2"), std::string_view::npos)
        << "the refusal repeats the password";
  }
  EXPECT_TRUE(fleet("postgresql://web@pg/sk?sslmode=require", "web-1", key).ok());
  EXPECT_FALSE(fleet("host=/run/pg", "Web 1", key).ok());
  EXPECT_FALSE(fleet("host=/run/pg", "web-1", key.substr(2)).ok());
  EXPECT_FALSE(fleet("host=/run/pg", "web-1", "05" + key.substr(2)).ok());
}

}  // namespace
}  // namespace sk::api
