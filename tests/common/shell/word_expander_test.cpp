#include "common/shell/word_expander.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

namespace lf::shell {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class WordExpanderTest : public ::testing::Test {
 protected:
  Lookup lookup() {
    return [this](std::string_view name) -> std::optional<std::string> {
      auto it = vars_.find(std::string(name));
      if (it == vars_.end()) return std::nullopt;
      return it->second;
    };
  }

  std::string expand(std::string_view word, char escape = '\\') {
    auto r = expandWord(word, lookup(), escape);
    EXPECT_TRUE(r.isOk()) << word << ": " << r.status().toString();
    return r.isOk() ? *r : std::string("<error>");
  }

  Status expandError(std::string_view word, char escape = '\\') {
    auto r = expandWord(word, lookup(), escape);
    EXPECT_FALSE(r.isOk()) << word << " expanded to " << (r.isOk() ? *r : "");
    return r.status();
  }

  std::vector<std::string> words(std::string_view text) {
    auto r = expandWords(text, lookup());
    EXPECT_TRUE(r.isOk()) << text << ": " << r.status().toString();
    return r.isOk() ? *r : std::vector<std::string>{};
  }

  std::map<std::string, std::string> vars_ = {
      {"FOO", "foo"},   {"EMPTY", ""},        {"PATH_V", "/usr/local/bin"},
      {"SP", "a b  c"}, {"STR", "foobarbaz"}, {"N1", "one"},
      {"_u9", "under"}, {"1", "first"},
  };
};

TEST_F(WordExpanderTest, PlainTextIsUnchanged) {
  EXPECT_EQ(expand("hello world"), "hello world");
  EXPECT_EQ(expand(""), "");
  EXPECT_EQ(expand("  lead and trail  "), "  lead and trail  ");
}

TEST_F(WordExpanderTest, SimpleAndBracedVariables) {
  EXPECT_EQ(expand("$FOO"), "foo");
  EXPECT_EQ(expand("${FOO}"), "foo");
  EXPECT_EQ(expand("${FOO}_bar"), "foo_bar");
  EXPECT_EQ(expand("$FOO_bar"), "");  // the name is FOO_bar, which is unset
  EXPECT_EQ(expand("a$FOO-b"), "afoo-b");
  EXPECT_EQ(expand("$FOO$FOO"), "foofoo");
  EXPECT_EQ(expand("$_u9/x"), "under/x");
  EXPECT_EQ(expand("$N1"), "one");
}

TEST_F(WordExpanderTest, UnsetVariablesExpandToEmpty) {
  EXPECT_EQ(expand("x${NOPE}y"), "xy");
  EXPECT_EQ(expand("x$NOPE"), "x");
}

TEST_F(WordExpanderTest, DigitNamesAreReadAsOneRun) {
  EXPECT_EQ(expand("$1"), "first");
  EXPECT_EQ(expand("$12x"), "x");  // "12" is unset
  EXPECT_EQ(expand("${1}"), "first");
}

TEST_F(WordExpanderTest, DollarBeforeNonNameStaysLiteral) {
  EXPECT_EQ(expand("$"), "$");
  EXPECT_EQ(expand("a$"), "a$");
  EXPECT_EQ(expand("$ x"), "$ x");
  EXPECT_EQ(expand("$/path"), "$/path");
  EXPECT_EQ(expand("$-"), "$-");
  EXPECT_EQ(expand("cost: 5$."), "cost: 5$.");
  EXPECT_EQ(expand("\"$\""), "$");
}

TEST_F(WordExpanderTest, DefaultOperators) {
  EXPECT_EQ(expand("${NOPE:-def}"), "def");
  EXPECT_EQ(expand("${EMPTY:-def}"), "def");
  EXPECT_EQ(expand("${FOO:-def}"), "foo");
  EXPECT_EQ(expand("${NOPE-def}"), "def");
  EXPECT_EQ(expand("${EMPTY-def}"), "");
  EXPECT_EQ(expand("${FOO-def}"), "foo");
  EXPECT_EQ(expand("${NOPE:-}"), "");
  EXPECT_EQ(expand("${NOPE:-a b}"), "a b");
}

TEST_F(WordExpanderTest, AlternativeOperators) {
  EXPECT_EQ(expand("${FOO:+alt}"), "alt");
  EXPECT_EQ(expand("${EMPTY:+alt}"), "");
  EXPECT_EQ(expand("${NOPE:+alt}"), "");
  EXPECT_EQ(expand("${FOO+alt}"), "alt");
  EXPECT_EQ(expand("${EMPTY+alt}"), "alt");
  EXPECT_EQ(expand("${NOPE+alt}"), "");
}

TEST_F(WordExpanderTest, RequiredOperators) {
  EXPECT_EQ(expand("${FOO:?must be set}"), "foo");
  EXPECT_EQ(expand("${EMPTY?must be set}"), "");
  Status s = expandError("${NOPE:?give NOPE a value}");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("NOPE: give NOPE a value"));
  EXPECT_THAT(expandError("x${NOPE?}").message(),
              HasSubstr("column 2: NOPE: is not allowed to be unset"));
  EXPECT_THAT(expandError("${EMPTY:?}").message(), HasSubstr("EMPTY: is not allowed to be empty"));
  EXPECT_THAT(expandError("${NOPE:?$FOO is missing}").message(), HasSubstr("NOPE: foo is missing"));
}

