// The rotator's config file (tools/cli/rotation_config.h): a full file, every kind of
// error with its file:line and key, durations, and the size cap.
#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "tests/fixtures/temp_dir.h"
#include "tools/cli/rotation_config.h"

namespace sk::testing {
namespace {

using cli::ExecTargetSpec;
using cli::ParseDuration;
using cli::ParseRotationConfig;
using cli::PostgresqlTargetSpec;
using std::chrono::seconds;

constexpr const char* kGood = R"TOML(# the rotator's schedule
[[rotation]]
path = "db/app/password"
every = "30d"
generator = { type = "password", length = 32, classes = ["lower","upper","digit","symbol"], exclude = "\"'\\`" }
target = { type = "postgresql", host = "/run/postgresql", port = 5433, dbname = "app", role = "app", admin_user = "sealkeep_rotator", admin_secret = "db/admin/password" }

[[rotation]]
path = "api/thing.key"
every = "12h"
generator = { type = "bytes", length = 32, encoding = "hex" }
target = { type = "exec", program = "/usr/local/bin/rotate-thing", args = ["--x", "y z"], timeout = "2m" }

[[rotation]]
path = "db/other"
every = "1m"
[rotation.target]
type = "postgresql"
host = "db.example"
role = "other"
admin_user = "rot"
admin_secret = "db/admin/password"

[[rotation]]
path = "svc/manual"
every = "90s"
target = { type = "exec", program = "/usr/local/bin/rotate-manual" }
)TOML";

TEST(RotationConfigTest, AGoodFileGivesEveryEntryWithItsDefaults) {
  auto r = ParseRotationConfig(kGood, "rotation.toml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 4u);

  const cli::RotationEntry& pg = (*r)[0];
  EXPECT_EQ(pg.path, "db/app/password");
  EXPECT_EQ(pg.every, seconds(30 * 86400));
  EXPECT_EQ(pg.generator, nlohmann::json::parse(R"({"type": "password", "length": 32,
      "classes": ["lower", "upper", "digit", "symbol"], "exclude": "\"'\\`"})"));
  EXPECT_EQ(pg.admin_secret, "db/admin/password");
  const auto* p = std::get_if<PostgresqlTargetSpec>(&pg.target);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->host, "/run/postgresql");
  EXPECT_EQ(p->port, 5433);
  EXPECT_EQ(p->dbname, "app");
  EXPECT_EQ(p->role, "app");
  EXPECT_EQ(p->admin_user, "sealkeep_rotator");

  const cli::RotationEntry& ex = (*r)[1];
  EXPECT_EQ(ex.every, seconds(12 * 3600));
  EXPECT_EQ(ex.generator, nlohmann::json::parse(R"({"type": "bytes", "length": 32, "encoding": "hex"})"));
  EXPECT_EQ(ex.admin_secret, "");
  const auto* e = std::get_if<ExecTargetSpec>(&ex.target);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->program, "/usr/local/bin/rotate-thing");
  EXPECT_EQ(e->args, (std::vector<std::string>{"--x", "y z"}));
  EXPECT_EQ(e->timeout_s, seconds(120));

  const auto* other = std::get_if<PostgresqlTargetSpec>(&(*r)[2].target);
  ASSERT_NE(other, nullptr) << "a [rotation.target] table works as the inline one";
  EXPECT_EQ(other->port, 5432);
  EXPECT_EQ(other->dbname, "postgres");
  EXPECT_EQ((*r)[2].every, seconds(60));

  EXPECT_TRUE((*r)[3].generator.empty()) << "no generator: the rotator must be given a value";
  EXPECT_EQ(std::get<ExecTargetSpec>((*r)[3].target).timeout_s, seconds(30));
  EXPECT_TRUE(std::get<ExecTargetSpec>((*r)[3].target).args.empty());
}

