#include "coordinator/state/state_records.h"

namespace lf::coordinator {

std::string_view instructionKindName(InstructionKind kind) {
  switch (kind) {
    case InstructionKind::kRun:
      return "RUN";
    case InstructionKind::kCopy:
      return "COPY";
    case InstructionKind::kAdd:
      return "ADD";
    case InstructionKind::kUnspecified:
      break;
  }
  return "?";
}

std::string_view buildStateName(BuildState state) {
  switch (state) {
    case BuildState::kQueued:
      return "queued";
    case BuildState::kRunning:
      return "running";
    case BuildState::kSucceeded:
      return "succeeded";
    case BuildState::kFailed:
      return "failed";
    case BuildState::kCancelled:
      return "cancelled";
  }
  return "?";
}

bool isFinished(BuildState state) {
  return state == BuildState::kSucceeded || state == BuildState::kFailed ||
         state == BuildState::kCancelled;
}

std::string_view stepStateName(StepState state) {
  switch (state) {
    case StepState::kPending:
      return "pending";
    case StepState::kCached:
      return "cached";
    case StepState::kQueued:
      return "queued";
    case StepState::kRunning:
      return "running";
    case StepState::kDone:
      return "done";
    case StepState::kFailed:
      return "failed";
    case StepState::kCancelled:
      return "cancelled";
  }
  return "?";
}

std::string_view jobStateName(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return "queued";
    case JobState::kRunning:
      return "running";
    case JobState::kSucceeded:
      return "succeeded";
    case JobState::kFailed:
      return "failed";
    case JobState::kCancelled:
      return "cancelled";
    case JobState::kLost:
      return "lost";
  }
  return "?";
}

int64_t StepRecord::durationMs() const {
  if (started_unix_ms == 0 || finished_unix_ms < started_unix_ms) {
    return 0;
  }
  return finished_unix_ms - started_unix_ms;
}

}  // namespace lf::coordinator
