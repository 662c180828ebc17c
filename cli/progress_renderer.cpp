#include "cli/progress_renderer.h"

#include <cstdio>

namespace lf::cli {

namespace {

constexpr const char* kBlue = "\033[34m";
constexpr const char* kGreen = "\033[32m";
constexpr const char* kRed = "\033[31m";
constexpr const char* kReset = "\033[0m";

template <typename T>
T field(const nlohmann::json& j, const char* name, T fallback) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) {
    return fallback;
  }
  if constexpr (std::is_same_v<T, std::string>) {
    return it->is_string() ? it->template get<std::string>() : fallback;
  } else if constexpr (std::is_same_v<T, bool>) {
    return it->is_boolean() ? it->template get<bool>() : fallback;
  } else {
    return it->is_number() ? it->template get<T>() : fallback;
  }
}

bool isFinishedState(const std::string& state) {
  return state == "succeeded" || state == "failed" || state == "cancelled";
}

}  // namespace

std::string formatSeconds(int64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1fs", static_cast<double>(ms < 0 ? 0 : ms) / 1000.0);
  return buf;
}

ProgressRenderer::ProgressRenderer(std::ostream& out, RendererOptions options)
    : out_(out), options_(options) {}

ProgressRenderer::Step& ProgressRenderer::step(int index) {
  Step& s = steps_[index];
  if (s.title.empty()) {
    s.title = "step " + std::to_string(index + 1);  // no plan event (yet): still say something
  }
  return s;
}

void ProgressRenderer::line(int index, const std::string& text, const char* color) {
  if (options_.quiet) {
    return;
  }
  out_ << id(index) << " ";
  if (options_.color && color != nullptr) {
    out_ << color << text << kReset;
  } else {
    out_ << text;
  }
  out_ << "\n";
}

void ProgressRenderer::header(int index) {
  Step& s = step(index);
  if (!s.header_printed) {
    s.header_printed = true;
    line(index, s.title, kBlue);
  }
}

void ProgressRenderer::onEvent(const nlohmann::json& event) {
  if (!event.is_object()) {
    return;
  }
  last_seq_ = std::max(last_seq_, field<int64_t>(event, "seq", last_seq_));
  int64_t time_ms = field<int64_t>(event, "time_ms", last_time_ms_);
  if (first_time_ms_ < 0 && time_ms > 0) {
    first_time_ms_ = time_ms;
  }
  last_time_ms_ = std::max(last_time_ms_, time_ms);
  std::string type = field<std::string>(event, "type", "");
  if (type == "plan") {
    onPlan(event);
  } else if (type == "step") {
    onStep(event, time_ms);
  } else if (type == "log") {
    onLog(event, time_ms);
  } else if (type == "message") {
    if (!options_.quiet) {
      out_ << "=> " << field<std::string>(event, "text", "") << "\n";
    }
  } else if (type == "result") {
    result_ = event;
  } else if (type == "build") {
    state_ = field<std::string>(event, "state", state_);
    failure_reason_ = field<std::string>(event, "failure_reason", failure_reason_);
    finished_ = isFinishedState(state_);
  }
  if (!options_.quiet) {
    out_.flush();
  }
}

void ProgressRenderer::onPlan(const nlohmann::json& event) {
  auto it = event.find("steps");
  if (it == event.end() || !it->is_array()) {
    return;
  }
  planned_steps_ = it->size();
  for (const auto& p : *it) {
    int index = field<int>(p, "index", -1);
    if (index < 0) {
      continue;
    }
    Step& s = steps_[index];
    s.kind = field<std::string>(p, "kind", "");
    s.title = "[" + field<std::string>(p, "stage", "") + " " +
              std::to_string(field<int>(p, "stage_step", index + 1)) + "/" +
              std::to_string(field<int>(p, "stage_steps", 0)) + "] " +
              field<std::string>(p, "instruction", "");
  }
}

