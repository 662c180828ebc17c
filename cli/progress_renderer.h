#pragma once

// ProgressRenderer: turns a build's event stream (docs/http-api.md, "Event stream") into the
// lines BuildKit's plain progress prints, one event at a time:
//
//   #3 [build 2/5] RUN make
//   #3 running on worker w1
//   #3 0.123 cc -o app main.c
//   #3 DONE 1.2s
//   #2 [build 1/5] COPY . /src
//   #2 CACHED
//
// Step N of the plan is "#N+1". With colour (tty mode) headers are blue, DONE/CACHED green and
// errors red; the text is the same. Quiet mode prints nothing while the build runs.
//
// It also keeps what the end of a build needs: the outcome, the result event, the counts for the
// summary line and the last output lines of every step, so a failure can show the failing step's
// output and error (failureReport()). Not thread-safe: feed it from one thread.

#include <cstdint>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

namespace lf::cli {

struct RendererOptions {
  bool color = false;
  bool quiet = false;
  size_t tail_lines = 20;  // output lines kept per step for the failure report
};

class ProgressRenderer {
 public:
  ProgressRenderer(std::ostream& out, RendererOptions options);

  // Renders one event (a parsed NDJSON line). Unknown types and fields are ignored, so a newer
  // coordinator does not break an older CLI.
  void onEvent(const nlohmann::json& event);

  // The last seq seen, -1 before any: resume the stream with ?from=lastSeq()+1.
  int64_t lastSeq() const { return last_seq_; }
  // Whether the final `build` event (a finished state) arrived.
  bool finished() const { return finished_; }
  // "succeeded", "failed", "cancelled", or the last state seen.
  const std::string& state() const { return state_; }
  const std::string& failureReason() const { return failure_reason_; }
  // The `result` event, when one arrived.
  const std::optional<nlohmann::json>& result() const { return result_; }

  // "built in 3.2s: 7 steps, 5 cached, 2 run on 2 workers"
  std::string summary() const;

  // For a failed build: each failed step's header, its last output lines and its error, then the
  // build's failure reason, in BuildKit's layout:
  //   ------
  //    > [build 2/5] RUN make:
  //   0.123 make: *** [all] Error 2
  //   ------
  //   error: step #3 [build 2/5] RUN make: exit code 2
  std::string failureReport() const;

 private:
  struct Step {
    std::string title;  // "[build 2/5] RUN make"
    std::string kind;
    bool header_printed = false;
    std::string worker;
    int attempt = 0;
    int64_t start_ms = 0;
    std::string state;
    bool cached = false;
    int64_t duration_ms = 0;
    std::string error;
    std::deque<std::string> tail;  // "0.123 line"
  };

  Step& step(int index);
  std::string id(int index) const { return "#" + std::to_string(index + 1); }
  void header(int index);
  void line(int index, const std::string& text, const char* color = nullptr);
  void onPlan(const nlohmann::json& event);
  void onStep(const nlohmann::json& event, int64_t time_ms);
  void onLog(const nlohmann::json& event, int64_t time_ms);

  std::ostream& out_;
  RendererOptions options_;
  std::map<int, Step> steps_;
  size_t planned_steps_ = 0;
  int64_t last_seq_ = -1;
  int64_t first_time_ms_ = -1;
  int64_t last_time_ms_ = 0;
  bool finished_ = false;
  std::string state_;
  std::string failure_reason_;
  std::optional<nlohmann::json> result_;
};

// A step's elapsed seconds as BuildKit prints them: "1.2s", "0.0s", "62.3s".
std::string formatSeconds(int64_t ms);

}  // namespace lf::cli
