#include "agent/policy/policy_holder.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "tests/fixtures/temp_dir.h"

namespace sk::policy {
namespace {

const char* kReadA =
    "version = 1\n[roles.r]\ngrants = [ { capabilities = [\"read\"], paths = [\"a/**\"] } ]\n"
    "[[bindings]]\nname = \"b\"\nroles = [\"r\"]\nmatch = { uid = 1 }\n";
const char* kReadB =
    "version = 1\n[roles.r]\ngrants = [ { capabilities = [\"read\"], paths = [\"b/**\"] } ]\n"
    "[[bindings]]\nname = \"b\"\nroles = [\"r\"]\nmatch = { uid = 1 }\n";

bool MayRead(const PolicyHolder& h, const char* path) {
  Subject s;
  s.uid = 1;
  return h.Current()->Evaluate(Request{s, Capability::kRead, path}).allowed;
}

TEST(PolicyHolderTest, StartsDenyingEverything) {
  PolicyHolder h;
  EXPECT_FALSE(MayRead(h, "a/x"));
}

TEST(PolicyHolderTest, ReloadInstallsAValidFile) {
  testing::TempDir dir("policy");
  const std::string file = dir.Join("policy.toml");
  testing::WriteFile(file, kReadA);
  PolicyHolder h;
  ASSERT_TRUE(h.ReloadFromFile(file).ok());
  EXPECT_TRUE(MayRead(h, "a/x"));
  testing::WriteFile(file, kReadB);
  ASSERT_TRUE(h.ReloadFromFile(file).ok());
  EXPECT_FALSE(MayRead(h, "a/x"));
  EXPECT_TRUE(MayRead(h, "b/x"));
}

TEST(PolicyHolderTest, ABrokenFileKeepsTheRunningPolicyAndSaysWhy) {
  testing::TempDir dir("policy");
  const std::string file = dir.Join("policy.toml");
  testing::WriteFile(file, kReadA);
  PolicyHolder h;
  ASSERT_TRUE(h.ReloadFromFile(file).ok());
  auto before = h.Current();

  testing::WriteFile(file, std::string(kReadA) +
                               "[roles.bad]\ngrants = [ { capabilities = [\"reed\"], "
                               "paths = [\"a\"] } ]\n");
  Status st = h.ReloadFromFile(file);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(std::string(st.message()).find(file + ":9: unknown capability 'reed'"), std::string::npos)
      << st.ToString();
  EXPECT_EQ(h.Current(), before);
  EXPECT_TRUE(MayRead(h, "a/x"));

  EXPECT_EQ(h.ReloadFromFile(dir.Join("missing.toml")).code(), Code::kUnavailable);
  EXPECT_EQ(h.Current(), before);

  testing::WriteFile(file, std::string(2 << 20, '#'));
  EXPECT_EQ(h.ReloadFromFile(file).code(), Code::kInvalidArgument);
  EXPECT_EQ(h.Current(), before);
}

TEST(PolicyHolderTest, ReadersSeeWholePoliciesWhileReloadsRace) {
  PolicyHolder h;
  ASSERT_TRUE(h.Reload(kReadA, "a.toml").ok());
  std::atomic<bool> stop{false};
  std::atomic<long> checks{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i) {
    readers.emplace_back([&] {
      Subject s;
      s.uid = 1;
      while (!stop.load()) {
        auto p = h.Current();  // one policy for the whole "request"
        bool a = p->Evaluate(Request{s, Capability::kRead, "a/x"}).allowed;
        bool b = p->Evaluate(Request{s, Capability::kRead, "b/x"}).allowed;
        EXPECT_NE(a, b);  // exactly one of the two policies, never a mix or nothing
        ++checks;
      }
    });
  }
  // Reload until the readers have really raced the reloads (on a loaded machine they may
  // not be scheduled at all during the first 300), then stop.
  for (int i = 0; i < 300 || checks.load() < 1000; ++i) {
    ASSERT_TRUE(h.Reload(i % 2 ? kReadA : kReadB, "x.toml").ok());
    EXPECT_FALSE(h.Reload("version = [", "bad.toml").ok());
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_GT(checks.load(), 0);
}

}  // namespace
}  // namespace sk::policy
