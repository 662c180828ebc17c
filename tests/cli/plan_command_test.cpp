// Tests of `layerfarm dockerfile plan`, driven through runCli.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/run_cli.h"
#include "tests/support/temp_dir.h"

namespace lf::cli {
namespace {

using lf::testing::runLayerfarm;
using ::testing::HasSubstr;

constexpr const char* kDigest =
    "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

void writeExample(const lf::testing::TempDir& dir) {
  dir.write("Dockerfile",
            "ARG V=3.20\nFROM alpine:$V AS build\nCOPY hello.c /src/\nRUN cc /src/hello.c\n"
            "FROM scratch\nCOPY --from=build /a.out /hello\nENTRYPOINT [\"/hello\"]\n");
  dir.write("hello.c", "int main(){}\n");
}

TEST(PlanCommandTest, TextShowsStagesAndUnresolvedBase) {
  lf::testing::TempDir dir;
  writeExample(dir);
  auto r = runLayerfarm({"dockerfile", "plan", dir.path().string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("stage 0 \"build\": FROM alpine:3.20 (linux/amd64)"));
  EXPECT_THAT(r.out, HasSubstr("[build 2/2] layer"));
  EXPECT_THAT(r.out, HasSubstr("unresolved: alpine:3.20 has no digest"));
  EXPECT_THAT(r.out, HasSubstr("4 steps, 3 produce layers"));
}

TEST(PlanCommandTest, JsonWithBaseHasEveryKey) {
  lf::testing::TempDir dir;
  writeExample(dir);
  auto r = runLayerfarm({"dockerfile", "plan", "--json", "--base",
                         std::string("alpine:3.20=") + kDigest, dir.path().string()});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["target_stage"], 1);
  ASSERT_EQ(j["stages"].size(), 2u);
  for (const auto& stage : j["stages"]) {
    for (const auto& step : stage["steps"]) {
      ASSERT_TRUE(step["cache_key"].is_string()) << step.dump();
      EXPECT_EQ(step["cache_key"].get<std::string>().rfind("sha256:", 0), 0u);
    }
  }
  EXPECT_EQ(j["stages"][1]["depends_on"], nlohmann::json::array({0}));
  EXPECT_TRUE(j["unresolved_images"].empty());

  // A build arg that changes the base image name leaves it unresolved.
  auto other = runLayerfarm({"dockerfile", "plan", "--json", "--build-arg", "V=3.19", "--base",
                             std::string("alpine:3.20=") + kDigest, dir.path().string()});
  ASSERT_EQ(other.code, 0) << other.err;
  EXPECT_EQ(nlohmann::json::parse(other.out)["unresolved_images"],
            nlohmann::json::array({"alpine:3.19"}));
}

TEST(PlanCommandTest, Errors) {
  lf::testing::TempDir dir;
  writeExample(dir);
  auto bad_digest =
      runLayerfarm({"dockerfile", "plan", "--base", "alpine:3.20=sha256:xyz", dir.path().string()});
  EXPECT_EQ(bad_digest.code, 1);
  EXPECT_THAT(bad_digest.err, HasSubstr("invalid digest"));
  auto bad_target = runLayerfarm({"dockerfile", "plan", "--target", "nope", dir.path().string()});
  EXPECT_EQ(bad_target.code, 1);
  EXPECT_THAT(bad_target.err, HasSubstr("target stage \"nope\" could not be found"));
  auto missing = runLayerfarm({"dockerfile", "plan", (dir / "nowhere").string()});
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.err, HasSubstr("cannot read Dockerfile"));
  dir.write("Dockerfile", "FROM scratch\nCOPY missing /\n");
  auto copy = runLayerfarm({"dockerfile", "plan", dir.path().string()});
  EXPECT_EQ(copy.code, 1);
  EXPECT_THAT(copy.err, HasSubstr("Dockerfile:2:1: \"missing\": not found in the build context"));
}

}  // namespace
}  // namespace lf::cli