TEST_F(WordExpanderTest, NestedExpansionInOperand) {
  EXPECT_EQ(expand("${NOPE:-$FOO}"), "foo");
  EXPECT_EQ(expand("${NOPE:-${EMPTY:-${FOO}x}}"), "foox");
  EXPECT_EQ(expand("${FOO:+[${PATH_V}]}"), "[/usr/local/bin]");
  EXPECT_EQ(expand("${NOPE:-'}'}"), "}");
  EXPECT_EQ(expand("${NOPE:-\"a}b\"}"), "a}b");
  EXPECT_EQ(expand("${NOPE:-a\\}b}"), "a}b");
}

TEST_F(WordExpanderTest, PrefixAndSuffixRemoval) {
  // The examples of the Dockerfile reference.
  EXPECT_EQ(expand("${STR#f*b}"), "arbaz");
  EXPECT_EQ(expand("${STR##f*b}"), "az");
  EXPECT_EQ(expand("${STR%b*}"), "foobar");
  EXPECT_EQ(expand("${STR%%b*}"), "foo");
  EXPECT_EQ(expand("${PATH_V##*/}"), "bin");
  EXPECT_EQ(expand("${PATH_V%/*}"), "/usr/local");
  EXPECT_EQ(expand("${STR#nomatch}"), "foobarbaz");
  EXPECT_EQ(expand("${STR#}"), "foobarbaz");
  EXPECT_EQ(expand("${STR#???}"), "barbaz");
  EXPECT_EQ(expand("${STR%?}"), "foobarba");
  EXPECT_EQ(expand("${NOPE#x}"), "");
  EXPECT_EQ(expand("${STR#*}"), "foobarbaz");  // the shortest match of * is empty
  EXPECT_EQ(expand("${STR##*}"), "");
}

TEST_F(WordExpanderTest, QuotedOrEscapedGlobCharactersAreLiteral) {
  vars_["G"] = "a*b?c";
  EXPECT_EQ(expand("${G#a\\*}"), "b?c");
  EXPECT_EQ(expand("${G#a'*'}"), "b?c");
  EXPECT_EQ(expand("${G%\\?c}"), "a*b");
  EXPECT_EQ(expand("${G%\"?c\"}"), "a*b");
  EXPECT_EQ(expand("${G#a\\?}"), "a*b?c");  // no literal '?' after 'a'
  EXPECT_EQ(expand("${STR#'f*'}"), "foobarbaz");
}

TEST_F(WordExpanderTest, PatternFromVariable) {
  vars_["P"] = "b*";
  EXPECT_EQ(expand("${STR%$P}"), "foobar");
  EXPECT_EQ(expand("${STR%\"$P\"}"), "foobarbaz");  // quoted: a literal "b*"
}

TEST_F(WordExpanderTest, Replacement) {
  EXPECT_EQ(expand("${STR/ba/fo}"), "fooforbaz");
  EXPECT_EQ(expand("${STR//ba/fo}"), "fooforfoz");
  EXPECT_EQ(expand("${STR/o/0}"), "f0obarbaz");
  EXPECT_EQ(expand("${STR//o/0}"), "f00barbaz");
  EXPECT_EQ(expand("${STR/b*a/X}"), "fooXz");  // leftmost, longest
  EXPECT_EQ(expand("${STR//b?/X}"), "fooXrXz");
  EXPECT_EQ(expand("${STR/nomatch/X}"), "foobarbaz");
  EXPECT_EQ(expand("${STR/bar}"), "foobaz");  // no replacement: delete
  EXPECT_EQ(expand("${STR//a/}"), "foobrbz");
  EXPECT_EQ(expand("${STR/ba/$FOO}"), "foofoorbaz");
  EXPECT_EQ(expand("${STR//*/all}"), "all");
  EXPECT_EQ(expand("${NOPE//x/y}"), "");
  EXPECT_EQ(expand("${STR//}"), "foobarbaz");
}

