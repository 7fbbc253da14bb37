#include <gtest/gtest.h>
#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "agent/policy/policy.h"

namespace sk::policy {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::sys_days;
using Clock = std::chrono::system_clock;

std::shared_ptr<const Policy> MustParse(const std::string& text) {
  Result<std::shared_ptr<const Policy>> p = ParsePolicy(text, "test.toml");
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? *p : nullptr;
}

// 2025-06-02 is a Monday.
Clock::time_point Utc(int day_of_june, int hour, int minute) {
  using namespace std::chrono;
  return sys_days{year{2025} / June / day{static_cast<unsigned>(day_of_june)}} + hours{hour} +
         minutes{minute};
}

Subject User(std::uint32_t uid, std::string name = "", std::uint32_t gid = 100) {
  Subject s;
  s.uid = uid;
  s.gid = gid;
  s.user = std::move(name);
  s.gids = {gid};
  return s;
}

std::string OneRole(const std::string& caps, const std::string& paths) {
  return "version = 1\n[roles.r]\ngrants = [ { capabilities = [" + caps + "], paths = [" + paths + "] } ]\n";
}

std::string Binding(const std::string& match, const std::string& extra = "") {
  return "[[bindings]]\nname = \"b\"\nroles = [\"r\"]\nmatch = " + match + "\n" + extra;
}

bool Allowed(const Policy& p, const Subject& s, Capability cap, std::string_view path,
             const Labels* labels = nullptr, Clock::time_point t = Utc(2, 12, 0)) {
  return p.Evaluate(Request{s, cap, path, labels, t}).allowed;
}

class EveryCapabilityTest : public ::testing::TestWithParam<Capability> {};

// What a grant of `granted` allows: itself, and for admin the /v1/sys capabilities too.
bool Implies(Capability granted, Capability asked) {
  if (granted == asked) return true;
  return granted == Capability::kAdmin &&
         std::find(kAdminImplies.begin(), kAdminImplies.end(), asked) != kAdminImplies.end();
}

TEST_P(EveryCapabilityTest, IsGrantedOnlyWhereARoleGrantsIt) {
  const Capability cap = GetParam();
  const std::string name(CapabilityName(cap));
  auto p = MustParse(OneRole("\"" + name + "\"", "\"caps/" + name + "/**\"") + Binding("{ uid = 1000 }"));
  ASSERT_TRUE(p);
  Subject alice = User(1000, "alice");
  for (Capability other : kAllCapabilities) {
    EXPECT_EQ(Allowed(*p, alice, other, "caps/" + name + "/x"), Implies(cap, other))
        << "granted " << name << ", asked " << CapabilityName(other);
  }
  EXPECT_FALSE(Allowed(*p, alice, cap, "elsewhere/" + name + "/x"));
  EXPECT_FALSE(Allowed(*p, User(1001, "bob"), cap, "caps/" + name + "/x"));
}

INSTANTIATE_TEST_SUITE_P(All, EveryCapabilityTest, ::testing::ValuesIn(kAllCapabilities),
                         [](const ::testing::TestParamInfo<Capability>& p) {
                           std::string name(CapabilityName(p.param));
                           std::replace(name.begin(), name.end(), '.',
                                        '_');  // "sys.read": no '.' in test names
                           return name;
                         });

TEST(PolicyEvalTest, AdminGrantsEverySysCapabilityAndNoneOfThemGrantsAnother) {
  auto p = MustParse(
      "version = 1\n"
      "[roles.legacy]\ngrants = [ { capabilities = [\"admin\"], paths = [\"sys\"] } ]\n"
      "[roles.monitor]\ngrants = [ { capabilities = [\"sys.read\"], paths = [\"sys\"] } ]\n"
      "[[bindings]]\nname = \"legacy\"\nroles = [\"legacy\"]\nmatch = { uid = 1000 }\n"
      "[[bindings]]\nname = \"monitor\"\nroles = [\"monitor\"]\nmatch = { uid = 1001 }\n");
  ASSERT_TRUE(p);
  for (Capability c : {Capability::kAdmin, Capability::kSysRead, Capability::kRotate, Capability::kReseal,
                       Capability::kRecover, Capability::kSeal}) {
    EXPECT_TRUE(Allowed(*p, User(1000), c, "sys")) << "admin, as before: " << CapabilityName(c);
    EXPECT_EQ(Allowed(*p, User(1001), c, "sys"), c == Capability::kSysRead)
        << "sys.read is only itself: " << CapabilityName(c);
  }
  EXPECT_FALSE(Allowed(*p, User(1000), Capability::kRead, "sys")) << "admin is no secret capability";
  for (Capability c : kAllCapabilities) {
    EXPECT_EQ(ParseCapability(CapabilityName(c)), c) << "names round-trip";
    EXPECT_NE(CapabilityNames().find(CapabilityName(c)), std::string_view::npos);
  }
  CapabilitySet set;
  set.Add(Capability::kSeal);
  EXPECT_TRUE(set.Has(Capability::kSeal));
  EXPECT_FALSE(set.Has(Capability::kAdmin)) << "a sys capability does not make an admin";
}

TEST(PolicyEvalTest, DefaultDenyNamesWhy) {
  auto p = MustParse(OneRole("\"read\"", "\"apps/web/**\"") + Binding("{ uid = 1000 }"));
  Subject alice = User(1000);
  Decision no_binding = p->Evaluate(Request{User(7), Capability::kRead, "apps/web/db"});
  EXPECT_FALSE(no_binding.allowed);
  EXPECT_EQ(no_binding.Reason(), "no_binding");
  Decision no_grant = p->Evaluate(Request{alice, Capability::kWrite, "apps/web/db"});
  EXPECT_FALSE(no_grant.allowed);
  EXPECT_EQ(no_grant.Reason(), "no_grant");
  EXPECT_EQ(no_grant.binding->name, "b");
  Decision bad_path = p->Evaluate(Request{alice, Capability::kRead, "apps//db"});
  EXPECT_EQ(bad_path.Reason(), "invalid_path");
  Decision ok = p->Evaluate(Request{alice, Capability::kRead, "apps/web/db"});
  ASSERT_TRUE(ok.allowed);
  EXPECT_EQ(ok.Reason(), "allowed");
  EXPECT_EQ(ok.role->name, "r");
  EXPECT_EQ(ok.glob->pattern(), "apps/web/**");
  EXPECT_EQ(
      ok.Explanation(Capability::kRead, "apps/web/db"),
      "allowed by binding 'b' (line 4): role 'r' grants read on 'apps/web/db' via 'apps/web/**' (line 3)");
}

TEST(PolicyEvalTest, EachSubjectKindSelectsItsCallers) {
  Subject s = User(1000, "alice", 100);
  s.gids = {100, 27};
  s.groups = {"users", "sudo"};
  s.unit = "web.service";
  s.exe = "/usr/bin/web";
  struct Case {
    const char* match;
    bool want;
  } cases[] = {
      {"{ uid = 1000 }", true},
      {"{ uid = [5, 1000] }", true},
      {"{ uid = 1001 }", false},
      {"{ user = \"alice\" }", true},
      {"{ user = \"bob\" }", false},
      {"{ gid = 100 }", true},
      {"{ gid = 27 }", true},
      {"{ gid = 28 }", false},
      {"{ group = \"sudo\" }", true},
      {"{ group = [\"x\", \"users\"] }", true},
      {"{ group = \"wheel\" }", false},
      {"{ unit = \"web.service\" }", true},
      {"{ unit = \"db.service\" }", false},
      {"{ exe = \"/usr/bin/web\" }", true},
      {"{ exe = \"/usr/bin/curl\" }", false},
      // every key given must match
      {"{ uid = 1000, unit = \"web.service\" }", true},
      {"{ uid = 1000, unit = \"db.service\" }", false},
      {"{ user = \"alice\", group = \"wheel\" }", false},
  };
  for (const Case& c : cases) {
    auto p = MustParse(OneRole("\"read\"", "\"**\"") + Binding(c.match));
    ASSERT_TRUE(p);
    EXPECT_EQ(Allowed(*p, s, Capability::kRead, "x"), c.want) << c.match;
  }
}

TEST(PolicyEvalTest, EmptyIdentityFieldsNeverMatch) {
  Subject anon = User(54321);  // no passwd name, no unit, no exe
  for (const char* m : {"{ user = \"\" }", "{ unit = \"web.service\" }", "{ exe = \"/usr/bin/web\" }"}) {
    Result<std::shared_ptr<const Policy>> p = ParsePolicy(OneRole("\"read\"", "\"**\"") + Binding(m), "t");
    if (!p.ok()) continue;  // an empty user name may be refused outright; either way no access
    EXPECT_FALSE(Allowed(**p, anon, Capability::kRead, "x")) << m;
  }
}

TEST(PolicyEvalTest, LabelConditionsNeedTheSecretsLabels) {
  auto p =
      MustParse(OneRole("\"read\"", "\"**\"") +
                Binding("{ uid = 1 }", "when.labels = { env = [\"prod\", \"staging\"], team = \"web\" }\n"));
  Subject s = User(1);
  Labels prod{{"env", "prod"}, {"team", "web"}};
  Labels staging{{"env", "staging"}, {"team", "web"}, {"extra", "x"}};
  Labels dev{{"env", "dev"}, {"team", "web"}};
  Labels no_team{{"env", "prod"}};
  EXPECT_TRUE(Allowed(*p, s, Capability::kRead, "x", &prod));
  EXPECT_TRUE(Allowed(*p, s, Capability::kRead, "x", &staging));
  EXPECT_FALSE(Allowed(*p, s, Capability::kRead, "x", &dev));
  EXPECT_FALSE(Allowed(*p, s, Capability::kRead, "x", &no_team));
  Decision unknown = p->Evaluate(Request{s, Capability::kRead, "x", nullptr, Utc(2, 12, 0)});
  EXPECT_FALSE(unknown.allowed);
  EXPECT_EQ(unknown.Reason(), "condition_failed");
  EXPECT_EQ(unknown.failed, "labels");
  EXPECT_NE(unknown.Explanation(Capability::kRead, "x").find("labels env=prod|staging team=web"),
            std::string::npos);
}

TEST(PolicyEvalTest, UtcTimeWindowIsHalfOpen) {
  auto p =
      MustParse(OneRole("\"read\"", "\"**\"") +
                Binding("{ uid = 1 }", "when.time = { from = \"08:00\", to = \"18:00\", zone = \"utc\" }\n"));
  Subject s = User(1);
  EXPECT_FALSE(Allowed(*p, s, Capability::kRead, "x", nullptr, Utc(2, 7, 59)));
  EXPECT_TRUE(Allowed(*p, s, Capability::kRead, "x", nullptr, Utc(2, 8, 0)));
  EXPECT_TRUE(Allowed(*p, s, Capability::kRead, "x", nullptr, Utc(2, 17, 59)));
  EXPECT_FALSE(Allowed(*p, s, Capability::kRead, "x", nullptr, Utc(2, 18, 0)));
  Decision d = p->Evaluate(Request{s, Capability::kRead, "x", nullptr, Utc(2, 20, 0)});
  EXPECT_EQ(d.failed, "time");
  EXPECT_NE(d.Explanation(Capability::kRead, "x").find("time window 08:00-18:00 utc"), std::string::npos);
}

TEST(PolicyEvalTest, TimeWindowsWrapPastMidnightAndHonourDays) {
  auto p =
      MustParse(OneRole("\"read\"", "\"**\"") +
                Binding("{ uid = 1 }",
                        "when.time = { from = \"22:00\", to = \"06:00\", zone = \"utc\", days = [\"sat\", "
                        "\"sun\"] }\n"));
  Subject s = User(1);
  EXPECT_TRUE(Allowed(*p, s, Capability::kRead, "x", nullptr, Utc(7, 23, 0)));   // Saturday night
  EXPECT_TRUE(Allowed(*p, s, Capability::kRead, "x", nullptr, Utc(8, 5, 59)));   // Sunday early
  EXPECT_FALSE(Allowed(*p, s, Capability::kRead, "x", nullptr, Utc(8, 6, 0)));   // Sunday 06:00
  EXPECT_FALSE(Allowed(*p, s, Capability::kRead, "x", nullptr, Utc(7, 12, 0)));  // Saturday noon
  EXPECT_FALSE(Allowed(*p, s, Capability::kRead, "x", nullptr, Utc(9, 1, 0)));   // Monday early
  EXPECT_TRUE(Allowed(*p, s, Capability::kRead, "x", nullptr, Utc(8, 23, 30)));  // Sunday night
}

TEST(PolicyEvalTest, LocalTimeWindowFollowsTheHostZone) {
  const char* old = std::getenv("TZ");
  std::string saved = old != nullptr ? old : "";
  ::setenv("TZ", "XST-3", 1);  // local = UTC+3, no DST
  ::tzset();
  auto p = MustParse(
      OneRole("\"read\"", "\"**\"") +
      Binding("{ uid = 1 }", "when.time = { from = \"09:00\", to = \"10:00\", zone = \"local\" }\n"));
  Subject s = User(1);
  EXPECT_TRUE(Allowed(*p, s, Capability::kRead, "x", nullptr, Utc(2, 6, 30)));   // 09:30 local
  EXPECT_FALSE(Allowed(*p, s, Capability::kRead, "x", nullptr, Utc(2, 9, 30)));  // 12:30 local
  if (old != nullptr) {
    ::setenv("TZ", saved.c_str(), 1);
  } else {
    ::unsetenv("TZ");
  }
  ::tzset();
}

TEST(PolicyEvalTest, SubjectConditionsNarrowABinding) {
  auto p = MustParse(OneRole("\"write\"", "\"apps/**\"") +
                     Binding("{ group = \"deploy\" }",
                             "when.subject = { groups = [\"oncall\"], exe_prefix = [\"/opt/deploy/\", "
                             "\"/usr/lib/deploy/\"] }\n"));
  Subject s = User(5, "dana");
  s.groups = {"deploy", "oncall"};
  s.exe = "/opt/deploy/bin/push";
  EXPECT_TRUE(Allowed(*p, s, Capability::kWrite, "apps/web"));
  s.exe = "/usr/bin/curl";
  EXPECT_FALSE(Allowed(*p, s, Capability::kWrite, "apps/web"));
  s.exe = "";
  EXPECT_FALSE(Allowed(*p, s, Capability::kWrite, "apps/web"));
  s.exe = "/usr/lib/deploy/x";
  EXPECT_TRUE(Allowed(*p, s, Capability::kWrite, "apps/web"));
  s.groups = {"deploy"};
  Decision d = p->Evaluate(Request{s, Capability::kWrite, "apps/web"});
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.failed, "subject");
}

