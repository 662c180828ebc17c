#include "common/context/pattern.h"

#include <gtest/gtest.h>

#include <string>

namespace lf::context {
namespace {

struct MatchCase {
  const char* pattern;
  const char* path;
  bool match;
};

// Go's filepath.Match behaviour, case by case.
const MatchCase kFilepathCases[] = {
    {"abc", "abc", true},
    {"*", "abc", true},
    {"*c", "abc", true},
    {"a*", "a", true},
    {"a*", "abc", true},
    {"a*", "ab/c", false},
    {"a*/b", "abc/b", true},
    {"a*/b", "a/c/b", false},
    {"a*b*c*d*e*/f", "axbxcxdxe/f", true},
    {"a*b*c*d*e*/f", "axbxcxdxexxx/f", true},
    {"a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false},
    {"a*b*c*d*e*/f", "axbxcxdxexxx/fff", false},
    {"a*b?c*x", "abxbbxdbxebxczzx", true},
    {"a*b?c*x", "abxbbxdbxebxczzy", false},
    {"ab[c]", "abc", true},
    {"ab[b-d]", "abc", true},
    {"ab[e-g]", "abc", false},
    {"ab[^c]", "abc", false},
    {"ab[^b-d]", "abc", false},
    {"ab[^e-g]", "abc", true},
    {"ab[!c]", "abc", false},
    {"ab[!e-g]", "abc", true},
    {"a\\*b", "a*b", true},
    {"a\\*b", "ab", false},
    {"a?b",
     "a\xe2\x98\xba"
     "b",
     true},  // '?' is one code point, not one byte
    {"a[^a]b",
     "a\xe2\x98\xba"
     "b",
     true},
    {"a???b",
     "a\xe2\x98\xba"
     "b",
     false},
    {"[a-\xce\xb6]*", "\xce\xb1", true},  // [a-ζ]* vs α
    {"*[a-\xce\xb6]", "A", false},
    {"a?b", "a/b", false},
    {"a*b", "a/b", false},
    {"[\\]a]", "]", true},
    {"[\\-]", "-", true},
    {"[x\\-]", "x", true},
    {"[x\\-]", "-", true},
    {"[x\\-]", "z", false},
    {"[\\-x]", "-", true},
    {"[\\-x]", "a", false},
    {"*x", "xxx", true},
    {"**", "a/b", false},  // no `**` in filepath syntax: two stars, neither crosses '/'
    {"*/*", "a/b", true},
    {"", "", true},
    {"", "a", false},
    {"a", "", false},
    {"\xff*",
     "\xff"
     "abc",
     true},  // invalid UTF-8 bytes match themselves
    {"?", "\xff", true},
    {"[^a]", "/", true},  // as in Go, a class may match the separator
};

TEST(MatchPath, FilepathMatchTable) {
  for (const MatchCase& c : kFilepathCases) {
    auto got = matchPath(c.pattern, c.path);
    ASSERT_TRUE(got.isOk()) << c.pattern << ": " << got.status().toString();
    EXPECT_EQ(*got, c.match) << "pattern \"" << c.pattern << "\" path \"" << c.path << "\"";
  }
}

TEST(MatchPath, MalformedPatternsAreErrors) {
  const char* bad[] = {"[]a]", "[-]", "[x-]", "[-x]", "\\",  "[a-b-c]", "[",   "[^",
                       "[^bc", "a[",  "a/b[", "[]",   "[^]", "a\\",     "[\\", "[a\\"};
  for (const char* p : bad) {
    auto got = matchPath(p, "a");
    ASSERT_FALSE(got.isOk()) << "pattern \"" << p << "\" should be rejected";
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(got.status().message().find("bad pattern"), std::string::npos)
        << got.status().message();
  }
  auto unterminated = matchPath("src/[abc", "x");
  EXPECT_NE(unterminated.status().message().find("unterminated character class '[' at offset 4"),
            std::string::npos)
      << unterminated.status().message();
}

TEST(GlobPattern, DockerignoreDoubleStar) {
  struct Case {
    const char* pattern;
    const char* path;
    bool match;
  };
  const Case cases[] = {
      {"**/*.go", "a.go", true},
      {"**/*.go", "x/y/z.go", true},
      {"**/*.go", "x/y/z.gox", false},
      {"a/**/b", "a/b", true},
      {"a/**/b", "a/x/b", true},
      {"a/**/b", "a/x/y/b", true},
      {"a/**/b", "a/xb", false},
      {"a/**", "a/x", true},
      {"a/**", "a/x/y", true},
      {"a/**", "a", false},
      {"**", "anything/at/all", true},
      {"**", "", true},
      {"**/foo", "foo", true},
      {"**/foo", "a/b/foo", true},
      {"**/foo", "barfoo", false},
      {"**foo", "barfoo", true},  // moby's suffix fast path
      {"**foo", "a/barfoo", true},
      {"a**b", "ab", true},  // `**` in the middle is "(.*/)?"
      {"a**b", "ax/b", true},
      {"a**b", "axb", false},
      {"**/*.txt/", "x.txt/", true},
      {"[!a]", "!", true},  // Docker hands classes to Go's regexp: '!' is no negation there
      {"[!a]", "b", false},
  };
  for (const Case& c : cases) {
    auto g = GlobPattern::compile(c.pattern, GlobSyntax::kDockerignore);
    ASSERT_TRUE(g.isOk()) << c.pattern << ": " << g.status().toString();
    EXPECT_EQ(g->matches(c.path), c.match)
        << "pattern \"" << c.pattern << "\" path \"" << c.path << "\"";
  }
}

TEST(GlobPattern, MayMatchWithPrefix) {
  auto check = [](const char* pattern, const char* prefix) {
    auto g = GlobPattern::compile(pattern, GlobSyntax::kDockerignore);
    EXPECT_TRUE(g.isOk()) << pattern;
    return g->mayMatchWithPrefix(prefix);
  };
  EXPECT_TRUE(check("build/keep", "build/"));
  EXPECT_FALSE(check("build/keep", "other/"));
  EXPECT_TRUE(check("**/keep", "deep/er/"));
  EXPECT_TRUE(check("*/keep", "anything/"));
  EXPECT_FALSE(check("*/keep", "a/b/"));
  EXPECT_FALSE(check("*.md", "docs/"));
  EXPECT_TRUE(check("b[u]ild/*.txt", "build/"));
}

TEST(GlobPattern, LiteralDetection) {
  EXPECT_TRUE(GlobPattern::compile("a/b.txt", GlobSyntax::kDockerignore)->isLiteral());
  EXPECT_TRUE(GlobPattern::compile("a\\*", GlobSyntax::kDockerignore)->isLiteral());
  EXPECT_TRUE(GlobPattern::compile("a\\*", GlobSyntax::kDockerignore)->matches("a*"));
  EXPECT_FALSE(GlobPattern::compile("a*", GlobSyntax::kDockerignore)->isLiteral());
}

TEST(GlobPattern, LongInputsStayLinear) {
  // A classic backtracking killer: many stars against a long near-miss.
  std::string pattern;
  for (int i = 0; i < 200; ++i) pattern += "a*";
  pattern += "b";
  std::string path(4000, 'a');
  auto g = GlobPattern::compile(pattern, GlobSyntax::kDockerignore);
  ASSERT_TRUE(g.isOk());
  EXPECT_FALSE(g->matches(path));
  EXPECT_TRUE(g->matches(path + "b"));
}

TEST(CleanPath, GoCleanTable) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "."},
      {"abc", "abc"},
      {"abc/def", "abc/def"},
      {".", "."},
      {"..", ".."},
      {"../..", "../.."},
      {"../../abc", "../../abc"},
      {"/abc", "/abc"},
      {"/", "/"},
      {"abc/", "abc"},
      {"/abc/", "/abc"},
      {"abc//def//ghi", "abc/def/ghi"},
      {"//abc", "/abc"},
      {"///abc", "/abc"},
      {"//abc//", "/abc"},
      {"abc/./def", "abc/def"},
      {"/./abc/def", "/abc/def"},
      {"abc/.", "abc"},
      {"abc/def/ghi/../jkl", "abc/def/jkl"},
      {"abc/def/../ghi/../jkl", "abc/jkl"},
      {"abc/def/..", "abc"},
      {"abc/def/../..", "."},
      {"/abc/def/../..", "/"},
      {"abc/def/../../..", ".."},
      {"/abc/def/../../..", "/"},
      {"abc/def/../../../ghi/jkl/../../../mno", "../../mno"},
      {"abc/./../def", "def"},
      {"abc//./../def", "def"},
      {"abc/../../././../def", "../../def"},
      {"/..", "/"},
      {"./foo", "foo"},
  };
  for (const auto& [in, want] : cases) {
    EXPECT_EQ(cleanPath(in), want) << "cleanPath(\"" << in << "\")";
  }
}

}  // namespace
}  // namespace lf::context