void ProgressRenderer::onStep(const nlohmann::json& event, int64_t time_ms) {
  int index = field<int>(event, "index", -1);
  if (index < 0) {
    return;
  }
  Step& s = step(index);
  std::string state = field<std::string>(event, "state", "");
  s.state = state;
  s.cached = field<bool>(event, "cached", s.cached);
  s.duration_ms = field<int64_t>(event, "duration_ms", s.duration_ms);
  if (state == "pending") {
    return;
  }
  header(index);
  if (state == "cached") {
    line(index, "CACHED", kGreen);
  } else if (state == "running") {
    std::string worker = field<std::string>(event, "worker", "");
    int attempt = field<int>(event, "attempt", 0);
    s.start_ms = time_ms;
    if (!worker.empty() && (worker != s.worker || attempt != s.attempt)) {
      line(index, attempt > 1
                      ? "attempt " + std::to_string(attempt) + " running on worker " + worker
                      : "running on worker " + worker);
    }
    s.worker = worker.empty() ? s.worker : worker;
    s.attempt = attempt;
  } else if (state == "done") {
    s.worker = field<std::string>(event, "worker", s.worker);
    line(index, "DONE " + formatSeconds(s.duration_ms), kGreen);
  } else if (state == "failed") {
    s.error = field<std::string>(event, "error", "");
    line(index, "ERROR: " + (s.error.empty() ? std::string("step failed") : s.error), kRed);
  } else if (state == "cancelled") {
    line(index, "CANCELED", kRed);
  }
}

void ProgressRenderer::onLog(const nlohmann::json& event, int64_t time_ms) {
  int index = field<int>(event, "index", -1);
  if (index < 0) {
    return;
  }
  Step& s = step(index);
  header(index);
  int64_t ts_ns = field<int64_t>(event, "ts_ns", 0);
  int64_t start_ns = s.start_ms * 1'000'000;
  int64_t elapsed_ns =
      ts_ns > 0 && s.start_ms > 0 ? ts_ns - start_ns : (time_ms - s.start_ms) * 1'000'000;
  if (s.start_ms == 0 || elapsed_ns < 0) {
    elapsed_ns = 0;
  }
  char stamp[32];
  std::snprintf(stamp, sizeof(stamp), "%.3f", static_cast<double>(elapsed_ns) / 1e9);
  std::string text = std::string(stamp) + " " + field<std::string>(event, "line", "");
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.pop_back();
  }
  line(index, text);
  s.tail.push_back(std::move(text));
  while (s.tail.size() > options_.tail_lines) {
    s.tail.pop_front();
  }
}

std::string ProgressRenderer::summary() const {
  size_t total = planned_steps_ != 0 ? planned_steps_ : steps_.size();
  size_t cached = 0;
  size_t run = 0;
  std::set<std::string> workers;
  for (const auto& [index, s] : steps_) {
    if (s.cached || s.state == "cached") {
      ++cached;
    } else if (s.state == "done" && !s.worker.empty()) {
      ++run;
      workers.insert(s.worker);
    }
  }
  if (result_) {
    total =
        static_cast<size_t>(field<int64_t>(*result_, "total_steps", static_cast<int64_t>(total)));
    cached =
        static_cast<size_t>(field<int64_t>(*result_, "cached_steps", static_cast<int64_t>(cached)));
  }
  std::string verb = state_ == "succeeded" || state_.empty() ? "built" : state_;
  int64_t elapsed = first_time_ms_ < 0 ? 0 : last_time_ms_ - first_time_ms_;
  std::string out = verb + " in " + formatSeconds(elapsed) + ": " + std::to_string(total) +
                    (total == 1 ? " step, " : " steps, ") + std::to_string(cached) + " cached, " +
                    std::to_string(run) + " run";
  if (run > 0) {
    out += " on " + std::to_string(workers.size()) + (workers.size() == 1 ? " worker" : " workers");
  }
  return out;
}

std::string ProgressRenderer::failureReport() const {
  std::string out;
  for (const auto& [index, s] : steps_) {
    if (s.state != "failed") {
      continue;
    }
    out += "------\n > " + s.title + ":\n";
    for (const std::string& l : s.tail) {
      out += l + "\n";
    }
    out += "------\n";
    out += "error: step " + id(index) + " " + s.title + ": " +
           (s.error.empty() ? std::string("failed") : s.error) + "\n";
  }
  if (!failure_reason_.empty()) {
    out += "error: build " + (state_.empty() ? std::string("failed") : state_) + ": " +
           failure_reason_ + "\n";
  }
  return out;
}

}  // namespace lf::cli
