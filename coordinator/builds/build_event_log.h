#pragma once

// BuildEventLog: the event stream of one build (docs/http-api.md, "Event stream"), kept in memory
// while the coordinator holds the build. The build's driver appends; any number of readers (HTTP
// event streams) read from a sequence number on, blocking until there is more or the log closes.
//
// Events are stored already serialised (one JSON object per line, no newline), so N followers of
// a chatty build cost one serialisation per event. Log lines are bounded: past max_log_lines
// `log` events the log keeps appending other events and counts the dropped log lines in one
// `message` event at close (the full output of failing steps is in the step's error anyway).
//
// Thread-safety: all methods are thread-safe.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace lf::coordinator {

class BuildEventLog {
 public:
  explicit BuildEventLog(size_t max_log_lines = 200'000);

  // Appends `event` (an object with at least "type"), setting "seq" and, when absent, "time_ms".
  // Ignored after close().
  void append(nlohmann::json event);
  // No more events; wakes every reader.
  void close();

  struct Slice {
    std::vector<std::string> events;  // serialised, in order, from `from`
    size_t next = 0;                  // the seq to ask for next
    bool closed = false;              // true when `next` is the end of the log for good
  };
  // Events with seq >= from. Waits until there is at least one, the log is closed, or
  // `deadline` passes (then `events` may be empty).
  Slice read(size_t from, std::chrono::steady_clock::time_point deadline) const;

  bool closed() const;
  size_t size() const;

 private:
  const size_t max_log_lines_;
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  std::vector<std::string> events_;
  size_t log_lines_ = 0;
  uint64_t dropped_log_lines_ = 0;
  bool closed_ = false;
};

}  // namespace lf::coordinator
