#include "coordinator/builds/build_event_log.h"

#include <nlohmann/json.hpp>

#include <utility>

#include "coordinator/builds/unix_time.h"

namespace lf::coordinator {

BuildEventLog::BuildEventLog(size_t max_log_lines) : max_log_lines_(max_log_lines) {}

void BuildEventLog::append(nlohmann::json event) {
  std::lock_guard lock(mu_);
  if (closed_) return;
  const bool is_log = event.value("type", "") == "log";
  if (is_log && log_lines_ >= max_log_lines_) {
    ++dropped_log_lines_;
    return;
  }
  if (is_log) ++log_lines_;
  event["seq"] = events_.size();
  if (!event.contains("time_ms")) event["time_ms"] = nowUnixMs();
  events_.push_back(event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  changed_.notify_all();
}

void BuildEventLog::close() {
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    if (dropped_log_lines_ > 0) {
      nlohmann::json note = {{"type", "message"},
                             {"seq", events_.size()},
                             {"time_ms", nowUnixMs()},
                             {"text", std::to_string(dropped_log_lines_) +
                                          " log lines were not kept (over the build's limit of " +
                                          std::to_string(max_log_lines_) + ")"}};
      events_.push_back(note.dump());
    }
    closed_ = true;
  }
  changed_.notify_all();
}

BuildEventLog::Slice BuildEventLog::read(size_t from,
                                         std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock lock(mu_);
  changed_.wait_until(lock, deadline, [&] { return closed_ || events_.size() > from; });
  Slice slice;
  if (from < events_.size()) {
    slice.events.assign(events_.begin() + static_cast<std::ptrdiff_t>(from), events_.end());
  }
  slice.next = std::max(from, events_.size());
  slice.closed = closed_ && slice.next >= events_.size();
  return slice;
}

bool BuildEventLog::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

size_t BuildEventLog::size() const {
  std::lock_guard lock(mu_);
  return events_.size();
}

}  // namespace lf::coordinator