TEST(PolicyEvalTest, AnExePrefixMatchesOnlyOnAPathBoundary) {
  auto p =
      MustParse(OneRole("\"read\"", "\"apps/**\"") +
                Binding("{ uid = 5 }", "when.subject = { exe_prefix = [\"/usr/bin\", \"/opt/tool/\"] }\n"));
  Subject s = User(5);
  for (const char* inside : {"/usr/bin/curl", "/usr/bin", "/usr/bin/sub/x", "/opt/tool/run"}) {
    s.exe = inside;
    EXPECT_TRUE(Allowed(*p, s, Capability::kRead, "apps/web")) << inside;
  }
  for (const char* outside :
       {"/usr/binx/curl", "/usr/bin-evil", "/usr/bi", "/opt/toolbox/run", "/opt/tool"}) {
    s.exe = outside;
    EXPECT_FALSE(Allowed(*p, s, Capability::kRead, "apps/web")) << outside;
  }
  EXPECT_FALSE(ExeUnderPrefix("/usr/bin/curl", ""));
}

TEST(PolicyEvalTest, AnyBindingThatGrantsWinsWhateverTheOrder) {
  std::string roles =
      "version = 1\n"
      "[roles.reader]\ngrants = [ { capabilities = [\"read\"], paths = [\"apps/**\"] } ]\n"
      "[roles.writer]\ngrants = [ { capabilities = [\"write\"], paths = [\"apps/web/*\"] } ]\n";
  std::string b1 = "[[bindings]]\nname = \"one\"\nroles = [\"reader\"]\nmatch = { uid = 1 }\n";
  std::string b2 =
      "[[bindings]]\nname = \"two\"\nroles = [\"writer\"]\nmatch = { group = \"web\" }\n"
      "when.time = { from = \"00:00\", to = \"24:00\", zone = \"utc\" }\n";
  Subject s = User(1);
  s.groups = {"web"};
  for (const std::string& text : {roles + b1 + b2, roles + b2 + b1}) {
    auto p = MustParse(text);
    EXPECT_TRUE(Allowed(*p, s, Capability::kRead, "apps/web/x"));
    EXPECT_TRUE(Allowed(*p, s, Capability::kWrite, "apps/web/x"));
    EXPECT_FALSE(Allowed(*p, s, Capability::kWrite, "apps/web/x/y"));
    EXPECT_FALSE(Allowed(*p, s, Capability::kDelete, "apps/web/x"));
  }
}

