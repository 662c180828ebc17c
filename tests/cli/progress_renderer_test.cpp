#include "cli/progress_renderer.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>

namespace lf::cli {
namespace {

// A recorded stream: FROM and COPY cached, RUN on worker w1 with one output line.
const char* kPlan =
    R"({"seq":1,"type":"plan","time_ms":1000,"steps":[
      {"index":0,"stage":"build","stage_step":1,"stage_steps":3,"instruction":"FROM busybox","kind":"FROM"},
      {"index":1,"stage":"build","stage_step":2,"stage_steps":3,"instruction":"COPY . /src","kind":"COPY"},
      {"index":2,"stage":"build","stage_step":3,"stage_steps":3,"instruction":"RUN make","kind":"RUN"}]})";

void feed(ProgressRenderer& r, std::initializer_list<const char*> lines) {
  for (const char* l : lines) r.onEvent(nlohmann::json::parse(l));
}

void feedPrefix(ProgressRenderer& r) {
  feed(
      r,
      {R"({"seq":0,"type":"build","state":"queued","failure_reason":"","time_ms":1000})", kPlan,
       R"({"seq":2,"type":"build","state":"running","failure_reason":"","time_ms":1000})",
       R"({"seq":3,"type":"step","index":0,"state":"cached","cached":true,"worker":"","time_ms":1010})",
       R"({"seq":4,"type":"step","index":1,"state":"cached","cached":true,"worker":"","time_ms":1010})",
       R"({"seq":5,"type":"step","index":2,"state":"queued","cached":false,"worker":"","time_ms":1020})",
       R"({"seq":6,"type":"step","index":2,"state":"running","cached":false,"worker":"w1","attempt":1,"time_ms":1100})",
       R"({"seq":7,"type":"log","index":2,"stream":"stdout","line":"cc -o app main.c","ts_ns":1223000000,"time_ms":1223})"});
}

TEST(ProgressRenderer, SuccessfulBuildPrintsBuildKitPlainLines) {
  std::ostringstream out;
  ProgressRenderer r(out, RendererOptions{});
  feedPrefix(r);
  feed(
      r,
      {R"({"seq":8,"type":"step","index":2,"state":"done","cached":false,"worker":"w1","duration_ms":1234,"time_ms":2334})",
       R"({"seq":9,"type":"message","text":"pushing 127.0.0.1:5000/team/app:1","time_ms":2400})",
       R"({"seq":10,"type":"result","manifest_digest":"sha256:abc","cached_steps":2,"total_steps":3,"pushed":[],"time_ms":4000})",
       R"({"seq":11,"type":"build","state":"succeeded","failure_reason":"","time_ms":4300})"});
  EXPECT_EQ(out.str(),
            "#1 [build 1/3] FROM busybox\n"
            "#1 CACHED\n"
            "#2 [build 2/3] COPY . /src\n"
            "#2 CACHED\n"
            "#3 [build 3/3] RUN make\n"
            "#3 running on worker w1\n"
            "#3 0.123 cc -o app main.c\n"
            "#3 DONE 1.2s\n"
            "=> pushing 127.0.0.1:5000/team/app:1\n");
  EXPECT_TRUE(r.finished());
  EXPECT_EQ(r.state(), "succeeded");
  EXPECT_EQ(r.lastSeq(), 11);
  ASSERT_TRUE(r.result().has_value());
  EXPECT_EQ(r.result()->value("manifest_digest", ""), "sha256:abc");
  EXPECT_EQ(r.summary(), "built in 3.3s: 3 steps, 2 cached, 1 run on 1 worker");
  EXPECT_EQ(r.failureReport(), "");
}

TEST(ProgressRenderer, FailedStepShowsErrorAndTheReportHasItsLastLines) {
  std::ostringstream out;
  RendererOptions options;
  options.tail_lines = 2;
  ProgressRenderer r(out, options);
  feedPrefix(r);
  feed(
      r,
      {R"({"seq":8,"type":"log","index":2,"stream":"stderr","line":"main.c:1: error\n","ts_ns":1300000000,"time_ms":1300})",
       R"({"seq":9,"type":"log","index":2,"stream":"stderr","line":"make: *** [all] Error 2","ts_ns":1400000000,"time_ms":1400})",
       R"({"seq":10,"type":"step","index":2,"state":"failed","cached":false,"worker":"w1","error":"exit code 2","time_ms":1500})",
       R"({"seq":11,"type":"build","state":"failed","failure_reason":"step 3 failed: exit code 2","time_ms":1500})"});
  std::string text = out.str();
  EXPECT_NE(text.find("#3 0.200 main.c:1: error\n"), std::string::npos) << text;
  EXPECT_NE(text.find("#3 ERROR: exit code 2\n"), std::string::npos) << text;
  EXPECT_TRUE(r.finished());
  EXPECT_EQ(r.state(), "failed");
  // tail_lines = 2: the first output line fell out of the report.
  EXPECT_EQ(r.failureReport(),
            "------\n"
            " > [build 3/3] RUN make:\n"
            "0.200 main.c:1: error\n"
            "0.300 make: *** [all] Error 2\n"
            "------\n"
            "error: step #3 [build 3/3] RUN make: exit code 2\n"
            "error: build failed: step 3 failed: exit code 2\n");
}

TEST(ProgressRenderer, RetryOnAnotherWorkerAndCancelAreShown) {
  std::ostringstream out;
  ProgressRenderer r(out, RendererOptions{});
  feed(
      r,
      {kPlan,
       R"({"seq":2,"type":"step","index":2,"state":"running","worker":"w1","attempt":1,"time_ms":1100})",
       R"({"seq":3,"type":"step","index":2,"state":"running","worker":"w2","attempt":2,"time_ms":1200})",
       R"({"seq":4,"type":"step","index":2,"state":"cancelled","time_ms":1300})",
       R"({"seq":5,"type":"build","state":"cancelled","failure_reason":"cancelled by the user","time_ms":1300})"});
  EXPECT_EQ(out.str(),
            "#3 [build 3/3] RUN make\n"
            "#3 running on worker w1\n"
            "#3 attempt 2 running on worker w2\n"
            "#3 CANCELED\n");
  EXPECT_EQ(r.state(), "cancelled");
}

TEST(ProgressRenderer, QuietPrintsNothingAndColourWrapsStatusWords) {
  std::ostringstream quiet_out;
  ProgressRenderer quiet(quiet_out, RendererOptions{.color = false, .quiet = true});
  feedPrefix(quiet);
  EXPECT_EQ(quiet_out.str(), "");

  std::ostringstream color_out;
  ProgressRenderer color(color_out, RendererOptions{.color = true});
  feedPrefix(color);
  EXPECT_NE(color_out.str().find("#1 \033[32mCACHED\033[0m\n"), std::string::npos);
}

TEST(ProgressRenderer, UnknownAndMalformedEventsAreIgnored) {
  std::ostringstream out;
  ProgressRenderer r(out, RendererOptions{});
  r.onEvent(nlohmann::json::parse(R"({"seq":0,"type":"future_kind","x":1})"));
  r.onEvent(nlohmann::json::parse(R"({"seq":1,"type":"step","index":"zero","state":7})"));
  r.onEvent(nlohmann::json::parse(R"([1,2,3])"));
  r.onEvent(nlohmann::json::parse(R"({"seq":2,"type":"log","index":4,"line":"early"})"));
  EXPECT_EQ(out.str(), "#5 step 5\n#5 0.000 early\n");
  EXPECT_FALSE(r.finished());
}

}  // namespace
}  // namespace lf::cli