TEST(RotationConfigTest, AnEmptyFileHasNoEntries) {
  auto r = ParseRotationConfig("# nothing rotates yet\n", "rotation.toml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->empty());
}

struct BadCase {
  const char* name;
  std::string toml;
  int line;
  const char* needle;  // in the message after "rotation.toml:<line>: "
};

// A valid entry head (lines 1-3) followed by `rest`.
std::string Entry(const std::string& rest, const std::string& every = "30d",
                  const std::string& path = "db/app") {
  return "[[rotation]]\npath = \"" + path + "\"\nevery = \"" + every + "\"\n" + rest;
}
const std::string kExec = "target = { type = \"exec\", program = \"/bin/true\" }\n";
const std::string kPg =
    "target = { type = \"postgresql\", host = \"/run/postgresql\", role = \"app\", "
    "admin_user = \"rot\", admin_secret = \"db/admin\" }\n";

class RotationConfigErrorTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(RotationConfigErrorTest, NamesTheFileLineAndKey) {
  const BadCase& c = GetParam();
  auto r = ParseRotationConfig(c.toml, "rotation.toml");
  ASSERT_FALSE(r.ok()) << c.toml;
  EXPECT_EQ(r.status().reason(), "bad_config");
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  const std::string prefix = "rotation.toml:" + std::to_string(c.line) + ": ";
  EXPECT_EQ(std::string(r.status().message()).rfind(prefix, 0), 0u) << r.status().ToString();
  EXPECT_NE(r.status().message().find(c.needle), std::string::npos) << r.status().ToString();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, RotationConfigErrorTest,
    ::testing::Values(
        BadCase{"BadDurationUnit", Entry(kExec, "30x"), 3, "rotation[1].every \"30x\" is not a duration"},
        BadCase{"DurationUnderAMinute", Entry(kExec, "59s"), 3, "rotation[1].every must be at least 1m"},
        BadCase{"DurationNotAString", "[[rotation]]\npath = \"a\"\nevery = 30\n" + kExec, 3,
                "rotation[1].every must be a string"},
        BadCase{"UnknownEntryKey", Entry("evry = \"1d\"\n" + kExec), 4, "unknown key rotation[1].evry"},
        BadCase{"UnknownTargetKey",
                Entry("target = { type = \"exec\", program = \"/bin/true\", user = \"x\" }\n"), 4,
                "unknown key rotation[1].target.user"},
        BadCase{"AdminSecretOnExec",
                Entry("target = { type = \"exec\", program = \"/bin/true\", admin_secret = \"a/b\" }\n"), 4,
                "unknown key rotation[1].target.admin_secret"},
        BadCase{"UnknownGeneratorKey", Entry("generator = { type = \"bytes\", lenght = 3 }\n" + kExec), 4,
                "unknown key rotation[1].generator.lenght"},
        BadCase{"UnknownTopLevelKey", "[rotations]\npath = \"a\"\n", 1, "unknown key rotations"},
        BadCase{"DuplicatePath", Entry(kExec) + "\n" + Entry(kExec, "1d"), 7,
                "rotation[2].path db/app is already rotated at line 2"},
        BadCase{"EmptySegmentInPath", Entry(kExec, "1d", "db//app"), 2,
                "rotation[1].path is not a sealkeep path"},
        BadCase{"DotDotInPath", Entry(kExec, "1d", "db/../app"), 2,
                "rotation[1].path is not a sealkeep path"},
        BadCase{"SpaceInPath", Entry(kExec, "1d", "db/my app"), 2, "outside [A-Za-z0-9._-/]"},
        BadCase{"LongPath", Entry(kExec, "1d", std::string(257, 'a')), 2, "longer than 256 bytes"},
        BadCase{
            "BadAdminSecretPath",
            Entry("target = { type = \"postgresql\", host = \"/h\", role = \"app\", admin_user = \"rot\", "
                  "admin_secret = \"/db/admin\" }\n"),
            4, "rotation[1].target.admin_secret is not a sealkeep path"},
        BadCase{"MissingPath", "[[rotation]]\nevery = \"1d\"\n" + kExec, 1, "rotation[1].path is required"},
        BadCase{"MissingEvery", "[[rotation]]\npath = \"a\"\n" + kExec, 1, "rotation[1].every is required"},
        BadCase{"MissingTarget", Entry(""), 1, "rotation[1].target is required"},
        BadCase{"TargetNotATable", Entry("target = \"exec\"\n"), 4, "rotation[1].target must be a table"},
        BadCase{"MissingTargetType", Entry("target = { program = \"/bin/true\" }\n"), 4,
                "rotation[1].target.type is required"},
        BadCase{"UnknownTargetType", Entry("target = { type = \"mysql\" }\n"), 4,
                "rotation[1].target.type is \"postgresql\" or \"exec\""},
        BadCase{"MissingRole",
                Entry("target = { type = \"postgresql\", host = \"/h\", admin_user = \"rot\", "
                      "admin_secret = \"db/admin\" }\n"),
                4, "rotation[1].target.role is required"},
        BadCase{
            "MissingAdminSecret",
            Entry(
                "target = { type = \"postgresql\", host = \"/h\", role = \"app\", admin_user = \"rot\" }\n"),
            4, "rotation[1].target.admin_secret is required"},
        BadCase{"MissingHostInATable",
                Entry("[rotation.target]\ntype = \"postgresql\"\nrole = \"app\"\nadmin_user = \"r\"\n"
                      "admin_secret = \"a\"\n"),
                4, "rotation[1].target.host is required"},
        BadCase{"MissingProgram", Entry("target = { type = \"exec\" }\n"), 4,
                "rotation[1].target.program is required"},
        BadCase{"RelativeProgram", Entry("target = { type = \"exec\", program = \"bin/x\" }\n"), 4,
                "rotation[1].target.program must be an absolute path"},
        BadCase{"LongRole",
                Entry("target = { type = \"postgresql\", host = \"/h\", role = \"" + std::string(64, 'r') +
                      "\", admin_user = \"rot\", admin_secret = \"db/admin\" }\n"),
                4, "rotation[1].target.role is longer than PostgreSQL's 63 bytes"},
        BadCase{"PortOutOfRange",
                Entry("target = { type = \"postgresql\", host = \"/h\", port = 70000, role = \"a\", "
                      "admin_user = \"r\", admin_secret = \"a\" }\n"),
                4, "rotation[1].target.port must be an integer from 1 to 65535"},
        BadCase{"TimeoutTooLong", Entry("target = { type = \"exec\", program = \"/x\", timeout = \"2h\" }\n"),
                4, "rotation[1].target.timeout must be from 1s to 1h"},
        BadCase{"ArgsNotStrings", Entry("target = { type = \"exec\", program = \"/x\", args = [1] }\n"), 4,
                "rotation[1].target.args must be a list of strings"},
        BadCase{"NulInAString", Entry("target = { type = \"exec\", program = \"/x\\u0000y\" }\n"), 4,
                "rotation[1].target.program must be a non-empty string without NUL bytes"},
        BadCase{"UnknownGeneratorType", Entry("generator = { type = \"uuid\" }\n" + kExec), 4,
                "rotation[1].generator.type is \"password\" or \"bytes\""},
        BadCase{"UnknownCharacterClass",
                Entry("generator = { type = \"password\", classes = [\"lower\", \"emoji\"] }\n" + kExec), 4,
                "rotation[1].generator.classes holds"},
        BadCase{"BadEncoding", Entry("generator = { type = \"bytes\", encoding = \"base32\" }\n" + kExec), 4,
                "rotation[1].generator.encoding is \"hex\" or \"base64\""},
        BadCase{"ZeroLength", Entry("generator = { type = \"bytes\", length = 0 }\n" + kExec), 4,
                "rotation[1].generator.length must be an integer from 1"},
        BadCase{"PasswordKeyOnBytes",
                Entry("generator = { type = \"bytes\", classes = [\"lower\"] }\n" + kExec), 4,
                "unknown key rotation[1].generator.classes"},
        BadCase{"SecondEntryIsNamedSo",
                Entry(kExec) + "[[rotation]]\npath = \"b\"\nevery = \"1d\"\n" + kPg + "bogus = 1\n", 9,
                "unknown key rotation[2].bogus"},
        BadCase{"RotationNotTables", "rotation = 3\n", 1, "rotation must be [[rotation]] tables"},
        BadCase{"TomlSyntax", Entry("target = { type = \"exec\",\n"), 4, ""}),
    [](const ::testing::TestParamInfo<BadCase>& p) { return std::string(p.param.name); });

TEST(RotationConfigTest, ParseDurationTakesAWholeNumberAndAUnit) {
  EXPECT_EQ(*ParseDuration("1s"), seconds(1));
  EXPECT_EQ(*ParseDuration("90s"), seconds(90));
  EXPECT_EQ(*ParseDuration("15m"), seconds(900));
  EXPECT_EQ(*ParseDuration("12h"), seconds(43200));
  EXPECT_EQ(*ParseDuration("30d"), seconds(2592000));
  EXPECT_EQ(*ParseDuration("36500d"), seconds(36500LL * 86400)) << "a century, as the agent allows";
  for (const char* bad : {"", "s", "10", "-5m", "+5m", "1.5h", "0m", "5 m", " 5m", "5M", "5w", "36501d",
                          "99999999999999999999999d", "0x10s"}) {
    auto d = ParseDuration(bad);
    EXPECT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.status().reason(), "bad_duration") << bad;
  }
}

