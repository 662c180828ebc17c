// Tests of the line-level parser: directives, comments, continuations, heredocs, positions,
// ordering rules. Per-instruction argument forms are in instructions_test.cpp.

#include "common/dockerfile/parser.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/common/dockerfile/parse_helpers.h"

namespace lf::dockerfile {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(DirectivesTest, ReadsSyntaxEscapeAndCheckAtTheTop) {
  Dockerfile df = mustParse(
      "# syntax=docker/dockerfile:1.7\n"
      "# ESCAPE=`\n"
      "#check=skip=JSONArgsRecommended\n"
      "FROM alpine\n");
  ASSERT_EQ(df.directives.size(), 3u);
  EXPECT_EQ(df.directives[0].name, "syntax");
  EXPECT_EQ(df.directives[0].value, "docker/dockerfile:1.7");
  EXPECT_EQ(df.directives[0].line, 1);
  EXPECT_EQ(df.directives[1].name, "escape");
  EXPECT_EQ(df.directives[1].value, "`");
  EXPECT_EQ(df.directives[2].name, "check");
  EXPECT_EQ(df.directives[2].value, "skip=JSONArgsRecommended");
  EXPECT_EQ(df.directives[2].line, 3);
  EXPECT_EQ(df.escape, '`');
  EXPECT_EQ(df.instructions.at(0).pos.line, 4);
}

TEST(DirectivesTest, AllowsWhitespaceAroundNameAndValue) {
  for (const char* line :
       {"#escape=`", "# escape =`", "#\tescape= `", "# escape = ` ", "#\t  eScApE=`"}) {
    Dockerfile df = mustParse(std::string(line) + "\nFROM alpine\n");
    EXPECT_EQ(df.escape, '`') << line;
  }
}

TEST(DirectivesTest, DirectiveAfterACommentIsAComment) {
  Dockerfile df = mustParse("# a comment\n# escape=`\nFROM alpine\n");
  EXPECT_TRUE(df.directives.empty());
  EXPECT_EQ(df.escape, '\\');
}

TEST(DirectivesTest, DirectiveAfterAnEmptyLineIsAComment) {
  Dockerfile df = mustParse("\n# escape=`\nFROM alpine\n");
  EXPECT_TRUE(df.directives.empty());
  EXPECT_EQ(df.escape, '\\');
}

TEST(DirectivesTest, DirectiveAfterAnInstructionIsAComment) {
  Dockerfile df = mustParse("FROM alpine\n# escape=`\n# escape=`\nRUN true\n");
  EXPECT_TRUE(df.directives.empty());
  EXPECT_EQ(df.instructions.size(), 2u);
}

TEST(DirectivesTest, UnknownDirectiveIsACommentAndEndsDirectives) {
  Dockerfile df = mustParse("# unknowndirective=value\n# escape=`\nFROM alpine\n");
  EXPECT_TRUE(df.directives.empty());
  EXPECT_EQ(df.escape, '\\');
}

TEST(DirectivesTest, BackslashEscapeDirective) {
  Dockerfile df = mustParse("# escape=\\\nFROM alpine\n");
  EXPECT_EQ(df.escape, '\\');
  ASSERT_EQ(df.directives.size(), 1u);
}

TEST(DirectivesTest, DuplicateDirectiveIsAnError) {
  EXPECT_EQ(parseError("# escape=`\n# Escape=\\\nFROM alpine\n"),
            "Dockerfile:2:1: only one escape parser directive can be used (the first is on line "
            "1)");
  EXPECT_THAT(parseError("# syntax=a\n# syntax=b\nFROM alpine\n"),
              HasSubstr("Dockerfile:2:1: only one syntax parser directive"));
}

TEST(DirectivesTest, EscapeMustBeBackslashOrBacktick) {
  EXPECT_EQ(parseError("# escape=x\nFROM alpine\n"),
            "Dockerfile:1:1: invalid escape parser directive 'x': the escape character must be \\ "
            "or `");
  EXPECT_THAT(parseError("# escape=\\\\\nFROM alpine\n"), HasSubstr("Dockerfile:1:1: invalid"));
}

TEST(DirectivesTest, ByteOrderMarkIsSkipped) {
  Dockerfile df = mustParse("\xEF\xBB\xBF# escape=`\nFROM alpine\n");
  EXPECT_EQ(df.escape, '`');
  Dockerfile df2 = mustParse(
      "\xEF\xBB\xBF"
      "FROM alpine\n");
  EXPECT_EQ(df2.instructions.at(0).keyword, "FROM");
  EXPECT_EQ(df2.instructions.at(0).pos.column, 1);
  EXPECT_EQ(df2.instructions.at(0).original, "FROM alpine");
}

TEST(CommentsTest, CommentsBlankLinesAndIndentation) {
  Dockerfile df = mustParse(
      "# leading comment\n"
      "\n"
      "   FROM alpine\n"
      "\t# indented comment\n"
      "      \n"
      "\t RUN echo hi # not a comment\n");
  ASSERT_EQ(df.instructions.size(), 2u);
  EXPECT_EQ(df.instructions[0].pos.line, 3);
  EXPECT_EQ(df.instructions[0].pos.column, 4);
  EXPECT_EQ(df.instructions[1].pos.line, 6);
  EXPECT_EQ(df.instructions[1].pos.column, 3);
  EXPECT_THAT(df.instructions[1].args, ElementsAre("echo hi # not a comment"));
}

TEST(CommentsTest, CrLfLineEndings) {
  Dockerfile df = mustParse("FROM alpine\r\nRUN echo a \\\r\n  b\r\nENV A=1\r\n");
  ASSERT_EQ(df.instructions.size(), 3u);
  EXPECT_THAT(df.instructions[1].args, ElementsAre("echo a   b"));
  EXPECT_EQ(df.instructions[1].original, "RUN echo a \\\n  b");
  EXPECT_EQ(df.instructions[2].pairs.at(0).value, "1");
}

TEST(ContinuationTest, JoinsLinesWithoutTheEscapeCharacter) {
  Dockerfile df = mustParse(
      "FROM alpine\n"
      "RUN apt-get update && \\\n"
      "    apt-get install -y \\\n"
      "      curl\n"
      "USER nobody\n");
  const Instruction& run = df.instructions.at(1);
  EXPECT_THAT(run.args, ElementsAre("apt-get update &&     apt-get install -y       curl"));
  EXPECT_EQ(run.pos.line, 2);
  EXPECT_EQ(run.end_line, 4);
  EXPECT_EQ(run.original, "RUN apt-get update && \\\n    apt-get install -y \\\n      curl");
  EXPECT_EQ(df.instructions.at(2).pos.line, 5);
}

TEST(ContinuationTest, NoSpaceIsAddedBetweenJoinedLines) {
  Dockerfile df = mustParse("FROM alpine\nRUN echo foo\\\nbar\n");
  EXPECT_THAT(df.instructions.at(1).args, ElementsAre("echo foobar"));
}

TEST(ContinuationTest, TrailingWhitespaceAfterTheEscapeIsAllowed) {
  Dockerfile df = mustParse("FROM alpine\nRUN echo a \\  \t\n b\n");
  EXPECT_THAT(df.instructions.at(1).args, ElementsAre("echo a  b"));
  EXPECT_EQ(df.instructions.at(1).end_line, 3);
}

TEST(ContinuationTest, CommentsAndEmptyLinesInsideAreSkipped) {
  Dockerfile df = mustParse(
      "FROM alpine\n"
      "RUN echo a \\\n"
      "# a comment in the middle\n"
      "\n"
      "    \t\n"
      "  # indented comment\n"
      "  b\n"
      "USER x\n");
  ASSERT_EQ(df.instructions.size(), 3u);
  EXPECT_THAT(df.instructions[1].args, ElementsAre("echo a   b"));
  EXPECT_EQ(df.instructions[1].end_line, 7);
  EXPECT_EQ(df.instructions[2].pos.line, 8);
}

TEST(ContinuationTest, ContinuationAtEndOfFile) {
  Dockerfile df = mustParse("FROM alpine\nRUN echo a \\");
  EXPECT_THAT(df.instructions.at(1).args, ElementsAre("echo a"));
  EXPECT_EQ(df.instructions.at(1).end_line, 2);
  Dockerfile df2 = mustParse("FROM alpine\nRUN echo a \\\n\n# trailing\n");
  EXPECT_THAT(df2.instructions.at(1).args, ElementsAre("echo a"));
  EXPECT_EQ(df2.instructions.at(1).end_line, 4);
}

TEST(ContinuationTest, DoubleBackslashAtEndStillContinues) {
  // Docker's continuation regex only looks at the last escape character.
  Dockerfile df = mustParse("FROM alpine\nRUN echo \\\\\nx\n");
  EXPECT_THAT(df.instructions.at(1).args, ElementsAre("echo \\x"));
}

TEST(ContinuationTest, BacktickEscape) {
  Dockerfile df = mustParse(
      "# escape=`\n"
      "FROM mcr.microsoft.com/windows/servercore\n"
      "COPY testfile.txt c:\\\n"
      "RUN dir c:\\ `\n"
      "    && echo done\n");
  ASSERT_EQ(df.instructions.size(), 3u);
  EXPECT_THAT(df.instructions[1].args, ElementsAre("testfile.txt", "c:\\"));
  EXPECT_THAT(df.instructions[2].args, ElementsAre("dir c:\\     && echo done"));
  EXPECT_EQ(df.instructions[2].end_line, 5);
}

TEST(ContinuationTest, KeywordOnTheLineAfterALoneEscape) {
  Dockerfile df = mustParse("FROM alpine\n\\\nRUN true\n");
  ASSERT_EQ(df.instructions.size(), 2u);
  EXPECT_EQ(df.instructions[1].keyword, "RUN");
  EXPECT_EQ(df.instructions[1].pos.line, 3);
  EXPECT_EQ(df.instructions[1].pos.column, 1);
}

TEST(ContinuationTest, ErrorPositionsOnContinuationLines) {
  EXPECT_EQ(parseError("FROM alpine\nCOPY \\\n   --chown=1 \\\n  --form=x a b\n"),
            "Dockerfile:4:3: unknown flag --form for COPY (allowed: --chown, --chmod, --from, "
            "--link, --parents, --exclude); did you mean --from?");
}

TEST(HeredocTest, RunWithHeredoc) {
  Dockerfile df = mustParse(
      "FROM alpine\n"
      "RUN <<EOF\n"
      "apt-get update\n"
      "  apt-get install -y curl\n"
      "EOF\n"
      "USER nobody\n");
  ASSERT_EQ(df.instructions.size(), 3u);
  const Instruction& run = df.instructions[1];
  EXPECT_THAT(run.args, ElementsAre("<<EOF"));
  ASSERT_EQ(run.heredocs.size(), 1u);
  EXPECT_EQ(run.heredocs[0].name, "EOF");
  EXPECT_EQ(run.heredocs[0].content, "apt-get update\n  apt-get install -y curl\n");
  EXPECT_TRUE(run.heredocs[0].expand);
  EXPECT_FALSE(run.heredocs[0].strip_tabs);
  EXPECT_EQ(run.pos.line, 2);
  EXPECT_EQ(run.end_line, 5);
  EXPECT_EQ(run.original, "RUN <<EOF\napt-get update\n  apt-get install -y curl\nEOF");
  EXPECT_EQ(df.instructions[2].pos.line, 6);
}

TEST(HeredocTest, DashStripsLeadingTabsFromBodyAndTerminator) {
  Dockerfile df = mustParse("FROM alpine\nRUN <<-EOT\n\t\techo a\n\t  echo b\n\tEOT\n");
  const Heredoc& h = df.instructions.at(1).heredocs.at(0);
  EXPECT_EQ(h.name, "EOT");
  EXPECT_TRUE(h.strip_tabs);
  EXPECT_EQ(h.content, "echo a\n  echo b\n");
  EXPECT_THAT(df.instructions.at(1).args, ElementsAre("<<-EOT"));
}

TEST(HeredocTest, WithoutDashTabbedTerminatorIsBody) {
  EXPECT_THAT(parseError("FROM alpine\nRUN <<EOT\necho\n\tEOT\n"),
              HasSubstr("Dockerfile:2:5: unterminated heredoc"));
}

TEST(HeredocTest, QuotedDelimiterTurnsExpansionOff) {
  for (const char* marker : {"<<\"EOF\"", "<<'EOF'", "<<E\"O\"F", "<<-'EOF'"}) {
    Dockerfile df = mustParse(std::string("FROM alpine\nRUN ") + marker + "\necho $HOME\nEOF\n");
    const Heredoc& h = df.instructions.at(1).heredocs.at(0);
    EXPECT_EQ(h.name, "EOF") << marker;
    EXPECT_FALSE(h.expand) << marker;
    EXPECT_EQ(h.content, "echo $HOME\n") << marker;
    EXPECT_THAT(df.instructions.at(1).args, ElementsAre(marker));
  }
}

TEST(HeredocTest, SeveralHeredocsOnOneLineFollowInOrder) {
  Dockerfile df = mustParse(
      "FROM alpine\n"
      "COPY <<a.txt <<\"b.txt\" /dest/\n"
      "first\n"
      "a.txt\n"
      "second\n"
      "more\n"
      "b.txt\n"
      "RUN true\n");
  const Instruction& copy = df.instructions.at(1);
  EXPECT_THAT(copy.args, ElementsAre("<<a.txt", "<<\"b.txt\"", "/dest/"));
  ASSERT_EQ(copy.heredocs.size(), 2u);
  EXPECT_EQ(copy.heredocs[0].name, "a.txt");
  EXPECT_EQ(copy.heredocs[0].content, "first\n");
  EXPECT_TRUE(copy.heredocs[0].expand);
  EXPECT_EQ(copy.heredocs[1].name, "b.txt");
  EXPECT_EQ(copy.heredocs[1].content, "second\nmore\n");
  EXPECT_FALSE(copy.heredocs[1].expand);
  EXPECT_EQ(copy.end_line, 7);
  EXPECT_EQ(df.instructions.at(2).pos.line, 8);
}

TEST(HeredocTest, CommandAfterTheMarker) {
  Dockerfile df = mustParse(
      "FROM alpine\n"
      "RUN <<EOF bash\n"
      "set -e\n"
      "EOF\n"
      "RUN python3 <<PY > /out.txt\n"
      "print('hi')\n"
      "PY\n"
      "RUN cat <<A | tee /x && cat <<B\n"
      "a\n"
      "A\n"
      "b\n"
      "B\n");
  EXPECT_THAT(df.instructions.at(1).args, ElementsAre("<<EOF bash"));
  EXPECT_EQ(df.instructions.at(1).heredocs.at(0).content, "set -e\n");
  EXPECT_THAT(df.instructions.at(2).args, ElementsAre("python3 <<PY > /out.txt"));
  EXPECT_EQ(df.instructions.at(2).heredocs.at(0).content, "print('hi')\n");
  ASSERT_EQ(df.instructions.at(3).heredocs.size(), 2u);
  EXPECT_EQ(df.instructions.at(3).heredocs[1].content, "b\n");
}

TEST(HeredocTest, RunFlagsAndFileDescriptorPrefix) {
  Dockerfile df = mustParse(
      "FROM alpine\n"
      "RUN --mount=type=cache,target=/root/.cache 3<<EOF cat /dev/fd/3\n"
      "x\n"
      "EOF\n");
  const Instruction& run = df.instructions.at(1);
  EXPECT_EQ(run.flags.at(0).raw, "--mount=type=cache,target=/root/.cache");
  EXPECT_EQ(run.heredocs.at(0).name, "EOF");
  EXPECT_EQ(run.heredocs.at(0).content, "x\n");
}

TEST(HeredocTest, MarkerAfterAContinuation) {
  Dockerfile df = mustParse("FROM alpine\nRUN \\\n  <<EOF sh\necho\nEOF\n");
  EXPECT_EQ(df.instructions.at(1).heredocs.at(0).content, "echo\n");
  EXPECT_EQ(df.instructions.at(1).end_line, 5);
}

TEST(HeredocTest, BodyIsNotParsedAsInstructions) {
  Dockerfile df = mustParse(
      "FROM alpine\n"
      "COPY <<EOF /etc/config\n"
      "# not a comment\n"
      "FORM not an instruction \\\n"
      "\n"
      "EOF\n");
  EXPECT_EQ(df.instructions.size(), 2u);
  EXPECT_EQ(df.instructions.at(1).heredocs.at(0).content,
            "# not a comment\nFORM not an instruction \\\n\n");
}

TEST(HeredocTest, CrLfBodyAndTerminator) {
  Dockerfile df = mustParse("FROM alpine\r\nRUN <<EOF\r\necho a\r\nEOF\r\nUSER x\r\n");
  EXPECT_EQ(df.instructions.at(1).heredocs.at(0).content, "echo a\n");
  EXPECT_EQ(df.instructions.size(), 3u);
}

TEST(HeredocTest, TerminatorAtEndOfFileWithoutNewline) {
  Dockerfile df = mustParse("FROM alpine\nRUN <<EOF\necho\nEOF");
  EXPECT_EQ(df.instructions.at(1).heredocs.at(0).content, "echo\n");
  EXPECT_EQ(df.instructions.at(1).end_line, 4);
}

TEST(HeredocTest, NotAHeredoc) {
  // Quoted, here-string, exec form, instructions other than RUN/COPY/ADD, no delimiter.
  Dockerfile df = mustParse(
      "FROM alpine\n"
      "RUN echo \"<<EOF\" '<<EOF' \\<<EOF\n"
      "RUN cat <<<EOF\n"
      "RUN [\"cat\", \"<<EOF\"]\n"
      "CMD cat <<EOF\n"
      "RUN echo << EOF\n"
      "LABEL a=<<EOF\n");
  ASSERT_EQ(df.instructions.size(), 7u);
  for (const Instruction& ins : df.instructions) {
    EXPECT_TRUE(ins.heredocs.empty()) << ins.original;
  }
}

TEST(HeredocTest, UnbalancedQuoteOnTheLineDisablesHeredocs) {
  // BuildKit's lexer fails on the whole line and finds no heredoc.
  Dockerfile df = mustParse("FROM alpine\nRUN cat <<EOF \"unterminated\nUSER x\n");
  EXPECT_TRUE(df.instructions.at(1).heredocs.empty());
  EXPECT_EQ(df.instructions.size(), 3u);
}

TEST(HeredocTest, UnterminatedHeredocNamesWhereItStarted) {
  EXPECT_EQ(parseError("FROM alpine\nRUN set -e; cat <<EOF\necho\nnot EOF\n"),
            "Dockerfile:2:17: unterminated heredoc: no line \"EOF\" ends the heredoc started here "
            "before the end of the file");
  EXPECT_THAT(parseError("FROM alpine\nCOPY <<a <<b /x\na\nb-not\n"),
              HasSubstr("Dockerfile:2:10: unterminated heredoc: no line \"b\""));
}

TEST(OrderTest, OnlyArgMayComeBeforeFrom) {
  Dockerfile df = mustParse("ARG VERSION=3.19\n# comment\nARG OTHER\nFROM alpine:${VERSION}\n");
  EXPECT_EQ(df.instructions.size(), 3u);
  EXPECT_EQ(parseError("# hello\nRUN echo hi\nFROM alpine\n"),
            "Dockerfile:2:1: RUN before the first FROM: a Dockerfile must start with FROM (only "
            "ARG, comments and parser directives may come before it)");
  EXPECT_THAT(parseError("ARG A\n  LABEL a=b\nFROM x\n"),
              HasSubstr("Dockerfile:2:3: LABEL before the first FROM"));
}

TEST(OrderTest, NoFromAtAll) {
  EXPECT_EQ(parseError("ARG A\nARG B\n"),
            "Dockerfile:1:1: no FROM instruction: a Dockerfile needs at least one build stage "
            "(FROM <image>); only ARG may come before it");
}

TEST(OrderTest, EmptyDockerfile) {
  EXPECT_EQ(parseError(""),
            "Dockerfile:1:1: the Dockerfile has no instructions (it needs at least a FROM)");
  EXPECT_EQ(parseError("# syntax=docker/dockerfile:1\n\n# only comments\n   \n"),
            "Dockerfile:4:1: the Dockerfile has no instructions (it needs at least a FROM)");
  EXPECT_THAT(parseError("\\\n\n"), HasSubstr("has no instructions"));
}

TEST(PositionTest, FileNameAppearsInErrors) {
  auto r = parse("FORM alpine\n", "build/app.Dockerfile");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "build/app.Dockerfile:1:1: unknown instruction \"FORM\" (did you mean FROM?)");
  EXPECT_EQ(mustParse("FROM a\n").file_name, "Dockerfile");
}

TEST(PositionTest, OriginalKeepsTheTextAsWritten) {
  Dockerfile df = mustParse(
      "FROM alpine\n"
      "  RUN echo a \\\n"
      "# inner comment\n"
      "    b   \n");
  EXPECT_EQ(df.instructions.at(1).original, "RUN echo a \\\n# inner comment\n    b   ");
  EXPECT_EQ(df.instructions.at(1).pos.column, 3);
}

}  // namespace
}  // namespace lf::dockerfile
