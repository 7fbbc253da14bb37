// The rotation commands of the CLI against a real sealkeepd (docs/cli.md, docs/rotation.md):
// begin (from stdin, or generated), finish and abort by hand, get --stage, ls with a rotation
// in progress and ls --expiring, rotation status; and that no command prints a value it was
// not asked for. The rotator itself (targets, crashes) is tests/rotation/rotator_e2e_test.cc.
#include <gtest/gtest.h>

#include "tests/cli/cli_test_util.h"

namespace sk::testing {
namespace {

using CliRotationTest = CliTest;

TEST_F(CliRotationTest, BeginFinishAndAbortByHandWithStagedReads) {
  Put("db/pw", "old-value");
  CliRun begun = Run("rotation begin db/pw --every 12h", "new-value");
  ASSERT_EQ(begun.status, 0) << begun.err;
  EXPECT_EQ(begun.out, "db/pw: version 2 is pending (txn " + begun.out.substr(begun.out.find("(txn ") + 5));
  EXPECT_EQ(begun.out.find("new-value"), std::string::npos);
  EXPECT_EQ(Get("db/pw"), "old-value");
  EXPECT_EQ(Get("db/pw", "--stage pending"), "new-value");
  CliRun both = Run("get db/pw --stage pending --version 1");
  EXPECT_EQ(both.status, 2) << both.err;
  CliRun again = Run("rotation begin db/pw", "other");
  EXPECT_EQ(again.status, 4) << again.err;
  EXPECT_NE(again.err.find("rotation_in_progress"), std::string::npos) << again.err;
  CliRun ls = Run("ls db");
  EXPECT_NE(ls.out.find("live (rotating to 2)"), std::string::npos) << ls.out;
  CliRun status = Run("rotation status db/pw");
  ASSERT_EQ(status.status, 0) << status.err;
  EXPECT_NE(status.out.find("PENDING"), std::string::npos) << status.out;

  CliRun finished = Run("rotation finish db/pw --version 2");
  ASSERT_EQ(finished.status, 0) << finished.err;
  EXPECT_NE(finished.out.find("db/pw: version 2 is current"), std::string::npos) << finished.out;
  EXPECT_EQ(Get("db/pw"), "new-value");
  EXPECT_EQ(Get("db/pw", "--stage previous"), "old-value");
  status = Run("rotation status");  // every path the agent marks as rotated (no config here)
  ASSERT_EQ(status.status, 0) << status.err;
  EXPECT_NE(status.out.find("db/pw"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("12h"), std::string::npos) << status.out;

  CliRun generated = Run("rotation begin db/pw --generate bytes --length 8 --encoding hex");
  ASSERT_EQ(generated.status, 0) << generated.err;
  const std::string made = Get("db/pw", "--stage pending");
  EXPECT_EQ(made.size(), 16u);
  EXPECT_EQ(generated.out.find(made), std::string::npos);
  CliRun aborted = Run("rotation abort db/pw --version 3 --reason 'changed my mind'");
  ASSERT_EQ(aborted.status, 0) << aborted.err;
  EXPECT_NE(aborted.out.find("was aborted and erased"), std::string::npos) << aborted.out;
  EXPECT_EQ(Get("db/pw"), "new-value");
  CliRun none = Run("rotation finish db/pw --version 3");
  EXPECT_EQ(none.status, 4) << none.err;
  EXPECT_NE(none.err.find("no_pending_rotation"), std::string::npos) << none.err;
}

TEST_F(CliRotationTest, LsExpiringListsOnlyWhatExpiresWithinTheWindowSoonestFirst) {
  ASSERT_EQ(Run("put tls/late --expires-in 1728000", "a").status, 0);  // 20 days
  ASSERT_EQ(Run("put tls/soon --expires-in 7200", "b").status, 0);     // 2 hours
  ASSERT_EQ(Run("put tls/forever", "c").status, 0);
  CliRun week = Run("ls --expiring 7d");
  ASSERT_EQ(week.status, 0) << week.err;
  EXPECT_NE(week.out.find("EXPIRES"), std::string::npos) << week.out;
  EXPECT_NE(week.out.find("tls/soon"), std::string::npos) << week.out;
  EXPECT_EQ(week.out.find("tls/late"), std::string::npos) << week.out;
  EXPECT_EQ(week.out.find("tls/forever"), std::string::npos) << week.out;
  CliRun month = Run("ls tls --expiring 30d");
  ASSERT_EQ(month.status, 0) << month.err;
  ASSERT_NE(month.out.find("tls/late"), std::string::npos) << month.out;
  EXPECT_LT(month.out.find("tls/soon"), month.out.find("tls/late")) << month.out;
  CliRun bad = Run("ls --expiring soon");
  EXPECT_EQ(bad.status, 2) << bad.err;
  CliRun empty = Run("ls tls/forever --expiring 1d");
  EXPECT_EQ(empty.status, 0);
  EXPECT_NE(empty.err.find("expiring within 1d"), std::string::npos) << empty.err;
}

}  // namespace
}  // namespace sk::testing
