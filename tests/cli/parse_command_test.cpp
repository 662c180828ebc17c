// Tests of `layerfarm dockerfile parse`, driven through runCli with captured streams.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/app.h"
#include "tests/support/temp_dir.h"

namespace lf::cli {
namespace {

using ::testing::HasSubstr;

struct CliResult {
  int code;
  std::string out;
  std::string err;
};

CliResult runLayerfarm(std::vector<std::string> args) {
  args.insert(args.begin(), "layerfarm");
  std::vector<const char*> argv;
  for (const std::string& a : args) {
    argv.push_back(a.c_str());
  }
  std::ostringstream out;
  std::ostringstream err;
  int code = runCli(static_cast<int>(argv.size()), argv.data(), Io{&out, &err});
  return CliResult{code, out.str(), err.str()};
}

TEST(ParseCommandTest, JsonOutput) {
  lf::testing::TempDir dir;
  auto path = dir.write("Dockerfile", "FROM alpine\nRUN <<EOF\necho hi\nEOF\n");
  CliResult r = runLayerfarm({"dockerfile", "parse", "--json", path.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[1]["instruction"], "RUN");
  EXPECT_EQ(j[1]["heredocs"][0]["content"], "echo hi\n");
  EXPECT_EQ(j[1]["end_line"], 4);
}

TEST(ParseCommandTest, TextOutput) {
  lf::testing::TempDir dir;
  auto path = dir.write("Dockerfile", "FROM alpine\n\nCOPY --link a /b\n");
  CliResult r = runLayerfarm({"dockerfile", "parse", path.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "    1  FROM alpine\n    3  COPY --link a /b\n");
}

TEST(ParseCommandTest, ParseErrorGoesToStderrWithPosition) {
  lf::testing::TempDir dir;
  auto path = dir.write("Dockerfile", "FROM alpine\nCOPY --form=x a b\n");
  CliResult r = runLayerfarm({"dockerfile", "parse", "--json", path.string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr(path.string() + ":2:6: unknown flag --form for COPY"));
}

TEST(ParseCommandTest, MissingFile) {
  lf::testing::TempDir dir;
  CliResult r = runLayerfarm({"dockerfile", "parse", (dir / "nope").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("cannot read"));
}

TEST(ParseCommandTest, FileArgumentIsRequired) {
  CliResult r = runLayerfarm({"dockerfile", "parse"});
  EXPECT_EQ(r.code, 2);
}

}  // namespace
}  // namespace lf::cli
