#include "agent/policy/path_glob.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <tuple>

namespace sk::policy {
namespace {

TEST(PathTest, ValidPathsFollowTheGrammar) {
  EXPECT_TRUE(IsValidPath("a"));
  EXPECT_TRUE(IsValidPath("apps/web/db"));
  EXPECT_TRUE(IsValidPath("A-Z_0.9/x"));
  EXPECT_TRUE(IsValidPath(std::string(256, 'a')));
  EXPECT_TRUE(IsValidPath(std::string(127, 'a') + "/" + std::string(128, 'b')));
}

TEST(PathTest, InvalidPathsAreRefused) {
  for (const char* p : {"", "/a", "a/", "a//b", "a b", "a/*", "a/**", "ü", "a\\b", "a/\n", "a:b"}) {
    EXPECT_FALSE(IsValidPath(p)) << p;
  }
  EXPECT_FALSE(IsValidPath(std::string(257, 'a')));
}

TEST(PathTest, SegmentsSplitWithoutCopies) {
  std::string path = "a/bb/ccc";
  PathSegments s(path);
  ASSERT_TRUE(s.valid());
  ASSERT_EQ(s.size(), 3U);
  EXPECT_EQ(s[1], "bb");
  EXPECT_EQ(s[2].data(), path.data() + 5);
  std::string many;
  for (int i = 0; i < 128; ++i) many += (i ? "/" : "") + std::string("x");
  PathSegments m(many);
  ASSERT_TRUE(m.valid());
  EXPECT_EQ(m.size(), 128U);
}

TEST(GlobTest, BadGlobsAreRefusedWithAReason) {
  for (const char* g : {"", "a//b", "/a", "a/", "web-*", "a/**x", "***", "a b", "*a", "a/b*c/d"}) {
    Result<PathGlob> r = PathGlob::Compile(g);
    EXPECT_FALSE(r.ok()) << g;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    }
  }
  EXPECT_FALSE(PathGlob::Compile(std::string(257, 'a')).ok());
  EXPECT_NE(std::string(PathGlob::Compile("web-*").status().message()).find("whole segments"),
            std::string::npos);
}

using GlobCase = std::tuple<const char*, const char*, bool>;
class GlobMatchTest : public ::testing::TestWithParam<GlobCase> {};

TEST_P(GlobMatchTest, MatchesAsSpecified) {
  auto [glob, path, want] = GetParam();
  Result<PathGlob> g = PathGlob::Compile(glob);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->Matches(std::string_view(path)), want) << glob << " vs " << path;
}

INSTANTIATE_TEST_SUITE_P(
    Table, GlobMatchTest,
    ::testing::Values(
        // literal
        GlobCase{"a/b", "a/b", true}, GlobCase{"a/b", "a/b/c", false}, GlobCase{"a/b", "a", false},
        GlobCase{"a/b", "a/bc", false}, GlobCase{"a/b", "A/b", false},
        // * is exactly one segment
        GlobCase{"apps/*/db", "apps/web/db", true}, GlobCase{"apps/*/db", "apps/db", false},
        GlobCase{"apps/*/db", "apps/a/b/db", false}, GlobCase{"apps/*/db", "apps/web/db/x", false},
        GlobCase{"*", "a", true}, GlobCase{"*", "a/b", false}, GlobCase{"*/*", "a/b", true},
        GlobCase{"*/*", "a", false}, GlobCase{"*/*", "a/b/c", false},
        // ** is any depth, zero included
        GlobCase{"apps/**", "apps", true}, GlobCase{"apps/**", "apps/web", true},
        GlobCase{"apps/**", "apps/web/db", true}, GlobCase{"apps/**", "app", false},
        GlobCase{"apps/**", "appsx", false}, GlobCase{"apps/**", "other/apps", false},
        GlobCase{"**", "a", true}, GlobCase{"**", "a/b/c", true}, GlobCase{"**/db", "db", true},
        GlobCase{"**/db", "a/db", true}, GlobCase{"**/db", "a/b/db", true}, GlobCase{"**/db", "a/dbx", false},
        GlobCase{"**/db", "db/a", false}, GlobCase{"a/**/b", "a/b", true}, GlobCase{"a/**/b", "a/x/b", true},
        GlobCase{"a/**/b", "a/x/y/b", true}, GlobCase{"a/**/b", "a/x/y", false},
        GlobCase{"a/**/b", "b", false}, GlobCase{"a/**/**/b", "a/b", true}, GlobCase{"**/*", "a", true},
        GlobCase{"**/*", "a/b", true}, GlobCase{"*/**", "a", true}, GlobCase{"*/**", "a/b/c", true},
        GlobCase{"a/*/**/c", "a/x/c", true}, GlobCase{"a/*/**/c", "a/c", false},
        GlobCase{"a/*/**/c", "a/x/y/z/c", true}, GlobCase{"**/b/**", "b", true},
        GlobCase{"**/b/**", "a/b/c", true}, GlobCase{"**/b/**", "a/c", false},
        // an invalid path matches nothing, not even **
        GlobCase{"**", "a//b", false}, GlobCase{"**", "", false}, GlobCase{"*", "a b", false}));

TEST(GlobTest, HostileGlobsMatchInBoundedTime) {
  // Alternating ** and literals is the classic exponential case for backtracking matchers.
  std::string glob;
  for (int i = 0; i < 40; ++i) glob += "**/a/";
  glob += "b";
  ASSERT_LE(glob.size(), kMaxPathBytes);
  std::string path;
  for (int i = 0; i < 127; ++i) path += "a/";
  path += "c";
  Result<PathGlob> g = PathGlob::Compile(glob);
  ASSERT_TRUE(g.ok());
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(g->Matches(std::string_view(path)));
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::milliseconds(500));
}

TEST(GlobTest, LongestGlobOfSingleStarsMatchesOnlyThatDepth) {
  std::string glob;
  std::string path;
  for (int i = 0; i < 128; ++i) {
    glob += (i ? "/" : "") + std::string("*");
    path += (i ? "/" : "") + std::string("x");
  }
  ASSERT_EQ(glob.size(), 255U);
  Result<PathGlob> g = PathGlob::Compile(glob);
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g->Matches(std::string_view(path)));
  EXPECT_FALSE(g->Matches(std::string_view(path.substr(2))));
}

}  // namespace
}  // namespace sk::policy
