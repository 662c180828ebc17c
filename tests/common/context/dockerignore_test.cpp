#include "common/context/dockerignore.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lf::context {
namespace {

struct IgnoreCase {
  const char* name;
  const char* file;
  std::vector<const char*> excluded;
  std::vector<const char*> included;
};

// Each case: a .dockerignore, paths it must exclude, paths it must keep.
const IgnoreCase kCases[] = {
    // The Dockerfile reference's own examples.
    {"docs: */temp*",
     "# comment\n*/temp*\n",
     {"somedir/temporary.txt", "somedir/temp", "somedir/temp/inner/file"},
     {"temporary.txt", "temp", "a/b/temp", "# comment"}},
    {"docs: */*/temp*",
     "*/*/temp*\n",
     {"somedir/subdir/temporary.txt", "a/b/temp/x"},
     {"somedir/temporary.txt", "a/b/c/temp"}},
    {"docs: temp?", "temp?\n", {"tempa", "tempb", "tempa/x"}, {"temp", "tempab", "d/tempa"}},
    {"docs: **/*.go", "**/*.go\n", {"main.go", "cmd/x/main.go"}, {"main.gox", "go"}},
    {"docs: *.md !README.md", "*.md\n!README.md\n", {"CHANGES.md"}, {"README.md", "docs/guide.md"}},
    {"docs: exception then later exclusion",
     "*.md\n!README*.md\nREADME-secret.md\n",
     {"README-secret.md", "other.md"},
     {"README.md", "README-public.md"}},
    {"docs: later exception wins",
     "*.md\nREADME-secret.md\n!README*.md\n",
     {"other.md"},
     {"README-secret.md", "README.md"}},
    {"docs: leading slash is the root", "/foo/bar\n", {"foo/bar", "foo/bar/x"}, {"x/foo/bar"}},
    {"include-only list",
     "*\n!src\n!go.mod\n",
     {"README.md", "vendor/x.go", ".git"},
     {"src", "src/a/b.go", "go.mod"}},
    // Preprocessing.
    {"whitespace is trimmed", "  foo  \n\t bar\t\n", {"foo", "bar/x"}, {" foo"}},
    {"comment only in column 1", "  # hash\n#real comment\n", {"# hash"}, {"#real comment"}},
    {"CRLF and no final newline", "a\r\nb", {"a", "b"}, {"a\r"}},
    {"UTF-8 BOM skipped", "\xEF\xBB\xBFhidden\n", {"hidden"}, {}},
    {"blank lines", "\n\n   \nx\n\n", {"x"}, {"y"}},
    {"cleaned patterns", "./a/\nb//c/\nd/../e\n", {"a", "b/c", "e"}, {"d", "d/e"}},
    {"space after !", "*.log\n! keep.log\n", {"x.log"}, {"keep.log"}},
    {"!/ is an exception at the root", "*.log\n!/keep.log\n", {"x.log"}, {"keep.log"}},
    {"/!x is an exception too (as in Docker)", "x*\n/!x1\n", {"x2"}, {"x1"}},
    // Directory semantics.
    {"directory excludes its contents",
     "node_modules\n",
     {"node_modules", "node_modules/a/b.js"},
     {"src/node_modules", "node_modules2"}},
    {"exception inside an excluded directory",
     "build\n!build/keep\n",
     {"build", "build/other", "build/sub/x"},
     {"build/keep", "build/keep/inner"}},
    {"parent-directory exception re-includes the subtree",
     "*/sub\n!a\n",
     {"b/sub", "b/sub/f"},
     {"a/sub", "a/sub/f"}},
    {"double star in the middle", "a/**/b\n", {"a/b", "a/x/b", "a/x/y/b/z"}, {"a/xb", "b"}},
    {"trailing double star", "cache/**\n", {"cache/x", "cache/x/y"}, {"cache", "cachex"}},
    {"escaped wildcard", "\\*.txt\n", {"*.txt"}, {"a.txt"}},
    {"character classes", "[abc].txt\nlog[0-9]\n", {"a.txt", "log7"}, {"d.txt", "logx"}},
    {"dotfiles are matched by *", "*\n", {".env", ".git/config"}, {}},
};

TEST(DockerIgnore, RulesTable) {
  for (const IgnoreCase& c : kCases) {
    auto ig = DockerIgnore::parse(c.file);
    ASSERT_TRUE(ig.isOk()) << c.name << ": " << ig.status().toString();
    for (const char* p : c.excluded) {
      EXPECT_TRUE(ig->isExcluded(p)) << c.name << ": \"" << p << "\" should be excluded";
    }
    for (const char* p : c.included) {
      EXPECT_FALSE(ig->isExcluded(p)) << c.name << ": \"" << p << "\" should be kept";
    }
  }
}

// The incremental form used by the walk must agree with isExcluded() everywhere.
TEST(DockerIgnore, IncrementalAgreesWithFullMatch) {
  const std::vector<std::string> paths = {"a",           "a/sub",      "a/sub/f",
                                          "b",           "b/sub",      "b/sub/f",
                                          "build",       "build/keep", "build/keep/inner",
                                          "build/other", "x.md",       "docs",
                                          "docs/x.md",   "src",        "src/a",
                                          "src/a/b"};
  for (const IgnoreCase& c : kCases) {
    auto ig = DockerIgnore::parse(c.file);
    ASSERT_TRUE(ig.isOk());
    std::vector<std::string> all = paths;
    for (const char* p : c.excluded) all.emplace_back(p);
    for (const char* p : c.included) all.emplace_back(p);
    for (const std::string& path : all) {
      DockerIgnore::MatchState state = ig->rootState();
      DockerIgnore::MatchState next;
      bool excluded = false;
      for (size_t pos = 0;;) {
        size_t slash = path.find('/', pos);
        excluded = ig->isExcludedUnder(path.substr(0, slash), state, &next);
        state = next;
        if (slash == std::string::npos) break;
        pos = slash + 1;
      }
      EXPECT_EQ(excluded, ig->isExcluded(path)) << c.name << ": " << path;
    }
  }
}

TEST(DockerIgnore, MayReincludeUnder) {
  auto ig = DockerIgnore::parse("build\nvendor\n!build/keep\n!**/LICENSE\n");
  ASSERT_TRUE(ig.isOk());
  EXPECT_TRUE(ig->hasExceptions());
  EXPECT_TRUE(ig->mayReincludeUnder("build"));
  EXPECT_TRUE(ig->mayReincludeUnder("vendor"));  // **/LICENSE may be anywhere
  auto no_exceptions = DockerIgnore::parse("build\n");
  EXPECT_FALSE(no_exceptions->mayReincludeUnder("build"));
  auto narrow = DockerIgnore::parse("build\nout\n!build/keep\n");
  EXPECT_FALSE(narrow->mayReincludeUnder("out"));
}

TEST(DockerIgnore, ErrorsNameTheLine) {
  auto bang = DockerIgnore::parse("ok\n\n!\n");
  ASSERT_FALSE(bang.isOk());
  EXPECT_EQ(bang.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bang.status().message().find(".dockerignore:3: illegal exclusion pattern"),
            std::string::npos)
      << bang.status().message();

  auto bracket = DockerIgnore::parse("# c\nsrc/[abc\n");
  ASSERT_FALSE(bracket.isOk());
  EXPECT_NE(bracket.status().message().find(".dockerignore:2: bad pattern \"src/[abc\""),
            std::string::npos)
      << bracket.status().message();

  auto named = DockerIgnore::parse("a\n[", "app.Dockerfile.dockerignore");
  EXPECT_NE(named.status().message().find("app.Dockerfile.dockerignore:2:"), std::string::npos);

  auto too_long = DockerIgnore::parse(std::string(5000, 'a'));
  ASSERT_FALSE(too_long.isOk());
  EXPECT_NE(too_long.status().message().find(".dockerignore:1: pattern is 5000 bytes"),
            std::string::npos);
}

TEST(DockerIgnore, FromPatterns) {
  std::vector<std::string> patterns = {"*.log", "", "# not a pattern", "!keep.log"};
  auto ig = DockerIgnore::fromPatterns(patterns);
  ASSERT_TRUE(ig.isOk());
  EXPECT_EQ(ig->rules().size(), 2u);
  EXPECT_TRUE(ig->isExcluded("a.log"));
  EXPECT_FALSE(ig->isExcluded("keep.log"));
  EXPECT_EQ(ig->rules()[1].line, 4);

  std::vector<std::string> bad = {"ok", "x\ny"};
  auto err = DockerIgnore::fromPatterns(bad);
  ASSERT_FALSE(err.isOk());
  EXPECT_NE(err.status().message().find("ignore pattern:2:"), std::string::npos);
}

TEST(DockerIgnore, EmptyExcludesNothing) {
  DockerIgnore none;
  EXPECT_TRUE(none.empty());
  EXPECT_FALSE(none.isExcluded("anything"));
  auto only_comments = DockerIgnore::parse("# a\n\n# b\n");
  ASSERT_TRUE(only_comments.isOk());
  EXPECT_TRUE(only_comments->empty());
}

}  // namespace
}  // namespace lf::context