TEST_F(WordExpanderTest, SingleQuotesAreLiteral) {
  EXPECT_EQ(expand("'$FOO'"), "$FOO");
  EXPECT_EQ(expand("'a b'c"), "a bc");
  EXPECT_EQ(expand("'\\n'"), "\\n");
  EXPECT_EQ(expand("''"), "");
  EXPECT_EQ(expand("'\"'"), "\"");
}

TEST_F(WordExpanderTest, DoubleQuotesExpandAndAreRemoved) {
  EXPECT_EQ(expand("\"$FOO bar\""), "foo bar");
  EXPECT_EQ(expand("\"'$FOO'\""), "'foo'");
  EXPECT_EQ(expand("\"a\\\"b\""), "a\"b");
  EXPECT_EQ(expand("\"\\$FOO\""), "$FOO");
  EXPECT_EQ(expand("\"a\\\\b\""), "a\\b");
  EXPECT_EQ(expand("\"a\\nb\""), "a\\nb");  // other escapes stay in double quotes
  EXPECT_EQ(expand("x\"\"y"), "xy");
  EXPECT_EQ(expand("\"${NOPE:-a b}\""), "a b");
}

TEST_F(WordExpanderTest, BackslashEscapes) {
  EXPECT_EQ(expand("\\$FOO"), "$FOO");
  EXPECT_EQ(expand("\\${FOO}"), "${FOO}");
  EXPECT_EQ(expand("\\'x"), "'x");
  EXPECT_EQ(expand("a\\ b"), "a b");
  EXPECT_EQ(expand("a\\\\b"), "a\\b");
  EXPECT_EQ(expand("\\n"), "n");
  EXPECT_EQ(expand("trailing\\"), "trailing");  // Docker drops an escape at the very end
}

TEST_F(WordExpanderTest, BacktickEscape) {
  EXPECT_EQ(expand("`$FOO", '`'), "$FOO");
  EXPECT_EQ(expand("C:\\path\\$FOO", '`'), "C:\\path\\foo");
  EXPECT_EQ(expand("\"``\"", '`'), "`");
  EXPECT_EQ(expand("\"`$FOO\"", '`'), "$FOO");
  EXPECT_EQ(expand("\"a\\\"", '`'), "a\\");
  EXPECT_EQ(expand("${NOPE:-`}}", '`'), "}");
  EXPECT_EQ(expand("a` b", '`'), "a b");
}

TEST_F(WordExpanderTest, SyntaxErrorsNameTheColumn) {
  EXPECT_THAT(expandError("ab${FOO").message(), HasSubstr("column 3: missing '}'"));
  EXPECT_THAT(expandError("${").message(), HasSubstr("column 1: missing '}'"));
  EXPECT_THAT(expandError("${FOO:-x").message(), HasSubstr("column 1: missing '}'"));
  EXPECT_THAT(expandError("x'abc").message(), HasSubstr("column 2: unterminated single-quoted"));
  EXPECT_THAT(expandError("xy\"abc").message(), HasSubstr("column 3: unterminated double-quoted"));
  EXPECT_THAT(expandError("${}").message(), HasSubstr("column 1: bad substitution"));
  EXPECT_THAT(expandError("${:-x}").message(), HasSubstr("bad substitution"));
  EXPECT_THAT(expandError("${{x}}").message(), HasSubstr("bad substitution"));
  EXPECT_THAT(expandError("${#FOO}").message(), HasSubstr("bad substitution"));
  EXPECT_THAT(expandError("${FOO:=x}").message(), HasSubstr("unsupported modifier ':='"));
  EXPECT_THAT(expandError("${FOO^^}").message(), HasSubstr("unsupported modifier '^'"));
  EXPECT_THAT(expandError("${FOO/a/b").message(), HasSubstr("missing '}'"));
  EXPECT_THAT(expandError("${NOPE:-'x}").message(), HasSubstr("column 9: unterminated single"));
  EXPECT_EQ(expandError("${FOO").code(), StatusCode::kInvalidArgument);
}

TEST_F(WordExpanderTest, DeepNestingIsRejectedNotOverflowed) {
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "${A:-";
  Status s = expandError(deep);
  EXPECT_THAT(s.message(), HasSubstr("nested more than"));
  std::string ok;
  for (int i = 0; i < 10; ++i) ok += "${A:-";
  ok += "x";
  for (int i = 0; i < 10; ++i) ok += "}";
  EXPECT_EQ(expand(ok), "x");
}

