#include "worker/daemon/outbox.h"

namespace lf::worker {
namespace {

namespace v1 = layerfarm::v1;

std::string jobKey(const std::string& job_id, uint32_t attempt) {
  return job_id + "#" + std::to_string(attempt);
}

// Rough size of a line in a JobLog frame: its bytes plus field overhead.
uint64_t lineBytes(const v1::StepLog& line) { return line.line().size() + 32; }

}  // namespace

Outbox::Outbox(OutboxOptions options, std::function<void()> wake)
    : options_(options), wake_(std::move(wake)) {}

uint64_t Outbox::logBytes(const v1::WorkerMessage& m) const {
  if (m.kind_case() != v1::WorkerMessage::kJobLog) {
    return 0;
  }
  uint64_t bytes = 0;
  for (const auto& line : m.job_log().lines()) {
    bytes += lineBytes(line);
  }
  return bytes;
}

void Outbox::push(v1::WorkerMessage message) {
  {
    std::lock_guard lock(mu_);
    if (message.kind_case() == v1::WorkerMessage::kJobResult) {
      ++results_;
    }
    frames_.push_back(std::move(message));
  }
  wake_();
}

bool Outbox::pushLog(const std::string& job_id, uint32_t attempt, const v1::StepLog& line) {
  const uint64_t bytes = lineBytes(line);
  const std::string key = jobKey(job_id, attempt);
  {
    std::unique_lock lock(mu_);
    auto fits = [&] { return closed_ || log_bytes_ + bytes <= options_.log_queue_bytes; };
    if (!fits()) {
      space_.wait_for(lock, options_.log_block, fits);
    }
    if (closed_ || log_bytes_ + bytes > options_.log_queue_bytes) {
      ++dropped_total_;
      ++dropped_by_job_[key];
      return false;
    }
    log_bytes_ += bytes;
    uint64_t dropped = 0;
    if (auto it = dropped_by_job_.find(key); it != dropped_by_job_.end()) {
      dropped = it->second;
      dropped_by_job_.erase(it);
    }
    // Merge into the job's frame if it is the last one queued: never reorders anything.
    if (!frames_.empty() && frames_.back().kind_case() == v1::WorkerMessage::kJobLog) {
      v1::JobLog& last = *frames_.back().mutable_job_log();
      if (last.job_id() == job_id && last.attempt() == attempt && dropped == 0 &&
          logBytes(frames_.back()) + bytes <= options_.max_log_frame_bytes) {
        *last.add_lines() = line;
        return true;  // the frame is already announced; no need to wake again
      }
    }
    v1::WorkerMessage message;
    v1::JobLog& log = *message.mutable_job_log();
    log.set_job_id(job_id);
    log.set_attempt(attempt);
    log.set_dropped_lines(dropped);
    *log.add_lines() = line;
    frames_.push_back(std::move(message));
  }
  wake_();
  return true;
}

std::optional<v1::WorkerMessage> Outbox::pop() {
  std::optional<v1::WorkerMessage> out;
  {
    std::lock_guard lock(mu_);
    if (frames_.empty()) {
      return std::nullopt;
    }
    out = std::move(frames_.front());
    frames_.pop_front();
    log_bytes_ -= logBytes(*out);
    if (out->kind_case() == v1::WorkerMessage::kJobResult) {
      --results_;
    }
  }
  space_.notify_all();
  return out;
}

void Outbox::requeueFront(v1::WorkerMessage message) {
  std::lock_guard lock(mu_);
  auto kind = message.kind_case();
  if (kind != v1::WorkerMessage::kJobResult && kind != v1::WorkerMessage::kJobLog) {
    return;
  }
  if (kind == v1::WorkerMessage::kJobResult) {
    ++results_;
  }
  // May briefly exceed log_queue_bytes: the bytes were accounted before and are not dropped.
  log_bytes_ += logBytes(message);
  frames_.push_front(std::move(message));
}

void Outbox::dropConnectionFrames() {
  std::lock_guard lock(mu_);
  std::deque<v1::WorkerMessage> kept;
  for (auto& frame : frames_) {
    auto kind = frame.kind_case();
    if (kind == v1::WorkerMessage::kJobResult || kind == v1::WorkerMessage::kJobLog) {
      kept.push_back(std::move(frame));
    }
  }
  frames_.swap(kept);
}

void Outbox::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  space_.notify_all();
}

size_t Outbox::pendingResults() const {
  std::lock_guard lock(mu_);
  return results_;
}

size_t Outbox::size() const {
  std::lock_guard lock(mu_);
  return frames_.size();
}

uint64_t Outbox::droppedLines() const {
  std::lock_guard lock(mu_);
  return dropped_total_;
}

}  // namespace lf::worker
