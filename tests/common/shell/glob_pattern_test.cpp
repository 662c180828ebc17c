#include "common/shell/glob_pattern.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lf::shell {
namespace {

GlobPattern glob(std::string_view text) {
  return GlobPattern(text, std::vector<bool>(text.size()));
}

std::int64_t prefix(std::string_view pat, std::string_view s, bool longest) {
  std::int64_t budget = 1 << 20;
  auto r = glob(pat).matchPrefix(s, longest, &budget);
  EXPECT_TRUE(r.isOk());
  return r.isOk() ? *r : -2;
}

TEST(GlobPatternTest, PrefixLengths) {
  EXPECT_EQ(prefix("f*b", "foobarbaz", false), 4);
  EXPECT_EQ(prefix("f*b", "foobarbaz", true), 7);
  EXPECT_EQ(prefix("*", "abc", false), 0);
  EXPECT_EQ(prefix("*", "abc", true), 3);
  EXPECT_EQ(prefix("", "abc", true), 0);
  EXPECT_EQ(prefix("?", "", true), -1);
  EXPECT_EQ(prefix("a?c", "abcd", true), 3);
  EXPECT_EQ(prefix("x", "abc", false), -1);
  EXPECT_EQ(prefix("**a**", "bab", true), 3);
  EXPECT_EQ(prefix("**a", "bab", true), 2);
}

TEST(GlobPatternTest, SuffixLengths) {
  std::int64_t budget = 1 << 20;
  auto shortest = glob("b*").matchSuffix("foobarbaz", false, &budget);
  ASSERT_TRUE(shortest.isOk());
  EXPECT_EQ(*shortest, 3);
  auto longest = glob("b*").matchSuffix("foobarbaz", true, &budget);
  ASSERT_TRUE(longest.isOk());
  EXPECT_EQ(*longest, 6);
}

TEST(GlobPatternTest, LiteralMaskDisablesWildcards) {
  std::int64_t budget = 1 << 20;
  GlobPattern p("a*", {false, true});
  auto r = p.matchPrefix("abc", true, &budget);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(*r, -1);
  auto star = p.matchPrefix("a*c", true, &budget);
  ASSERT_TRUE(star.isOk());
  EXPECT_EQ(*star, 2);
}

TEST(GlobPatternTest, ReplaceFirstAndAll) {
  std::int64_t budget = 1 << 20;
  auto first = replaceMatches("a.b.c", glob("."), "/", false, 1 << 20, &budget);
  ASSERT_TRUE(first.isOk());
  EXPECT_EQ(*first, "a/b.c");
  auto all = replaceMatches("a.b.c", glob("."), "/", true, 1 << 20, &budget);
  ASSERT_TRUE(all.isOk());
  EXPECT_EQ(*all, "a/b/c");
}

TEST(GlobPatternTest, BudgetStopsQuadraticWork) {
  std::int64_t budget = 1000;
  std::string s(10000, 'a');
  auto r = glob("*b").matchPrefix(s, true, &budget);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace lf::shell