TEST_F(WordExpanderTest, OutputIsBounded) {
  vars_["BIG"] = std::string(1 << 16, 'x');
  ExpandOptions options;
  options.max_result_bytes = 1 << 20;
  WordExpander e(lookup(), options);
  std::string many;
  for (int i = 0; i < 64; ++i) many += "$BIG";
  EXPECT_FALSE(e.expandWord(many).isOk());
  auto r = e.expandWord("${BIG//x/$BIG}");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(e.expandWord("$BIG$BIG").isOk());
}

TEST_F(WordExpanderTest, PatternWorkIsBounded) {
  vars_["LONG"] = std::string(200000, 'a');
  ExpandOptions options;
  options.max_pattern_steps = 1 << 20;
  WordExpander e(lookup(), options);
  auto r = e.expandWord("${LONG//*b/x}");  // every start scans to the end: quadratic
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  // Prefix/suffix removal is one linear scan.
  auto t = e.expandWord("${LONG%%a*}");
  ASSERT_TRUE(t.isOk()) << t.status().toString();
  EXPECT_EQ(*t, "");
}

TEST_F(WordExpanderTest, ReferencedVariablesAreTracked) {
  WordExpander e(lookup());
  ASSERT_TRUE(e.expandWord("$FOO ${NOPE:-$EMPTY} '$QUOTED' \\$ESC ${STR#$P}").isOk());
  EXPECT_THAT(e.referenced(), ElementsAre("EMPTY", "FOO", "NOPE", "P", "STR"));
  EXPECT_THAT(e.unset(), ElementsAre("NOPE", "P"));
  ASSERT_TRUE(e.expandWord("${FOO:+$OTHER}").isOk());
  EXPECT_THAT(e.referenced(), ElementsAre("EMPTY", "FOO", "NOPE", "OTHER", "P", "STR"));
  e.clearReferences();
  EXPECT_THAT(e.referenced(), IsEmpty());
  ASSERT_TRUE(e.expandWord("plain").isOk());
  EXPECT_THAT(e.referenced(), IsEmpty());
}

TEST_F(WordExpanderTest, NullLookupMeansNothingIsSet) {
  WordExpander e(nullptr);
  auto r = e.expandWord("a${X:-d}$Y");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(*r, "ad");
  EXPECT_THAT(e.unset(), ElementsAre("X", "Y"));
}

TEST_F(WordExpanderTest, WordsSplitOnUnquotedWhitespace) {
  EXPECT_THAT(words("80 443/tcp"), ElementsAre("80", "443/tcp"));
  EXPECT_THAT(words("  a \t b\n"), ElementsAre("a", "b"));
  EXPECT_THAT(words("$SP"), ElementsAre("a", "b", "c"));
  EXPECT_THAT(words("\"$SP\""), ElementsAre("a b  c"));
  EXPECT_THAT(words("x$SP"), ElementsAre("xa", "b", "c"));
  EXPECT_THAT(words("'a b' c\\ d"), ElementsAre("a b", "c d"));
  EXPECT_THAT(words("${NOPE:-1 2}"), ElementsAre("1", "2"));
  EXPECT_THAT(words("\"\" $EMPTY"), IsEmpty());
  EXPECT_THAT(words(""), IsEmpty());
}

TEST_F(WordExpanderTest, WordsReportErrors) {
  auto r = expandWords("a 'b", lookup());
  ASSERT_FALSE(r.isOk());
  EXPECT_THAT(r.status().message(), HasSubstr("column 3"));
}

TEST_F(WordExpanderTest, KeepQuotesModeForHeredocs) {
  ExpandOptions options;
  options.keep_quotes = true;
  WordExpander e(lookup(), options);
  auto r = e.expandWord("echo \"$FOO\" '$FOO' \\$FOO \\n\n");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(*r, "echo \"foo\" 'foo' $FOO \\n\n");
  auto unbalanced = e.expandWord("it's \"fine");
  ASSERT_TRUE(unbalanced.isOk());
  EXPECT_EQ(*unbalanced, "it's \"fine");
}

TEST_F(WordExpanderTest, BinaryInputNeverCrashes) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  auto r = expandWord(bytes, lookup());
  // The single quote at 0x27 is never closed.
  EXPECT_FALSE(r.isOk());
  std::string nul("a\0b", 3);
  auto n = expandWord(nul, lookup());
  ASSERT_TRUE(n.isOk());
  EXPECT_EQ(*n, nul);
}

}  // namespace
}  // namespace lf::shell