TEST(RotationConfigTest, LoadReadsTheFileAndRefusesAMissingOrOversizedOne) {
  TempDir dir("rotation-config");
  const std::string file = dir.Join("rotation.toml");
  WriteFile(file, kGood);
  auto r = cli::LoadRotationConfig(file);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->size(), 4u);

  auto missing = cli::LoadRotationConfig(dir.Join("nope.toml"));
  EXPECT_EQ(missing.status().reason(), "config_missing");

  WriteFile(file, std::string(kGood) + "#" + std::string(cli::kMaxRotationConfig, 'x') + "\n");
  auto big = cli::LoadRotationConfig(file);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().reason(), "bad_config");
  EXPECT_NE(big.status().message().find("larger than 1 MiB"), std::string::npos) << big.status().ToString();
}

TEST(RotationConfigTest, ErrorsNameTheFileTheyCameFrom) {
  TempDir dir("rotation-config");
  const std::string file = dir.Join("rotation.toml");
  WriteFile(file, Entry(kExec, "1x"));
  auto r = cli::LoadRotationConfig(file);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(std::string(r.status().message()).rfind(file + ":3: rotation[1].every", 0), 0u)
      << r.status().ToString();
}

}  // namespace
}  // namespace sk::testing

namespace sk::testing {
namespace {

// [[lease]] tables (rotation_config.h): a good one with its defaults, and each error.
constexpr const char* kLeaseDb =
    "database = { host = \"/run/postgresql\", admin_user = \"rot\", admin_secret = \"db/admin\" }\n";
constexpr const char* kLeaseCreate =
    "create = [\"CREATE ROLE {{role}} LOGIN PASSWORD {{password}} VALID UNTIL {{valid_until}}\"]\n";

std::string Lease(const std::string& rest) { return "[[lease]]\nname = \"pg/ro\"\n" + rest; }

TEST(LeaseConfigTest, AGoodLeaseWithItsDefaultsAndRotationsBesideIt) {
  const std::string text = Lease(std::string(kLeaseDb) + kLeaseCreate) +
                           "[[rotation]]\npath = \"a\"\nevery = \"1d\"\n"
                           "target = { type = \"exec\", program = \"/bin/true\" }\n";
  auto leases = cli::ParseLeaseConfig(text, "rotation.toml");
  ASSERT_TRUE(leases.ok()) << leases.status().ToString();
  ASSERT_EQ(leases->size(), 1u);
  const cli::LeaseEntry& e = (*leases)[0];
  EXPECT_EQ(e.name, "pg/ro");
  EXPECT_EQ(e.max_ttl, std::chrono::hours(24));
  EXPECT_EQ(e.db.host, "/run/postgresql");
  EXPECT_EQ(e.db.port, 5432);
  EXPECT_EQ(e.db.dbname, "postgres");
  EXPECT_EQ(e.db.admin_user, "rot");
  EXPECT_EQ(e.admin_secret, "db/admin");
  EXPECT_EQ(e.create.size(), 1u);
  EXPECT_TRUE(e.revoke.empty());
  // The rotations of the same file still parse, leases beside them.
  auto rotations = cli::ParseRotationConfig(text, "rotation.toml");
  ASSERT_TRUE(rotations.ok()) << rotations.status().ToString();
  EXPECT_EQ(rotations->size(), 1u);
}

TEST(LeaseConfigTest, EachErrorNamesTheLineAndKey) {
  struct Case {
    std::string toml;
    int line;
    const char* needle;
  };
  const Case cases[] = {
      {Lease(kLeaseDb), 1, "lease[1].create is required"},
      {Lease(std::string(kLeaseDb) + "create = [\"CREATE ROLE {{role}} PASSWORD {{password}}\"]\n"), 4,
       "lease[1].create must use {{valid_until}}"},
      {Lease(std::string(kLeaseDb) + kLeaseCreate + "revoke = [\"DROP ROLE {{rol}}\"]\n"), 5,
       "lease[1].revoke holds {{rol}}"},
      {Lease(std::string(kLeaseDb) + kLeaseCreate +
             "revoke = [\"ALTER ROLE {{role}} PASSWORD {{password}}\"]\n"),
       5, "lease[1].revoke cannot use {{password}}"},
      {Lease(std::string(kLeaseDb) + kLeaseCreate + "max_ttl = \"400d\"\n"), 5,
       "lease[1].max_ttl must be from 1s to 365d"},
      {Lease("database = { host = \"/run/postgresql\", admin_user = \"rot\" }\n" + std::string(kLeaseCreate)),
       3, "lease[1].database.admin_secret is required"},
      {Lease(std::string(kLeaseDb) + kLeaseCreate) + Lease(std::string(kLeaseDb) + kLeaseCreate), 6,
       "lease[2].name pg/ro is already a lease at line 2"},
      {"[[lease]]\nname = \"../x\"\n" + std::string(kLeaseDb) + kLeaseCreate, 2,
       "lease[1].name is not a sealkeep path"},
      {"lease = 1\n", 1, "lease must be [[lease]] tables"},
  };
  for (const Case& c : cases) {
    auto r = cli::ParseLeaseConfig(c.toml, "rotation.toml");
    ASSERT_FALSE(r.ok()) << c.toml;
    EXPECT_EQ(r.status().reason(), "bad_config");
    const std::string prefix = "rotation.toml:" + std::to_string(c.line) + ": ";
    EXPECT_EQ(std::string(r.status().message()).rfind(prefix, 0), 0u) << r.status().ToString();
    EXPECT_NE(r.status().message().find(c.needle), std::string::npos) << r.status().ToString();
    // The rotator reading the same file refuses it too.
    EXPECT_FALSE(cli::ParseRotationConfig(c.toml, "rotation.toml").ok()) << c.toml;
  }
}

}  // namespace
}  // namespace sk::testing
