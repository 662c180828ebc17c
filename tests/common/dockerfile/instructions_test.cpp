// Tests of every instruction's argument form, flags and argument errors.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/dockerfile/parser.h"
#include "tests/common/dockerfile/parse_helpers.h"

namespace lf::dockerfile {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<std::string> flagRaws(const Instruction& ins) {
  std::vector<std::string> out;
  for (const Flag& f : ins.flags) {
    out.push_back(f.raw);
  }
  return out;
}

TEST(FromTest, ImageStageAndPlatform) {
  Dockerfile df = mustParse(
      "FROM --platform=$BUILDPLATFORM golang:1.22 AS build\n"
      "from alpine\n"
      "FROM build as Final.Stage-1_x\n");
  const Instruction& a = df.instructions.at(0);
  EXPECT_EQ(a.keyword, "FROM");
  EXPECT_THAT(a.args, ElementsAre("golang:1.22", "AS", "build"));
  ASSERT_EQ(a.flags.size(), 1u);
  EXPECT_EQ(a.flags[0].name, "platform");
  EXPECT_EQ(a.flags[0].value, "$BUILDPLATFORM");
  EXPECT_EQ(a.flags[0].raw, "--platform=$BUILDPLATFORM");
  EXPECT_EQ(a.flags[0].pos.line, 1);
  EXPECT_EQ(a.flags[0].pos.column, 6);
  EXPECT_EQ(df.instructions.at(1).keyword, "FROM");
  EXPECT_THAT(df.instructions.at(1).args, ElementsAre("alpine"));
  EXPECT_THAT(df.instructions.at(2).args, ElementsAre("build", "as", "Final.Stage-1_x"));
}

TEST(FromTest, Errors) {
  EXPECT_EQ(parseError("FROM\n"),
            "Dockerfile:1:1: FROM needs an image: FROM [--platform=<platform>] <image> [AS "
            "<name>]");
  EXPECT_EQ(parseError("FROM --platform=linux/amd64\n"),
            "Dockerfile:1:1: FROM needs an image: FROM [--platform=<platform>] <image> [AS "
            "<name>]");
  EXPECT_EQ(parseError("FROM alpine build\n"),
            "Dockerfile:1:13: FROM requires either one or three arguments (FROM <image> [AS "
            "<name>]), got 2");
  EXPECT_THAT(parseError("FROM alpine IS build\n"), HasSubstr("Dockerfile:1:13: FROM requires"));
  EXPECT_THAT(parseError("FROM a AS b c\n"), HasSubstr("got 4"));
  EXPECT_EQ(parseError("FROM alpine AS 1st\n"),
            "Dockerfile:1:16: invalid name for build stage: \"1st\", name can't start with a "
            "number or contain symbols");
  EXPECT_THAT(parseError("FROM alpine AS a/b\n"), HasSubstr("invalid name for build stage"));
  EXPECT_EQ(parseError("FROM --plattform=x alpine\n"),
            "Dockerfile:1:6: unknown flag --plattform for FROM (allowed: --platform); did you "
            "mean --platform?");
  EXPECT_EQ(parseError("FROM --platform alpine\n"),
            "Dockerfile:1:6: flag --platform for FROM needs a value: --platform=<value>");
}

TEST(RunTest, ShellFormKeepsTheCommandAsOneString) {
  Instruction run = second("RUN   echo \"a  b\" 'c' && ls   ");
  EXPECT_EQ(run.keyword, "RUN");
  EXPECT_FALSE(run.json);
  EXPECT_THAT(run.args, ElementsAre("echo \"a  b\" 'c' && ls"));
  EXPECT_THAT(run.flags, IsEmpty());
}

TEST(RunTest, ExecForm) {
  Instruction run = second("RUN [ \"/bin/sh\", \"-c\", \"echo \\\"hi\\\" \\u00e9\" ]  ");
  EXPECT_TRUE(run.json);
  EXPECT_THAT(run.args, ElementsAre("/bin/sh", "-c", "echo \"hi\" \xC3\xA9"));
  EXPECT_TRUE(second("CMD []").json);
  EXPECT_THAT(second("CMD []").args, IsEmpty());
  EXPECT_THAT(secondError("RUN []"), HasSubstr("RUN needs a command"));
}

TEST(RunTest, InvalidJsonIsShellForm) {
  for (const char* args : {"[\"a\", 'b']", "[unterminated", "[\"a\",]", "[\"a\"] extra",
                           "[ -f /etc/passwd ] && echo yes", "[\"a\" \"b\"]"}) {
    Instruction run = second(std::string("RUN ") + args);
    EXPECT_FALSE(run.json) << args;
    EXPECT_THAT(run.args, ElementsAre(args));
  }
}

TEST(RunTest, JsonArrayOfNonStringsIsAnError) {
  EXPECT_EQ(secondError("RUN [\"echo\", 1]"),
            "Dockerfile:2:5: when using JSON array syntax, arrays must be comprised of strings "
            "only");
  EXPECT_THAT(secondError("CMD [null]"), HasSubstr("strings only"));
  EXPECT_THAT(secondError("COPY [\"a\", [\"b\"]]"), HasSubstr("strings only"));
}

TEST(RunTest, Flags) {
  Instruction run = second(
      "RUN --mount=type=cache,target=/var/cache/apt --mount=type=secret,id=npmrc "
      "--network=none --security=insecure apt-get update");
  EXPECT_THAT(flagRaws(run),
              ElementsAre("--mount=type=cache,target=/var/cache/apt",
                          "--mount=type=secret,id=npmrc", "--network=none", "--security=insecure"));
  EXPECT_EQ(run.flags[1].value, "type=secret,id=npmrc");
  EXPECT_EQ(run.flags[2].pos.column, 75);
  EXPECT_THAT(run.args, ElementsAre("apt-get update"));
}

TEST(RunTest, FlagQuotesAreRemovedFromTheValueButKeptInRaw) {
  Instruction run = second("RUN --mount=type=bind,target=\"/a b\" ls");
  EXPECT_EQ(run.flags.at(0).value, "type=bind,target=/a b");
  EXPECT_EQ(run.flags.at(0).raw, "--mount=type=bind,target=\"/a b\"");
  EXPECT_THAT(run.args, ElementsAre("ls"));
}

TEST(RunTest, FlagsOnlyAtTheStartAndDoubleDashEndsThem) {
  EXPECT_THAT(second("RUN echo --mount=x").args, ElementsAre("echo --mount=x"));
  Instruction run = second("RUN --network=host -- --weird-command");
  EXPECT_THAT(flagRaws(run), ElementsAre("--network=host"));
  EXPECT_THAT(run.args, ElementsAre("--weird-command"));
}

TEST(RunTest, Errors) {
  EXPECT_EQ(secondError("RUN"),
            "Dockerfile:2:1: RUN needs a command: RUN <command> or RUN [\"executable\", "
            "\"arg\"...]");
  EXPECT_THAT(secondError("RUN --network=none"), HasSubstr("RUN needs a command"));
  EXPECT_EQ(secondError("RUN --network=a --network=b x"),
            "Dockerfile:2:17: duplicate flag --network for RUN (it may be given only once)");
  EXPECT_EQ(secondError("RUN --mount x"),
            "Dockerfile:2:5: flag --mount for RUN needs a value: --mount=<value>");
  EXPECT_EQ(secondError("RUN --chown=1 x"),
            "Dockerfile:2:5: unknown flag --chown for RUN (allowed: --mount, --network, "
            "--security)");
}

TEST(CmdEntrypointTest, Forms) {
  EXPECT_THAT(second("CMD [\"nginx\", \"-g\", \"daemon off;\"]").args,
              ElementsAre("nginx", "-g", "daemon off;"));
  EXPECT_THAT(second("cmd echo hi").args, ElementsAre("echo hi"));
  EXPECT_THAT(second("ENTRYPOINT [\"/entrypoint.sh\"]").args, ElementsAre("/entrypoint.sh"));
  EXPECT_TRUE(second("ENTRYPOINT [\"/entrypoint.sh\"]").json);
  EXPECT_THAT(second("Entrypoint exec top -b").args, ElementsAre("exec top -b"));
  // Docker accepts an empty CMD/ENTRYPOINT (it clears the inherited one).
  EXPECT_THAT(second("CMD").args, IsEmpty());
  EXPECT_THAT(second("ENTRYPOINT []").args, IsEmpty());
}

TEST(CmdEntrypointTest, FlagsAreRejectedLikeDocker) {
  EXPECT_EQ(secondError("CMD --help"),
            "Dockerfile:2:5: unknown flag --help for CMD (CMD takes no flags)");
}

TEST(LabelTest, SeveralPairsQuotesAndEscapes) {
  Instruction l = second(
      "LABEL version=\"1.0\" description=\"a label with spaces\" "
      "quote=\"say \\\"hi\\\"\" multi.label1=value1 'single quoted'=x");
  EXPECT_THAT(l.args,
              ElementsAre("version", "\"1.0\"", "description", "\"a label with spaces\"", "quote",
                          "\"say \\\"hi\\\"\"", "multi.label1", "value1", "'single quoted'", "x"));
  ASSERT_EQ(l.pairs.size(), 5u);
  EXPECT_EQ(l.pairs[2].key, "quote");
  EXPECT_EQ(l.pairs[2].value, "\"say \\\"hi\\\"\"");
}

TEST(LabelTest, ContinuationAndEmptyValue) {
  Dockerfile df = mustParse(
      "FROM alpine\n"
      "LABEL a=1 \\\n"
      "      b= \\\n"
      "      c=\"\"\n");
  EXPECT_THAT(df.instructions.at(1).args, ElementsAre("a", "1", "b", "", "c", "\"\""));
}

TEST(LabelTest, LegacyFormIsOnePairWithTheRestOfTheLine) {
  Instruction l = second("LABEL maintainer  Jane Doe <jane@example.com>");
  EXPECT_THAT(l.args, ElementsAre("maintainer", "Jane Doe <jane@example.com>"));
}

TEST(LabelTest, Errors) {
  EXPECT_EQ(secondError("LABEL"),
            "Dockerfile:2:1: LABEL requires at least one argument: LABEL <name>=<value>...");
  EXPECT_EQ(secondError("LABEL version"),
            "Dockerfile:2:7: LABEL must have two arguments: no '=' in \"version\" (use LABEL "
            "version=<value>)");
  EXPECT_EQ(secondError("LABEL a=b c"),
            "Dockerfile:2:11: can't find = in \"c\": LABEL arguments must be of the form "
            "<name>=<value>");
  EXPECT_EQ(secondError("LABEL a=b =c"), "Dockerfile:2:11: LABEL names can not be blank");
}

TEST(EnvTest, LegacyForm) {
  Instruction e = second("ENV PATH /usr/local/bin:$PATH \"quoted\" x=y");
  EXPECT_THAT(e.args, ElementsAre("PATH", "/usr/local/bin:$PATH \"quoted\" x=y"));
  ASSERT_EQ(e.pairs.size(), 1u);
  EXPECT_EQ(e.pairs[0].key, "PATH");
}

TEST(EnvTest, NameValueForm) {
  Instruction e = second("ENV A=1 B=\"two words\" C=three\\ words D= E='$x'");
  EXPECT_THAT(e.args, ElementsAre("A", "1", "B", "\"two words\"", "C", "three\\ words", "D", "",
                                  "E", "'$x'"));
  ASSERT_EQ(e.pairs.size(), 5u);
  EXPECT_EQ(e.pairs[3].value, "");
}

TEST(EnvTest, BacktickEscapeInWords) {
  Dockerfile df = mustParse("# escape=`\nFROM alpine\nENV A=a` b C=\"x`\"y\" D=c:\\dir\n");
  EXPECT_THAT(df.instructions.at(1).args,
              ElementsAre("A", "a` b", "C", "\"x`\"y\"", "D", "c:\\dir"));
}

TEST(EnvTest, Errors) {
  EXPECT_EQ(secondError("ENV"),
            "Dockerfile:2:1: ENV requires at least one argument: ENV <name>=<value>...");
  EXPECT_EQ(secondError("ENV PATH"),
            "Dockerfile:2:5: ENV must have two arguments: no '=' in \"PATH\" (use ENV "
            "PATH=<value>)");
  EXPECT_EQ(secondError("ENV =x"), "Dockerfile:2:5: ENV names can not be blank");
  EXPECT_THAT(secondError("ENV --x=1 A=b"), HasSubstr("unknown flag --x for ENV"));
}

TEST(MaintainerTest, RestOfLine) {
  EXPECT_THAT(second("MAINTAINER Jane Doe <jane@example.com>").args,
              ElementsAre("Jane Doe <jane@example.com>"));
  EXPECT_EQ(secondError("MAINTAINER"), "Dockerfile:2:1: MAINTAINER requires exactly one argument");
}

TEST(ExposeTest, Ports) {
  EXPECT_THAT(second("EXPOSE 80/tcp  443 53/udp $PORT").args,
              ElementsAre("80/tcp", "443", "53/udp", "$PORT"));
  EXPECT_EQ(secondError("EXPOSE"),
            "Dockerfile:2:1: EXPOSE requires at least one argument: EXPOSE "
            "<port>[/<protocol>]...");
}

TEST(CopyAddTest, AllCopyFlags) {
  Instruction c = second(
      "COPY --chown=app:app --chmod=0755 --from=build --link --parents --exclude=*.md "
      "--exclude=tmp/ ./src ./lib /app/");
  EXPECT_EQ(c.keyword, "COPY");
  EXPECT_THAT(flagRaws(c), ElementsAre("--chown=app:app", "--chmod=0755", "--from=build", "--link",
                                       "--parents", "--exclude=*.md", "--exclude=tmp/"));
  EXPECT_EQ(c.flags[3].name, "link");
  EXPECT_FALSE(c.flags[3].value.has_value());
  EXPECT_THAT(c.args, ElementsAre("./src", "./lib", "/app/"));
  EXPECT_FALSE(c.json);
}

TEST(CopyAddTest, AllAddFlags) {
  Instruction a = second(
      "ADD --chown=1000 --chmod=644 --link=false --keep-git-dir=true "
      "--checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d "
      "--exclude=.git --unpack https://example.com/a.tar.gz /dest");
  EXPECT_EQ(a.flags.size(), 7u);
  EXPECT_EQ(a.flags[2].value, "false");
  EXPECT_THAT(a.args, ElementsAre("https://example.com/a.tar.gz", "/dest"));
  EXPECT_EQ(secondError("ADD --from=build a b"),
            "Dockerfile:2:5: unknown flag --from for ADD (allowed: --chown, --chmod, --link, "
            "--keep-git-dir, --checksum, --exclude, --unpack)");
}

TEST(CopyAddTest, ExecFormKeepsSpacesInPaths) {
  Instruction c = second("COPY [\"my file.txt\", \"other file\", \"/dest dir/\"]");
  EXPECT_TRUE(c.json);
  EXPECT_THAT(c.args, ElementsAre("my file.txt", "other file", "/dest dir/"));
  Instruction bad = second("COPY [\"a\", 'b'] /x");
  EXPECT_FALSE(bad.json);
  EXPECT_THAT(bad.args, ElementsAre("[\"a\",", "'b']", "/x"));
}

TEST(CopyAddTest, Errors) {
  EXPECT_EQ(secondError("COPY a"),
            "Dockerfile:2:1: COPY needs a source and a destination: COPY [--flags] <src>... "
            "<dest> (only one argument was given)");
  EXPECT_EQ(secondError("ADD"),
            "Dockerfile:2:1: ADD needs a source and a destination: ADD [--flags] <src>... "
            "<dest>");
  EXPECT_THAT(secondError("COPY [\"a\"]"), HasSubstr("COPY needs a source and a destination"));
  EXPECT_EQ(secondError("COPY --form=build a b"),
            "Dockerfile:2:6: unknown flag --form for COPY (allowed: --chown, --chmod, --from, "
            "--link, --parents, --exclude); did you mean --from?");
  EXPECT_EQ(secondError("COPY --link=maybe a b"),
            "Dockerfile:2:6: flag --link for COPY expects a boolean value (true or false), not "
            "\"maybe\"");
  EXPECT_EQ(secondError("COPY --link= a b"),
            "Dockerfile:2:6: flag --link for COPY is missing a value after '=' (use --link or "
            "--link=true|false)");
  EXPECT_EQ(secondError("COPY --from a b"),
            "Dockerfile:2:6: flag --from for COPY needs a value: --from=<value>");
  EXPECT_EQ(secondError("COPY --from=a --from=b x y"),
            "Dockerfile:2:15: duplicate flag --from for COPY (it may be given only once)");
  EXPECT_THAT(secondError("COPY --link --link a b"), HasSubstr("duplicate flag --link"));
}

TEST(VolumeTest, Forms) {
  EXPECT_THAT(second("VOLUME /data /var/log").args, ElementsAre("/data", "/var/log"));
  Instruction v = second("VOLUME [\"/data\", \"/my vol\"]");
  EXPECT_TRUE(v.json);
  EXPECT_THAT(v.args, ElementsAre("/data", "/my vol"));
  EXPECT_EQ(secondError("VOLUME"),
            "Dockerfile:2:1: VOLUME requires at least one argument: VOLUME <path>...");
  EXPECT_EQ(secondError("VOLUME [\"/a\", \"\"]"),
            "Dockerfile:2:8: VOLUME specified can not be an empty string");
}

TEST(SingleArgumentTest, UserWorkdirStopsignal) {
  EXPECT_THAT(second("USER app:app").args, ElementsAre("app:app"));
  EXPECT_THAT(second("USER  1000 1000 ").args, ElementsAre("1000 1000"));
  EXPECT_THAT(second("WORKDIR /path with spaces/x").args, ElementsAre("/path with spaces/x"));
  EXPECT_THAT(second("STOPSIGNAL SIGTERM").args, ElementsAre("SIGTERM"));
  EXPECT_EQ(secondError("USER"), "Dockerfile:2:1: USER requires exactly one argument");
  EXPECT_EQ(secondError("  WORKDIR   "), "Dockerfile:2:3: WORKDIR requires exactly one argument");
  EXPECT_EQ(secondError("STOPSIGNAL"), "Dockerfile:2:1: STOPSIGNAL requires exactly one argument");
}

TEST(ArgTest, NamesAndDefaults) {
  Instruction a = second("ARG A B=2 C=\"x y\" D=");
  EXPECT_THAT(a.args, ElementsAre("A", "B", "2", "C", "\"x y\"", "D", ""));
  ASSERT_EQ(a.pairs.size(), 4u);
  EXPECT_EQ(a.pairs[0].key, "A");
  EXPECT_FALSE(a.pairs[0].value.has_value());
  EXPECT_EQ(a.pairs[1].value, "2");
  EXPECT_EQ(a.pairs[3].value, "");
  EXPECT_EQ(secondError("ARG"),
            "Dockerfile:2:1: ARG requires at least one argument: ARG <name>[=<default>]...");
  EXPECT_EQ(secondError("ARG A =x"), "Dockerfile:2:7: ARG names can not be blank");
}

TEST(OnbuildTest, TriggerIsParsed) {
  Instruction o = second("ONBUILD  COPY --from=build --chown=1 /app /dst");
  EXPECT_EQ(o.keyword, "ONBUILD");
  EXPECT_THAT(o.args, ElementsAre("COPY --from=build --chown=1 /app /dst"));
  ASSERT_NE(o.trigger, nullptr);
  EXPECT_EQ(o.trigger->keyword, "COPY");
  EXPECT_THAT(flagRaws(*o.trigger), ElementsAre("--from=build", "--chown=1"));
  EXPECT_THAT(o.trigger->args, ElementsAre("/app", "/dst"));
  EXPECT_EQ(o.trigger->pos.line, 2);
  EXPECT_EQ(o.trigger->pos.column, 10);
  EXPECT_EQ(o.trigger->flags[0].pos.column, 15);
  EXPECT_EQ(o.trigger->original, "COPY --from=build --chown=1 /app /dst");
  Instruction r = second("onbuild run [\"make\"]");
  EXPECT_EQ(r.trigger->keyword, "RUN");
  EXPECT_TRUE(r.trigger->json);
  EXPECT_FALSE(r.json);
}

TEST(OnbuildTest, Errors) {
  EXPECT_EQ(secondError("ONBUILD"),
            "Dockerfile:2:1: ONBUILD requires at least one argument: ONBUILD <instruction>");
  EXPECT_EQ(secondError("ONBUILD ONBUILD RUN x"),
            "Dockerfile:2:9: chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
  EXPECT_EQ(secondError("ONBUILD from alpine"),
            "Dockerfile:2:9: from isn't allowed as an ONBUILD trigger");
  EXPECT_EQ(secondError("ONBUILD MAINTAINER me"),
            "Dockerfile:2:9: MAINTAINER isn't allowed as an ONBUILD trigger");
  EXPECT_EQ(secondError("ONBUILD FORM x"),
            "Dockerfile:2:9: unknown instruction \"FORM\" (did you mean FROM?)");
  EXPECT_EQ(secondError("ONBUILD COPY --form=x a b"),
            "Dockerfile:2:14: unknown flag --form for COPY (allowed: --chown, --chmod, --from, "
            "--link, --parents, --exclude); did you mean --from?");
}

TEST(HealthcheckTest, CmdShellExecAndFlags) {
  Instruction h = second(
      "HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --start-interval=1s "
      "--retries=3 CMD curl -f http://localhost/ || exit 1");
  EXPECT_EQ(h.flags.size(), 5u);
  EXPECT_EQ(h.flags[4].value, "3");
  EXPECT_THAT(h.args, ElementsAre("CMD", "curl -f http://localhost/ || exit 1"));
  EXPECT_FALSE(h.json);
  Instruction e = second("HEALTHCHECK cmd [\"/bin/check\", \"--deep\"]");
  EXPECT_TRUE(e.json);
  EXPECT_THAT(e.args, ElementsAre("CMD", "/bin/check", "--deep"));
  EXPECT_THAT(second("HEALTHCHECK NONE").args, ElementsAre("NONE"));
  EXPECT_THAT(second("healthcheck none").args, ElementsAre("NONE"));
}

TEST(HealthcheckTest, Errors) {
  EXPECT_EQ(secondError("HEALTHCHECK"),
            "Dockerfile:2:1: HEALTHCHECK requires at least one argument: HEALTHCHECK [--flags] "
            "CMD <command>, or HEALTHCHECK NONE");
  EXPECT_EQ(secondError("HEALTHCHECK NONE x"),
            "Dockerfile:2:18: HEALTHCHECK NONE takes no arguments");
  EXPECT_EQ(secondError("HEALTHCHECK --interval=1s NONE"),
            "Dockerfile:2:27: HEALTHCHECK NONE takes no flags");
  EXPECT_EQ(secondError("HEALTHCHECK CMD"),
            "Dockerfile:2:13: missing command after HEALTHCHECK CMD");
  EXPECT_THAT(secondError("HEALTHCHECK CMD []"), HasSubstr("missing command"));
  EXPECT_EQ(secondError("HEALTHCHECK RUN x"),
            "Dockerfile:2:13: unknown type \"RUN\" in HEALTHCHECK (try CMD or NONE)");
  EXPECT_EQ(secondError("HEALTHCHECK --intervall=1s CMD x"),
            "Dockerfile:2:13: unknown flag --intervall for HEALTHCHECK (allowed: --interval, "
            "--timeout, --start-period, --start-interval, --retries); did you mean --interval?");
  EXPECT_THAT(secondError("HEALTHCHECK --retries CMD x"), HasSubstr("needs a value"));
}

TEST(ShellTest, MustBeJson) {
  Instruction s = second("SHELL [\"powershell\", \"-command\"]");
  EXPECT_TRUE(s.json);
  EXPECT_THAT(s.args, ElementsAre("powershell", "-command"));
  EXPECT_EQ(secondError("SHELL /bin/bash -c"),
            "Dockerfile:2:7: SHELL requires the arguments to be in JSON form: SHELL "
            "[\"executable\", \"parameters\"] (for example SHELL [\"/bin/sh\", \"-c\"])");
  EXPECT_THAT(secondError("SHELL [\"/bin/bash\", '-c']"), HasSubstr("JSON form"));
  EXPECT_THAT(secondError("SHELL"), HasSubstr("SHELL requires at least one argument"));
  EXPECT_THAT(secondError("SHELL []"), HasSubstr("SHELL requires at least one argument"));
}

TEST(KeywordTest, CaseInsensitiveAndUpperCasedInTheTree) {
  Dockerfile df = mustParse("fRoM alpine\nrun true\nCoPy a b\nworkdir /x\n");
  EXPECT_EQ(df.instructions.at(0).keyword, "FROM");
  EXPECT_EQ(df.instructions.at(1).keyword, "RUN");
  EXPECT_EQ(df.instructions.at(2).keyword, "COPY");
  EXPECT_EQ(df.instructions.at(3).keyword, "WORKDIR");
}

TEST(KeywordTest, UnknownInstructionSuggestsTheClosest) {
  EXPECT_EQ(parseError("FORM alpine\n"),
            "Dockerfile:1:1: unknown instruction \"FORM\" (did you mean FROM?)");
  EXPECT_EQ(secondError("  RUNN echo"),
            "Dockerfile:2:3: unknown instruction \"RUNN\" (did you mean RUN?)");
  EXPECT_EQ(secondError("ENTRYPIONT [\"x\"]"),
            "Dockerfile:2:1: unknown instruction \"ENTRYPIONT\" (did you mean ENTRYPOINT?)");
  EXPECT_EQ(secondError("XYZZY plugh"),
            "Dockerfile:2:1: unknown instruction \"XYZZY\" (expected one of ADD, ARG, CMD, COPY, "
            "ENTRYPOINT, ENV, EXPOSE, FROM, HEALTHCHECK, LABEL, MAINTAINER, ONBUILD, RUN, SHELL, "
            "STOPSIGNAL, USER, VOLUME, WORKDIR)");
}

TEST(SpecTest, KnownInstructionsAndFlags) {
  EXPECT_EQ(instructionSpecs().size(), 18u);
  const InstructionSpec* copy = findInstructionSpec("copy");
  ASSERT_NE(copy, nullptr);
  EXPECT_EQ(copy->keyword, "COPY");
  ASSERT_NE(findFlagSpec(*copy, "exclude"), nullptr);
  EXPECT_EQ(findFlagSpec(*copy, "exclude")->kind, FlagKind::kStrings);
  EXPECT_EQ(findFlagSpec(*copy, "link")->kind, FlagKind::kBool);
  EXPECT_EQ(findFlagSpec(*copy, "checksum"), nullptr);
  EXPECT_EQ(findInstructionSpec("FORM"), nullptr);
  EXPECT_TRUE(findInstructionSpec("ENV")->flags.empty());
}

}  // namespace
}  // namespace lf::dockerfile
