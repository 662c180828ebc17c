// Tests of `layerfarm dockerfile expand`, driven through runCli with captured streams.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "cli/app.h"

namespace lf::cli {
namespace {

using ::testing::HasSubstr;

struct CliRun {
  int code;
  std::string out;
  std::string err;
};

CliRun runLayerfarm(std::vector<std::string> args) {
  args.insert(args.begin(), "layerfarm");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  std::ostringstream out;
  std::ostringstream err;
  int code = runCli(static_cast<int>(argv.size()), argv.data(), Io{&out, &err});
  return CliRun{code, out.str(), err.str()};
}

TEST(ExpandCommandTest, ExpandsWithEnv) {
  CliRun r = runLayerfarm({"dockerfile", "expand", "--env", "FOO=/bar", "-e",
                           "E=", "${FOO}/x ${E:-def} '$FOO' \\$FOO"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "/bar/x def $FOO $FOO\n");
  EXPECT_EQ(r.err, "");
}

TEST(ExpandCommandTest, UnsetVariablesAreEmptyAndProcessEnvIsIgnored) {
  CliRun r = runLayerfarm({"dockerfile", "expand", "[$HOME][${PATH}]"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "[][]\n");
}

TEST(ExpandCommandTest, BacktickEscape) {
  CliRun r = runLayerfarm({"dockerfile", "expand", "--escape", "`", "-e", "D=x", "C:\\`$D\\$D"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "C:\\$D\\x\n");
}

TEST(ExpandCommandTest, ErrorsExitOne) {
  CliRun r = runLayerfarm({"dockerfile", "expand", "ab${FOO"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("column 3: missing '}'"));
  CliRun req = runLayerfarm({"dockerfile", "expand", "${NAME:?set NAME}"});
  EXPECT_EQ(req.code, 1);
  EXPECT_THAT(req.err, HasSubstr("NAME: set NAME"));
  CliRun bad_env = runLayerfarm({"dockerfile", "expand", "--env", "=v", "x"});
  EXPECT_EQ(bad_env.code, 1);
  EXPECT_THAT(bad_env.err, HasSubstr("missing variable name"));
  CliRun bad_escape = runLayerfarm({"dockerfile", "expand", "--escape", "%", "x"});
  EXPECT_EQ(bad_escape.code, 1);
}

TEST(ExpandCommandTest, MissingWordIsAUsageError) {
  CliRun r = runLayerfarm({"dockerfile", "expand"});
  EXPECT_EQ(r.code, 2);
}

}  // namespace
}  // namespace lf::cli
