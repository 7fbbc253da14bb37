#include "agent/policy/default_policy.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "agent/policy/policy.h"
#include "agent/policy/policy_holder.h"
#include "tests/fixtures/temp_dir.h"

namespace sk::policy {
namespace {

TEST(DefaultPolicyTest, RootAndTheInvokingUserAreAdminsAndNobodyElseIsAnything) {
  Result<std::shared_ptr<const Policy>> p = ParsePolicy(DefaultPolicyText(1000, "alice"), "policy.toml");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  Subject root;
  Subject alice;
  alice.uid = 1000;
  Subject bob;
  bob.uid = 1001;
  bob.groups = {"root", "alice"};
  for (Capability cap : kAllCapabilities) {
    EXPECT_TRUE((*p)->Evaluate(Request{root, cap, "any/path"}).allowed);
    EXPECT_TRUE((*p)->Evaluate(Request{alice, cap, "any/path"}).allowed);
    EXPECT_FALSE((*p)->Evaluate(Request{bob, cap, "any/path"}).allowed);
  }
  EXPECT_NE(DefaultPolicyText(1000, "alice").find("# alice"), std::string::npos);
}

TEST(DefaultPolicyTest, RootRunningTheQuickStartGetsOneBinding) {
  Result<std::shared_ptr<const Policy>> p = ParsePolicy(DefaultPolicyText(0, "root"), "policy.toml");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->bindings().size(), 1U);
}

TEST(DefaultPolicyTest, EnsureWritesOnceAndNeverOverwrites) {
  testing::TempDir state("state");
  Result<bool> made = EnsureDefaultPolicy(state.path(), 1000);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_TRUE(*made);
  const std::string file = state.Join("policy.toml");
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640U);
  PolicyHolder holder;
  EXPECT_TRUE(holder.ReloadFromFile(file).ok());

  testing::WriteFile(file, "version = 1\n# edited by the admin\n");
  made = EnsureDefaultPolicy(state.path(), 1000);
  ASSERT_TRUE(made.ok());
  EXPECT_FALSE(*made);
  EXPECT_EQ(testing::ReadFile(file), "version = 1\n# edited by the admin\n");
  EXPECT_FALSE(EnsureDefaultPolicy(state.Join("missing/dir"), 1000).ok());
}

}  // namespace
}  // namespace sk::policy
