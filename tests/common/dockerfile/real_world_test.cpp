// Realistic Dockerfiles (tests/data/dockerfiles), the JSON dump, and the parser's behaviour on
// large and hostile inputs (linear time, no crash).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "common/dockerfile/ast_json.h"
#include "common/dockerfile/parser.h"
#include "tests/common/dockerfile/parse_helpers.h"
#include "tests/support/temp_dir.h"

namespace lf::dockerfile {
namespace {

using ::testing::ElementsAre;

std::string dataFile(const std::string& name) {
  const char* dir = std::getenv("LF_TEST_DATA");
  std::filesystem::path base = dir ? dir : "tests/data";  // ctest sets LF_TEST_DATA
  return lf::testing::readFile(base / "dockerfiles" / name);
}

std::vector<std::string> keywords(const Dockerfile& df) {
  std::vector<std::string> out;
  for (const Instruction& i : df.instructions) {
    out.push_back(i.keyword);
  }
  return out;
}

TEST(RealWorldTest, GoMultiStage) {
  std::string text = dataFile("go-multistage.Dockerfile");
  ASSERT_FALSE(text.empty());
  Dockerfile df = mustParse(text);
  ASSERT_EQ(df.directives.size(), 2u);
  EXPECT_EQ(df.directives[1].name, "check");
  EXPECT_THAT(keywords(df), ElementsAre("ARG", "ARG", "FROM", "WORKDIR", "ENV", "COPY", "RUN",
                                        "COPY", "ARG", "RUN", "FROM", "RUN", "FROM", "RUN", "COPY",
                                        "USER", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD"));
  const Instruction& build = df.instructions[9];
  EXPECT_EQ(build.flags.size(), 2u);
  EXPECT_EQ(build.pos.line, 16);
  EXPECT_EQ(build.end_line, 18);
  const Instruction& env = df.instructions[4];
  EXPECT_THAT(env.args, ElementsAre("CGO_ENABLED", "0", "GOFLAGS", "\"-trimpath -mod=readonly\""));
  const Instruction& hc = df.instructions[17];
  EXPECT_TRUE(hc.json);
  EXPECT_THAT(hc.args, ElementsAre("CMD", "/usr/local/bin/server", "-healthcheck"));
  EXPECT_EQ(df.instructions[14].flags.size(), 3u);
}

TEST(RealWorldTest, PythonWithHeredocs) {
  Dockerfile df = mustParse(dataFile("python-heredocs.Dockerfile"));
  EXPECT_THAT(keywords(df),
              ElementsAre("FROM", "LABEL", "ENV", "ENV", "RUN", "WORKDIR", "COPY", "RUN", "COPY",
                          "RUN", "COPY", "VOLUME", "STOPSIGNAL", "CMD"));
  EXPECT_EQ(df.instructions[1].pairs.size(), 3u);
  EXPECT_EQ(df.instructions[1].pairs[1].value, "\"A \\\"small\\\" service\"");
  EXPECT_THAT(df.instructions[2].args, ElementsAre("PYTHONDONTWRITEBYTECODE", "1"));
  const Instruction& run = df.instructions[4];
  ASSERT_EQ(run.heredocs.size(), 1u);
  EXPECT_EQ(run.heredocs[0].content.substr(0, 9), "set -eux\n");
  EXPECT_EQ(run.end_line, 16);
  const Heredoc& conf = df.instructions[8].heredocs.at(0);
  EXPECT_EQ(conf.content, "[server]\nport = $PORT\n");
  EXPECT_FALSE(conf.expand);
  EXPECT_EQ(df.instructions[9].heredocs.at(0).name, "PY");
}

TEST(RealWorldTest, WindowsBacktickEscape) {
  Dockerfile df = mustParse(dataFile("windows-backtick.Dockerfile"));
  EXPECT_EQ(df.escape, '`');
  EXPECT_THAT(df.instructions.at(2).args, ElementsAre("C:\\app"));
  EXPECT_THAT(df.instructions.at(3).args, ElementsAre("app\\", "C:\\app\\"));
  EXPECT_EQ(df.instructions.at(4).end_line, 8);
  EXPECT_THAT(df.instructions.at(5).args,
              ElementsAre("APP_HOME", "C:\\app", "LOG_DIR", "\"C:\\logs dir\""));
  EXPECT_THAT(df.instructions.at(7).args, ElementsAre("C:\\app\\server.exe"));
}

TEST(RealWorldTest, NodeWithOnbuild) {
  Dockerfile df = mustParse(dataFile("node-onbuild.Dockerfile"));
  ASSERT_EQ(df.instructions.size(), 11u);
  EXPECT_EQ(df.instructions[6].trigger->keyword, "RUN");
  EXPECT_THAT(df.instructions[6].trigger->args, ElementsAre("npm ci --omit=dev"));
  EXPECT_THAT(df.instructions[10].args, ElementsAre("node server.js"));
  EXPECT_EQ(df.instructions[10].pos.line, 15);
}

TEST(AstJsonTest, DumpsEveryField) {
  Dockerfile df = mustParse(
      "FROM alpine AS base\n"
      "COPY --from=base --link <<EOF /x\n"
      "hello\n"
      "EOF\n"
      "CMD [\"sh\"]\n"
      "ONBUILD RUN make\n");
  nlohmann::json j = toJson(df);
  nlohmann::json expected = nlohmann::json::parse(R"([
    {"instruction": "FROM", "flags": [], "args": ["alpine", "AS", "base"], "json": false,
     "heredocs": [], "line": 1, "end_line": 1},
    {"instruction": "COPY", "flags": ["--from=base", "--link"], "args": ["<<EOF", "/x"],
     "json": false, "heredocs": [{"name": "EOF", "content": "hello\n", "expand": true}],
     "line": 2, "end_line": 4},
    {"instruction": "CMD", "flags": [], "args": ["sh"], "json": true, "heredocs": [],
     "line": 5, "end_line": 5},
    {"instruction": "ONBUILD", "flags": [], "args": ["RUN make"], "json": false, "heredocs": [],
     "line": 6, "end_line": 6,
     "trigger": {"instruction": "RUN", "flags": [], "args": ["make"], "json": false,
                 "heredocs": [], "line": 6, "end_line": 6}}
  ])");
  EXPECT_EQ(j, expected) << j.dump(2);
  EXPECT_EQ(nlohmann::json::parse(dumpJson(df, -1)), expected);
}

TEST(AstJsonTest, InvalidUtf8IsReplacedNotThrown) {
  Dockerfile df = mustParse("FROM alpine\nRUN echo \xff\xfe\n");
  std::string out = dumpJson(df);
  EXPECT_NE(out.find("\xEF\xBF\xBD"), std::string::npos);
}

TEST(AstJsonTest, TextListing) {
  Dockerfile df = mustParse(
      "FROM alpine\n"
      "ENV A=1 B=\"x y\"\n"
      "RUN <<-EOF\n"
      "\techo hi\n"
      "EOF\n"
      "CMD [\"a b\"]\n");
  EXPECT_EQ(toText(df),
            "    1  FROM alpine\n"
            "    2  ENV A=1 B=\"\\\"x y\\\"\"\n"
            "    3  RUN <<-EOF\n"
            "       <<-EOF\n"
            "       | echo hi\n"
            "    6  CMD [\"a b\"]\n");
}

std::string bigDockerfile(int instructions) {
  std::string s = "# syntax=docker/dockerfile:1\nFROM alpine AS base\n";
  for (int i = 0; i < instructions; ++i) {
    switch (i % 5) {
      case 0:
        s += "RUN apk add --no-cache pkg" + std::to_string(i) + " \\\n    && echo done\n";
        break;
      case 1:
        s += "ENV VAR" + std::to_string(i) + "=\"value " + std::to_string(i) + "\" OTHER=x\n";
        break;
      case 2:
        s += "COPY --chown=app:app --link src/" + std::to_string(i) + " /dst/\n";
        break;
      case 3:
        s += "RUN <<EOF\nset -e\necho " + std::to_string(i) + "\nEOF\n";
        break;
      default:
        s += "LABEL k" + std::to_string(i) + "=v \"quoted key\"=\"v\"\n";
        break;
    }
  }
  return s;
}

TEST(ScaleTest, TenThousandInstructionsParseQuickly) {
  std::string text = bigDockerfile(10000);
  auto start = std::chrono::steady_clock::now();
  Dockerfile df = mustParse(text);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  EXPECT_EQ(df.instructions.size(), 10001u);
  // Typically a few ms in release builds; the bound only catches super-linear behaviour, with
  // room for sanitizer builds.
  EXPECT_LT(ms, 3000);
}

TEST(ScaleTest, LongLinesAndManyFlagsStayLinear) {
  std::string text = "FROM alpine\nRUN ";
  for (int i = 0; i < 20000; ++i) {
    text += "--mount=type=cache,target=/c" + std::to_string(i) + " ";
  }
  text += "echo " + std::string(1 << 20, 'x') + " \\\n";
  for (int i = 0; i < 20000; ++i) {
    text += "  && echo <<<" + std::to_string(i) + " \\\n";
  }
  text += "true\nLABEL a=" + std::string(200000, '"') + "\n";
  text += "ENV " + std::string(300000, '\\') + "=1\n";
  text += "FORM" + std::string(500000, 'M') + "\n";
  auto start = std::chrono::steady_clock::now();
  std::string err = parseError(text);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  EXPECT_THAT(err, ::testing::StartsWith("Dockerfile:20006:1: unknown instruction \"FORMMMM"));
  EXPECT_LT(ms, 5000);
}

TEST(ScaleTest, RandomInputNeverCrashes) {
  std::mt19937 rng(42);
  const std::string alphabet = "FROMRUNCOPYADD<<-EOF\"'`\\ \t\n#=[],:-$x";
  for (int round = 0; round < 3000; ++round) {
    std::string s = round % 2 ? "FROM a\n" : "";
    std::size_t n = rng() % 200;
    for (std::size_t i = 0; i < n; ++i) {
      s += alphabet[rng() % alphabet.size()];
    }
    Result<Dockerfile> r = parse(s);
    if (r.isOk()) {
      (void)dumpJson(*r);
      (void)toText(*r);
    } else {
      EXPECT_EQ(r.status().message().rfind("Dockerfile:", 0), 0u) << r.status().message();
    }
  }
}

}  // namespace
}  // namespace lf::dockerfile
