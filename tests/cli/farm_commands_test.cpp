// Argument parsing and the human formatting of the coordinator-facing commands.

#include "cli/farm_commands.h"

#include <gtest/gtest.h>

#include "cli/cli_util.h"

namespace lf::cli {
namespace {

std::optional<std::string> fakeEnv(const std::string& key) {
  if (key == "FROM_ENV") return std::string("env value");
  return std::nullopt;
}

TEST(BuildArgs, KeyValueBareKeyFromEnvironmentAndErrors) {
  auto args = parseBuildArgs({"A=1", "B=x=y", "EMPTY=", "FROM_ENV", "UNSET", "A=2"}, fakeEnv);
  ASSERT_TRUE(args.isOk()) << args.status().toString();
  EXPECT_EQ(*args, (std::map<std::string, std::string>{
                       {"A", "2"}, {"B", "x=y"}, {"EMPTY", ""}, {"FROM_ENV", "env value"}}));
  auto bad = parseBuildArgs({"=v"}, fakeEnv);
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("--build-arg \"=v\""), std::string::npos);
}

TEST(BuildOutput, TypeAndDest) {
  auto oci = parseBuildOutput("type=oci,dest=out/image.tar");
  ASSERT_TRUE(oci.isOk());
  EXPECT_EQ(oci->type, "oci");
  EXPECT_EQ(oci->dest, "out/image.tar");
  auto docker = parseBuildOutput("dest=x.tar,type=docker");
  ASSERT_TRUE(docker.isOk());
  EXPECT_EQ(docker->type, "docker");
  EXPECT_NE(parseBuildOutput("type=local,dest=x").status().message().find("oci or docker"),
            std::string::npos);
  EXPECT_NE(parseBuildOutput("type=oci").status().message().find("dest=PATH is required"),
            std::string::npos);
  EXPECT_NE(parseBuildOutput("type=oci,compression=zstd,dest=x")
                .status()
                .message()
                .find("unknown key \"compression\""),
            std::string::npos);
  EXPECT_FALSE(parseBuildOutput("oci").isOk());
}

TEST(ServerAddress, FlagThenEnvironmentThenDefault) {
  ::unsetenv("LAYERFARM_SERVER");
  EXPECT_EQ(resolveServer(""), "http://127.0.0.1:7070");
  ::setenv("LAYERFARM_SERVER", "http://farm:8080", 1);
  EXPECT_EQ(resolveServer(""), "http://farm:8080");
  EXPECT_EQ(resolveServer("http://flag:1"), "http://flag:1");
  ::unsetenv("LAYERFARM_SERVER");
}

TEST(HumanFormat, SizesAndDurationsAsDockerPrintsThem) {
  EXPECT_EQ(humanSize(0), "0B");
  EXPECT_EQ(humanSize(512), "512B");
  EXPECT_EQ(humanSize(1234), "1.23kB");
  EXPECT_EQ(humanSize(20'100'000), "20.1MB");
  EXPECT_EQ(humanSize(4'270'000'000), "4.27GB");
  EXPECT_EQ(humanDuration(500), "Less than a second");
  EXPECT_EQ(humanDuration(1000), "1 second");
  EXPECT_EQ(humanDuration(45'000), "45 seconds");
  EXPECT_EQ(humanDuration(90'000), "About a minute");
  EXPECT_EQ(humanDuration(2 * 60'000), "2 minutes");
  EXPECT_EQ(humanDuration(60 * 60'000), "About an hour");
  EXPECT_EQ(humanDuration(5 * 3600'000), "5 hours");
  EXPECT_EQ(humanDuration(3 * 24 * 3600'000LL), "3 days");
  EXPECT_EQ(humanDuration(20 * 24 * 3600'000LL), "2 weeks");
  EXPECT_EQ(humanDuration(90 * 24 * 3600'000LL), "3 months");
  EXPECT_EQ(humanDuration(800 * 24 * 3600'000LL), "2 years");
  EXPECT_EQ(timeAgo(0, 1000), "N/A");
  EXPECT_EQ(timeAgo(1000, 121'000), "2 minutes ago");
  EXPECT_EQ(truncateText("abcdef", 6), "abcdef");
  EXPECT_EQ(truncateText("abcdefg", 6), "abcde\xe2\x80\xa6");
  EXPECT_EQ(truncateText("\xc3\xa9\xc3\xa9\xc3\xa9", 2), "\xc3\xa9\xe2\x80\xa6");
}

const char* kHistory = R"({
  "image": {"manifest_digest": "sha256:aaaa", "config_digest":
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "references": ["r/app:1"], "created_ms": 1000},
  "history": [
    {"created_ms": 1000, "created_by": "FROM busybox", "comment": "", "empty_layer": false,
     "size": 1234567},
    {"created_ms": 61000, "created_by": "ENV A=1", "comment": "", "empty_layer": true, "size": 0},
    {"created_ms": 121000,
     "created_by": "RUN /bin/sh -c apt-get update && apt-get install -y python3\tpython3-pip",
     "comment": "layerfarm", "empty_layer": false, "size": 20100000}
  ]})";

TEST(History, TableNewestFirstWithDockerColumns) {
  auto answer = nlohmann::json::parse(kHistory);
  EXPECT_EQ(formatHistory(answer, 181000, false),
            "IMAGE          CREATED              CREATED BY                                      "
            "SIZE     COMMENT\n"
            "0123456789ab   About a minute ago   RUN /bin/sh -c apt-get update && apt-get "
            "ins\xe2\x80\xa6   "
            "20.1MB   layerfarm\n"
            "<missing>      2 minutes ago        ENV A=1                                         "
            "0B\n"
            "<missing>      3 minutes ago        FROM busybox                                    "
            "1.23MB\n");
  std::string full = formatHistory(answer, 181000, true);
  EXPECT_NE(full.find("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
            std::string::npos);
  EXPECT_NE(full.find("apt-get install -y python3 python3-pip"), std::string::npos) << full;
  std::string json = formatHistoryJson(answer, 181000);
  EXPECT_EQ(std::count(json.begin(), json.end(), '\n'), 3);
  auto first = nlohmann::json::parse(json.substr(0, json.find('\n')));
  EXPECT_EQ(first["Size"], "20.1MB");
  EXPECT_EQ(first["CreatedAt"], "1970-01-01T00:02:01Z");
}

TEST(FarmTables, BuildsWorkersCacheStats) {
  auto builds = nlohmann::json::parse(R"({"builds":[
    {"id":"b-2","state":"running","created_ms":100000,"started_ms":100000,"duration_ms":0,
     "request":{"tags":["r/a:1","r/a:latest"]},"cached_steps":3,"total_steps":7},
    {"id":"b-1","state":"succeeded","created_ms":1000,"duration_ms":3200,
     "request":{"tags":[]},"cached_steps":7,"total_steps":7}]})");
  EXPECT_EQ(formatBuilds(builds, 110000),
            "ID    STATE       TAGS               CREATED              DURATION   CACHED\n"
            "b-2   running     r/a:1,r/a:latest   10 seconds ago       10.0s      3/7\n"
            "b-1   succeeded   <none>             About a minute ago   3.2s       7/7\n");
  auto workers = nlohmann::json::parse(
      R"({"workers":[{"id":"w1","platform":"linux/amd64","slots":4,"running":1,"draining":false,"held_layers":12}]})");
  EXPECT_EQ(formatWorkers(workers),
            "ID   PLATFORM      SLOTS   RUNNING   DRAINING   HELD LAYERS\n"
            "w1   linux/amd64   4       1         no         12\n");
  auto stats = nlohmann::json::parse(
      R"({"entries":10,"total_bytes":2000000,"hits":30,"lookups":40,"lookup_hits":30,
          "by_kind":{"RUN":{"entries":6,"total_bytes":1500000,"hits":20}}})");
  std::string text = formatCacheStats(stats);
  EXPECT_NE(text.find("75.0%"), std::string::npos) << text;
  EXPECT_NE(text.find("RUN    6         1.5MB   20"), std::string::npos) << text;
  EXPECT_EQ(formatWorkers(nlohmann::json::parse("[]")),
            "ID   PLATFORM   SLOTS   RUNNING   DRAINING   HELD LAYERS\n");
}

}  // namespace
}  // namespace lf::cli
