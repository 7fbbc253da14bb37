// `sealkeep put|get|ls|versions|rm|undelete|destroy|rollback|floor` against a real agent.
#include <nlohmann/json.hpp>

#include "tests/cli/cli_test_util.h"

namespace sk::testing {
namespace {

using nlohmann::json;
using CliSecrets = CliTest;

std::string AllBytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s + std::string("\0\xff\n", 3);
}

TEST_F(CliSecrets, PutFromStdinThenGetWritesExactlyTheValue) {
  CliRun put = Run("put db/pw", "s3cret");
  ASSERT_EQ(put.status, 0) << put.err;
  EXPECT_EQ(put.out.rfind("db/pw: version 1 (txn ", 0), 0u) << put.out;
  EXPECT_EQ(Get("db/pw"), "s3cret");  // no newline added

  CliRun put2 = Run("put db/pw", "with newline\n");
  EXPECT_EQ(put2.out.rfind("db/pw: version 2 (txn ", 0), 0u) << put2.out;
  EXPECT_EQ(Get("db/pw"), "with newline\n");  // none stripped
}

TEST_F(CliSecrets, BinaryValuesRoundTripFromAFileAndFromStdin) {
  WriteFile(dir_.Join("value.bin"), AllBytes(), 0600);
  CliRun put = Run("put bin/file --value-file " + Quote(dir_.Join("value.bin")));
  ASSERT_EQ(put.status, 0) << put.err;
  EXPECT_EQ(Get("bin/file"), AllBytes());
  EXPECT_EQ(Put("bin/stdin", AllBytes()), 1u);
  EXPECT_EQ(Get("bin/stdin"), AllBytes());

  CliRun missing = Run("put bin/x --value-file " + Quote(dir_.Join("nope")));
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.err.find("cannot read"), std::string::npos) << missing.err;
}

TEST_F(CliSecrets, GetReadsAnOlderVersionAndPrintsJsonOnRequest) {
  Put("app/key", "one");
  Put("app/key", "two");
  EXPECT_EQ(Get("app/key", "--version 1"), "one");
  CliRun j = Run("get app/key --json");
  ASSERT_EQ(j.status, 0) << j.err;
  json body = json::parse(j.out);
  EXPECT_EQ(body["version"], 2);
  EXPECT_EQ(body["value"], "two");
  EXPECT_EQ(body["path"], "app/key");
  CliRun global = Run("--json get app/key --version 1");
  EXPECT_EQ(json::parse(global.out)["value"], "one");
}

TEST_F(CliSecrets, PutSendsCasLabelsExpiryAndMaxVersions) {
  CliRun first =
      Run("put cfg/a --cas 0 --label env=prod --label team=db --max-versions 5 --expires-in 3600", "v");
  ASSERT_EQ(first.status, 0) << first.err;
  CliRun again = Run("put cfg/a --cas 0", "v2");
  EXPECT_EQ(again.status, 4);
  EXPECT_NE(again.err.find("cas_mismatch"), std::string::npos) << again.err;
  CliRun ok = Run("put cfg/a --cas 1", "v2");
  EXPECT_EQ(ok.status, 0) << ok.err;
  CliRun j = Run("get cfg/a --json --version 1");
  json body = json::parse(j.out);
  EXPECT_EQ(body["labels"]["env"], "prod");
  EXPECT_EQ(body["labels"]["team"], "db");
  EXPECT_GT(body["expires_ms"].get<std::uint64_t>(), 0u);
  CliRun bad = Run("put cfg/a --label novalue", "v");
  EXPECT_EQ(bad.status, 2);
}

TEST_F(CliSecrets, LsAndVersionsPrintAlignedTables) {
  Put("svc/a", "1");
  Put("svc/b", "1");
  Put("svc/b", "2");
  Put("other/c", "1");
  CliRun ls = Run("ls svc");
  ASSERT_EQ(ls.status, 0) << ls.err;
  EXPECT_EQ(ls.out.rfind("PATH ", 0), 0u) << ls.out;
  EXPECT_NE(ls.out.find("svc/a"), std::string::npos);
  EXPECT_NE(ls.out.find("svc/b"), std::string::npos);
  EXPECT_EQ(ls.out.find("other/c"), std::string::npos);
  EXPECT_EQ(ls.out.find("s3cret"), std::string::npos);
  json all = json::parse(Run("--json ls").out);
  EXPECT_EQ(all["paths"].size(), 3u);
  CliRun limited = Run("ls --limit 1");
  EXPECT_NE(limited.err.find("raise --limit"), std::string::npos) << limited.err;

  CliRun v = Run("versions svc/b");
  ASSERT_EQ(v.status, 0) << v.err;
  EXPECT_EQ(v.out.rfind("VERSION ", 0), 0u) << v.out;
  EXPECT_NE(v.out.find("live"), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("yes"), std::string::npos) << v.out;
  json vj = json::parse(Run("versions svc/b --json").out);
  EXPECT_EQ(vj["versions"].size(), 2u);
}

