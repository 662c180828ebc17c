// Typed commands decoded from instructions the real parser produced.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "common/dockerfile/commands.h"
#include "common/dockerfile/parser.h"

namespace lf::dockerfile {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

class CommandsParseTest : public ::testing::Test {
 protected:
  shell::Lookup lookup() {
    return [this](std::string_view name) -> std::optional<std::string> {
      auto it = vars_.find(std::string(name));
      if (it == vars_.end()) return std::nullopt;
      return it->second;
    };
  }
  std::map<std::string, std::string> vars_;
};

// End to end through the real parser: every instruction of a realistic Dockerfile decodes.
TEST_F(CommandsParseTest, DecodesParsedDockerfile) {
  constexpr std::string_view kText = R"(# escape=`
ARG BASE=alpine:3.19
FROM ${BASE} AS build
ENV APP=/app PORT=8080
WORKDIR $APP
COPY --chown=1000:1000 --chmod=644 src/ `$APP/
RUN --mount=type=cache,target=/root/.cache make
EXPOSE ${PORT}/tcp 9000
HEALTHCHECK --interval=30s CMD wget -q localhost
LABEL "org.example.v"="1.0"
CMD ["/app/server"]
)";
  auto parsed = parse(kText, "Dockerfile");
  ASSERT_TRUE(parsed.isOk()) << parsed.status().toString();
  ASSERT_EQ(parsed->escape, '`');
  vars_ = {{"BASE", "alpine:3.19"}, {"APP", "/srv"}, {"PORT", "8080"}};
  std::vector<Command> commands;
  for (const Instruction& i : parsed->instructions) {
    auto c = decodeInstruction(i, lookup(), parsed->escape, parsed->file_name);
    ASSERT_TRUE(c.isOk()) << c.status().toString();
    commands.push_back(std::move(c).value());
  }
  ASSERT_EQ(commands.size(), 10u);
  EXPECT_EQ(std::get<FromCommand>(commands[1]).image, "alpine:3.19");
  EXPECT_EQ(std::get<FromCommand>(commands[1]).stage_name, "build");
  EXPECT_EQ(std::get<WorkdirCommand>(commands[3]).path, "/srv");
  const auto& copy = std::get<CopyCommand>(commands[4]);
  EXPECT_EQ(copy.dest, "$APP/");
  EXPECT_EQ(copy.chmod_octal, 0644u);
  EXPECT_EQ(std::get<RunCommand>(commands[5]).mounts.at(0).target, "/root/.cache");
  EXPECT_THAT(std::get<ExposeCommand>(commands[6]).ports, ElementsAre("8080/tcp", "9000"));
  EXPECT_EQ(std::get<HealthcheckCommand>(commands[7]).interval_ns, 30'000'000'000);
  EXPECT_THAT(std::get<LabelCommand>(commands[8]).pairs, ElementsAre(Pair("org.example.v", "1.0")));
  EXPECT_THAT(std::get<CmdCommand>(commands[9]).args, ElementsAre("/app/server"));
}

TEST_F(CommandsParseTest, ParsedErrorsCarryTheLine) {
  auto parsed = parse("FROM scratch\nCOPY --chmod=9z a b\n", "ctx/Dockerfile");
  ASSERT_TRUE(parsed.isOk()) << parsed.status().toString();
  auto c = decodeInstruction(parsed->instructions[1], lookup(), parsed->escape, "ctx/Dockerfile");
  ASSERT_FALSE(c.isOk());
  EXPECT_THAT(c.status().message(), HasSubstr("ctx/Dockerfile:2:"));
  EXPECT_THAT(c.status().message(), HasSubstr("COPY --chmod=9z: invalid mode"));
}

}  // namespace
}  // namespace lf::dockerfile
