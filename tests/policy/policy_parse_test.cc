#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "agent/policy/policy.h"

namespace sk::policy {
namespace {

// The full example of docs/policy.md (keep the two in step).
constexpr const char* kExample = R"toml(
version = 1

[roles.admin]
description = "Everything, everywhere"
grants = [
  { capabilities = ["read", "list", "write", "delete", "destroy", "rollback", "snapshot", "admin"], paths = ["**"] },
]

[roles.web-reader]
description = "The web frontend reads its own secrets"
grants = [
  { capabilities = ["read", "list"], paths = ["apps/web/**"] },
]

[roles.deployer]
grants = [
  { capabilities = ["write", "rollback", "snapshot", "list"], paths = ["apps/*/config", "releases/**"] },
  { capabilities = ["read"], paths = ["apps/*/config"] },
]

[[bindings]]
name = "root"
roles = ["admin"]
match = { uid = 0 }

[[bindings]]
name = "web"
roles = ["web-reader"]
match = { unit = "web.service", user = "www-data" }

[[bindings]]
name = "deploy-prod"
roles = ["deployer"]
match = { group = "deploy" }
when.labels = { env = ["prod", "staging"] }
when.time = { from = "08:00", to = "18:00", zone = "local", days = ["mon", "tue", "wed", "thu", "fri"] }
when.subject = { exe_prefix = "/opt/deploy/" }
)toml";

Status ParseError(const std::string& text) {
  Result<std::shared_ptr<const Policy>> p = ParsePolicy(text, "policy.toml");
  return p.ok() ? OkStatus() : p.status();
}

std::string Message(const std::string& text) { return std::string(ParseError(text).message()); }

TEST(PolicyParseTest, TheDocumentedExampleParses) {
  Result<std::shared_ptr<const Policy>> p = ParsePolicy(kExample, "example.toml");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const Policy& policy = **p;
  EXPECT_EQ(policy.roles().size(), 3U);
  ASSERT_EQ(policy.bindings().size(), 3U);
  const Binding& deploy = policy.bindings()[2];
  EXPECT_EQ(deploy.name, "deploy-prod");
  EXPECT_EQ(deploy.line, 32);  // the [[bindings]] line
  ASSERT_TRUE(deploy.when.labels.has_value());
  ASSERT_TRUE(deploy.when.time.has_value());
  EXPECT_EQ(deploy.when.time->from_minute, 8 * 60);
  EXPECT_EQ(deploy.when.time->to_minute, 18 * 60);
  EXPECT_EQ(deploy.when.time->zone, TimeWindow::Zone::kLocal);
  EXPECT_EQ(deploy.when.time->days, 0x1F);
  ASSERT_TRUE(deploy.when.subject.has_value());
  EXPECT_EQ(deploy.when.subject->exe_prefixes.at(0), "/opt/deploy/");
}

TEST(PolicyParseTest, UnknownCapabilityNamesItsLine) {
  std::string text =
      "version = 1\n"                                           // 1
      "\n"                                                      // 2
      "[roles.r]\n"                                             // 3
      "grants = [\n"                                            // 4
      "  { capabilities = [\"read\"], paths = [\"a/**\"] },\n"  // 5
      "  { capabilities = [\"reed\"], paths = [\"a/**\"] },\n"  // 6
      "]\n";
  Status st = ParseError(text);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_EQ(st.reason(), "policy_invalid");
  EXPECT_EQ(std::string(st.message()).rfind("policy.toml:6: unknown capability 'reed'", 0), 0U)
      << st.ToString();
}

TEST(PolicyParseTest, TomlSyntaxErrorsNameTheirLine) {
  std::string msg = Message("version = 1\n[roles.r]\ngrants = [ { capabilities = [\"read\" }\n");
  EXPECT_EQ(msg.rfind("policy.toml:3: ", 0), 0U) << msg;
}

TEST(PolicyParseTest, EveryProblemIsReportedWithItsLine) {
  std::string text =
      "version = 1\n"                                                         // 1
      "[roles.r]\n"                                                           // 2
      "grants = [ { capabilities = [\"read\"], paths = [\"web-*\"] } ]\n"     // 3
      "[[bindings]]\n"                                                        // 4
      "name = \"b\"\n"                                                        // 5
      "roles = [\"nope\"]\n"                                                  // 6
      "mtach = { uid = 1 }\n"                                                 // 7
      "[[bindings]]\n"                                                        // 8
      "name = \"b\"\n"                                                        // 9
      "roles = [\"r\"]\n"                                                     // 10
      "match = { uid = -1, unit = \"web\" }\n"                                // 11
      "when.time = { from = \"25:00\", to = \"18:00\", zone = \"mars\" }\n";  // 12
  std::string msg = Message(text);
  for (const char* want :
       {"policy.toml:3: '*' and '**' must be whole segments", "policy.toml:6: unknown role 'nope'",
        "policy.toml:7: unknown key 'mtach' in binding", "policy.toml:4: binding needs match",
        "policy.toml:9: duplicate binding name 'b'", "policy.toml:11: uid must be an integer id",
        "policy.toml:11: unit 'web' is not a unit name", "policy.toml:12: when.time.from must be \"HH:MM\"",
        "policy.toml:12: when.time.zone must be \"utc\" or \"local\""}) {
    EXPECT_NE(msg.find(want), std::string::npos) << "missing: " << want << "\nin:\n" << msg;
  }
}

TEST(PolicyParseTest, VersionIsRequired) {
  EXPECT_NE(Message("[roles.r]\ngrants = [ { capabilities = [\"read\"], paths = [\"a\"] } ]\n")
                .find("policy.toml:1: the policy needs version = 1"),
            std::string::npos);
  EXPECT_NE(Message("version = 2\n").find("policy.toml:1: the policy needs version = 1"), std::string::npos);
}

TEST(PolicyParseTest, UnknownTopLevelAndRoleKeysAreErrors) {
  EXPECT_NE(Message("version = 1\nbindigns = []\n").find("policy.toml:2: unknown key 'bindigns'"),
            std::string::npos);
  std::string msg =
      Message("version = 1\n[roles.r]\ngrant = [ { capabilities = [\"read\"], paths = [\"a\"] } ]\n");
  EXPECT_NE(msg.find("policy.toml:3: unknown key 'grant' in role 'r'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("role 'r' needs grants"), std::string::npos) << msg;
}

TEST(PolicyParseTest, EmptyAndOddShapesAreErrors) {
  EXPECT_FALSE(ParseError("version = 1\n[roles.r]\ngrants = []\n").ok());
  EXPECT_FALSE(
      ParseError("version = 1\n[roles.r]\ngrants = [ { capabilities = [], paths = [\"a\"] } ]\n").ok());
  EXPECT_FALSE(ParseError("version = 1\n[roles.r]\ngrants = [ { capabilities = \"read\" } ]\n").ok());
  EXPECT_FALSE(ParseError("version = 1\nbindings = 3\n").ok());
  EXPECT_FALSE(ParseError("version = 1\n[roles.\"bad name\"]\ngrants = [ { capabilities = [\"read\"], "
                          "paths = [\"a\"] } ]\n")
                   .ok());
  const std::string role =
      "version = 1\n[roles.r]\ngrants = [ { capabilities = [\"read\"], paths = [\"a\"] } ]\n";
  EXPECT_FALSE(ParseError(role + "[[bindings]]\nname = \"b\"\nroles = [\"r\"]\nmatch = {}\n").ok());
  EXPECT_FALSE(
      ParseError(role + "[[bindings]]\nname = \"b\"\nroles = [\"r\"]\nmatch = { exe = \"rel\" }\n").ok());
  EXPECT_FALSE(ParseError(role + "[[bindings]]\nroles = [\"r\"]\nmatch = { uid = 1 }\n").ok());
  EXPECT_FALSE(ParseError(role + "[[bindings]]\nname = \"b\"\nroles = [\"r\"]\nmatch = { uid = 1 }\n"
                                 "when.time = { from = \"08:00\", to = \"08:00\", zone = \"utc\" }\n")
                   .ok());
  EXPECT_FALSE(
      ParseError(role + "[[bindings]]\nname = \"b\"\nroles = [\"r\"]\nmatch = { uid = 1 }\n"
                        "when.time = { from = \"08:00\", to = \"09:00\", zone = \"utc\", days = [\"mo\"] }\n")
          .ok());
  EXPECT_FALSE(ParseError(role + "[[bindings]]\nname = \"b\"\nroles = [\"r\"]\nmatch = { uid = 1 }\n"
                                 "when.labels = {}\n")
                   .ok());
  EXPECT_FALSE(ParseError(role + "[[bindings]]\nname = \"b\"\nroles = [\"r\"]\nmatch = { uid = 1 }\n"
                                 "when.subject = { exe_prefix = \"opt/\" }\n")
                   .ok());
  EXPECT_FALSE(
      ParseError(role + "[[bindings]]\nname = \"b\"\nroles = [\"r\"]\nmatch = { uid = 4294967295 }\n").ok());
}

TEST(PolicyParseTest, AnEmptyPolicyIsValidAndDeniesEverything) {
  Result<std::shared_ptr<const Policy>> p = ParsePolicy("version = 1\n", "empty.toml");
  ASSERT_TRUE(p.ok());
  Subject root;
  EXPECT_FALSE((*p)->Evaluate(Request{root, Capability::kRead, "a"}).allowed);
}

// Any user names the units of their own manager as they like: a user_unit binding must say
// whose, and matches only a caller whose user unit (of its own manager) it is.
TEST(PolicyParseTest, AUserUnitBindingNamesItsUserAndMatchesOnlyAUserUnit) {
  const std::string head =
      "version = 1\n[roles.r]\ngrants = [{ capabilities = [\"read\"], paths = [\"**\"] }]\n"
      "[[bindings]]\nname = \"b\"\nroles = [\"r\"]\n";
  EXPECT_NE(Message(head + "match = { user_unit = \"web.service\" }\n")
                .find("policy.toml:7: user_unit names a unit"),
            std::string::npos)
      << Message(head + "match = { user_unit = \"web.service\" }\n");
  EXPECT_NE(Message(head + "match = { uid = 1000, user_unit = \"web\" }\n")
                .find("user_unit 'web' is not a unit name"),
            std::string::npos);
  Result<std::shared_ptr<const Policy>> p =
      ParsePolicy(head + "match = { uid = 1000, user_unit = \"web.service\" }\n", "policy.toml");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  Subject s;
  s.uid = 1000;
  s.unit = "web.service";  // the system unit of that name is not it
  EXPECT_FALSE((*p)->Evaluate(Request{s, Capability::kRead, "a"}).allowed);
  s.unit = "user@1000.service";
  s.user_unit = "web.service";
  EXPECT_TRUE((*p)->Evaluate(Request{s, Capability::kRead, "a"}).allowed);
  s.uid = 1001;
  EXPECT_FALSE((*p)->Evaluate(Request{s, Capability::kRead, "a"}).allowed);
}

TEST(PolicyParseTest, CredentialsMapOneUnitAndIdToOneSecretAndBadEntriesNameTheirLine) {
  Result<std::shared_ptr<const Policy>> p = ParsePolicy(R"(version = 1
[[credentials]]
unit = "web.service"
id = "db-password"
path = "apps/web/db"
[[credentials]]
unit = "getty@tty1.service"
id = "db-password"
path = "apps/tty/db"
)",
                                                        "c.toml");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_EQ((*p)->credentials().size(), 2u);
  const CredentialGrant* web = (*p)->FindCredential("web.service", "db-password");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(web->path, "apps/web/db");
  EXPECT_EQ(web->line, 2);
  EXPECT_EQ((*p)->FindCredential("getty@tty1.service", "db-password")->path, "apps/tty/db");
  EXPECT_EQ((*p)->FindCredential("web.service", "db"), nullptr);
  EXPECT_EQ((*p)->FindCredential("api.service", "db-password"), nullptr);
  Subject root;
  EXPECT_FALSE((*p)->Evaluate(Request{root, Capability::kRead, "apps/web/db"}).allowed)
      << "a credential entry grants nothing on the API socket";

  auto entry = [](const std::string& body) { return "version = 1\n[[credentials]]\n" + body; };
  EXPECT_NE(Message(entry("unit = \"web\"\nid = \"a\"\npath = \"p\"\n"))
                .find("policy.toml:3: credential needs unit"),
            std::string::npos);
  EXPECT_NE(Message(entry("unit = \"web.service\"\nid = \"a/b\"\npath = \"p\"\n"))
                .find("policy.toml:4: credential needs id"),
            std::string::npos);
  EXPECT_NE(Message(entry("unit = \"web.service\"\nid = \"a\"\npath = \"../p\"\n"))
                .find("policy.toml:5: credential needs path"),
            std::string::npos);
  EXPECT_NE(
      Message(entry("unit = \"web.service\"\nid = \"a\"\n")).find("policy.toml:2: credential needs path"),
      std::string::npos);
  EXPECT_NE(Message(entry("unit = \"web.service\"\nid = \"a\"\npath = \"p\"\nmode = 1\n"))
                .find("unknown key 'mode'"),
            std::string::npos);
  std::string twice = entry("unit = \"w.service\"\nid = \"a\"\npath = \"p\"\n") +
                      "[[credentials]]\nunit = \"w.service\"\nid = \"a\"\npath = \"q\"\n";
  EXPECT_NE(Message(twice).find("policy.toml:6: duplicate credential 'a' for unit 'w.service'"),
            std::string::npos)
      << Message(twice);
  EXPECT_NE(Message("version = 1\ncredentials = 3\n").find("credentials must be an array"),
            std::string::npos);
}

TEST(PolicyParseTest, ErrorsAreCappedSoAHugeBadFileStaysReadable) {
  std::string text = "version = 1\n";
  for (int i = 0; i < 200; ++i) {
    text += "[roles.r" + std::to_string(i) + "]\ngrants = [ { capabilities = [\"x\"], paths = [\"a\"] } ]\n";
  }
  std::string msg = Message(text);
  EXPECT_EQ(std::count(msg.begin(), msg.end(), '\n'), 49);
}

}  // namespace
}  // namespace sk::policy