TEST_F(CliSecrets, RmHidesAVersionAndUndeleteBringsItBack) {
  Put("tmp/x", "keep me");
  CliRun rm = Run("rm tmp/x");
  ASSERT_EQ(rm.status, 0) << rm.err;
  EXPECT_NE(rm.out.find("tmp/x: version 1 deleted"), std::string::npos) << rm.out;
  CliRun gone = Run("get tmp/x");
  EXPECT_EQ(gone.status, 3) << gone.err;
  CliRun un = Run("undelete tmp/x");
  ASSERT_EQ(un.status, 0) << un.err;
  EXPECT_EQ(Get("tmp/x"), "keep me");
  EXPECT_EQ(Run("rm tmp/x --version 1").status, 0);
  EXPECT_EQ(Run("undelete tmp/x --version 1").status, 0);
  EXPECT_EQ(Run("rm tmp/x --version 0").status, 2);  // versions start at 1
}

TEST_F(CliSecrets, DestroyErasesAVersionForGood) {
  Put("d/x", "old");
  Put("d/x", "new");
  CliRun d = Run("destroy d/x --version 1");
  ASSERT_EQ(d.status, 0) << d.err;
  EXPECT_NE(d.out.find("version 1 destroyed"), std::string::npos) << d.out;
  CliRun g = Run("get d/x --version 1");
  EXPECT_EQ(g.status, 3) << g.err;
  EXPECT_NE(g.err.find("destroyed"), std::string::npos) << g.err;
  EXPECT_EQ(Get("d/x"), "new");
  EXPECT_EQ(Run("destroy d/x").status, 2);  // --version is required
}

TEST_F(CliSecrets, RollbackWritesANewVersionAndRefusalsNameTheirReason) {
  Put("r/x", "v1");
  Put("r/x", "v2");
  Put("r/x", "v3");
  CliRun rb = Run("rollback r/x --to 1");
  ASSERT_EQ(rb.status, 0) << rb.err;
  EXPECT_EQ(rb.out.rfind("r/x: version 4, a copy of version 1 (txn ", 0), 0u) << rb.out;
  EXPECT_EQ(Get("r/x"), "v1");

  CliRun cas = Run("rollback r/x --to 2 --cas 3");
  EXPECT_EQ(cas.status, 4);
  EXPECT_NE(cas.err.find("cas_mismatch"), std::string::npos) << cas.err;

  CliRun floor = Run("floor r/x 3");
  ASSERT_EQ(floor.status, 0) << floor.err;
  EXPECT_EQ(floor.out.rfind("r/x: floor 3 (txn ", 0), 0u) << floor.out;
  CliRun below = Run("rollback r/x --to 2");
  EXPECT_EQ(below.status, 4);
  EXPECT_NE(below.err.find("below_floor"), std::string::npos) << below.err;
  CliRun lower = Run("floor r/x 2");
  EXPECT_EQ(lower.status, 4) << lower.err;

  ASSERT_EQ(Run("destroy r/x --version 3").status, 0);
  CliRun destroyed = Run("rollback r/x --to 3");
  EXPECT_EQ(destroyed.status, 4);
  EXPECT_NE(destroyed.err.find("destroyed"), std::string::npos) << destroyed.err;
  EXPECT_EQ(Get("r/x"), "v1");  // nothing changed by the refusals
}

TEST_F(CliSecrets, ErrorsExitWithTheirCodes) {
  CliRun missing = Run("get no/such");
  EXPECT_EQ(missing.status, 3);
  EXPECT_NE(missing.err.find("sealkeep: not_found: "), std::string::npos) << missing.err;
  CliRun json_err = Run("--json get no/such");
  EXPECT_EQ(json_err.status, 3);
  EXPECT_EQ(json::parse(json_err.out)["error"]["code"], "not_found") << json_err.out;
  EXPECT_TRUE(json::parse(json_err.out)["error"].contains("request_id"));

  CliRun bad_path = Run("put ../etc", "x");
  EXPECT_EQ(bad_path.status, 2);
  EXPECT_NE(bad_path.err.find("bad_path"), std::string::npos) << bad_path.err;
  CliRun too_big = Run("put big/x", std::string(70 * 1024, 'a'));
  EXPECT_EQ(too_big.status, 2) << too_big.err;
  EXPECT_NE(too_big.err.find("too_large"), std::string::npos) << too_big.err;
  EXPECT_EQ(Run("get").status, 2);  // PATH is required
}

TEST_F(CliSecrets, HelpSaysWhereTheValueComesFromAndOffersNoValueFlag) {
  CliRun help = Run("put --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("stdin"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("--value-file"), std::string::npos);
  EXPECT_EQ(help.out.find("--value "), std::string::npos);
  EXPECT_EQ(help.out.find("--value="), std::string::npos);
  CliRun arg = Run("put x/y --value hunter2");
  EXPECT_EQ(arg.status, 2);  // there is no such flag
  for (const char* cmd :
       {"get", "ls", "versions", "rm", "undelete", "destroy", "rollback", "floor", "txn", "snapshot create",
        "snapshot restore", "verify", "recover", "status", "tpm reseal"}) {
    CliRun h = Run(std::string(cmd) + " --help");
    EXPECT_EQ(h.status, 0) << cmd << ": " << h.err;
  }
}

}  // namespace
}  // namespace sk::testing