TEST(PolicyEvalTest, ListVisibilityFollowsTheListCapability) {
  auto p = MustParse(
      "version = 1\n"
      "[roles.lister]\ngrants = [ { capabilities = [\"list\"], paths = [\"apps/**\"] } ]\n"
      "[roles.blind-reader]\ngrants = [ { capabilities = [\"read\"], paths = [\"vault/*\"] } ]\n"
      "[[bindings]]\nname = \"l\"\nroles = [\"lister\"]\nmatch = { uid = 1 }\n"
      "[[bindings]]\nname = \"r\"\nroles = [\"blind-reader\"]\nmatch = { uid = 2 }\n");
  const auto now = Clock::now();
  EXPECT_TRUE(p->MayLearnExists(User(1), "apps", nullptr, now));
  EXPECT_TRUE(p->MayLearnExists(User(1), "apps/web/db", nullptr, now));
  EXPECT_FALSE(p->MayLearnExists(User(1), "vault/x", nullptr, now));
  // Reading without list: the daemon answers a denied request for a path the caller
  // cannot list exactly like a missing one.
  EXPECT_FALSE(p->MayLearnExists(User(2), "vault/x", nullptr, now));
  EXPECT_FALSE(p->MayLearnExists(User(2), "apps/web/db", nullptr, now));
  EXPECT_FALSE(p->MayLearnExists(User(3), "apps/web/db", nullptr, now));
}

TEST(PolicyEvalTest, TraceSaysWhatEachBindingThinks) {
  auto p = MustParse(OneRole("\"read\"", "\"apps/**\"") + Binding("{ unit = \"web.service\" }") +
                     "[[bindings]]\nname = \"c\"\nroles = [\"r\"]\nmatch = { uid = 1 }\n"
                     "when.labels = { env = \"prod\" }\n");
  Subject s = User(1);
  std::vector<std::string> trace = p->Trace(Request{s, Capability::kRead, "apps/x"});
  ASSERT_EQ(trace.size(), 2U);
  EXPECT_EQ(trace[0], "binding 'b' (line 4): not the caller (needs unit web.service)");
  EXPECT_EQ(
      trace[1],
      "binding 'c' (line 8): role 'r' grants it via 'apps/**', but condition labels env=prod does not hold");
}

}  // namespace
}  // namespace sk::policy
