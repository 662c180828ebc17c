#include "coordinator/builds/build_events.h"

#include <map>

namespace lf::coordinator {

std::string stepKindText(const StepRecord& step) {
  if (step.kind != InstructionKind::kUnspecified) {
    return std::string(instructionKindName(step.kind));
  }
  std::string_view text = step.instruction;
  return std::string(text.substr(0, text.find(' ')));
}

nlohmann::json buildEvent(const BuildRecord& build) {
  return {{"type", "build"},
          {"state", std::string(buildStateName(build.state))},
          {"failure_reason", build.failure_reason}};
}

nlohmann::json stepEvent(const StepRecord& step, int attempt) {
  nlohmann::json event = {{"type", "step"},
                          {"index", step.index},
                          {"state", std::string(stepStateName(step.state))},
                          {"cached", step.cached},
                          {"worker", step.worker},
                          {"job", step.job_id},
                          {"attempt", attempt},
                          {"duration_ms", step.durationMs()},
                          {"error", step.error}};
  if (step.layer) {
    event["layer"] = {{"media_type", step.layer->media_type},
                      {"digest", step.layer->digest.toString()},
                      {"size", step.layer->size}};
  } else {
    event["layer"] = nullptr;
  }
  return event;
}

nlohmann::json messageEvent(std::string_view text) {
  return {{"type", "message"}, {"text", std::string(text)}};
}

nlohmann::json planEvent(const BuildRecord& build) {
  std::map<std::string, int> per_stage;
  for (const auto& step : build.steps) ++per_stage[step.stage];
  std::map<std::string, int> seen;
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& step : build.steps) {
    steps.push_back({{"index", step.index},
                     {"stage", step.stage},
                     {"stage_step", ++seen[step.stage]},
                     {"stage_steps", per_stage[step.stage]},
                     {"instruction", step.instruction},
                     {"kind", stepKindText(step)}});
  }
  return {{"type", "plan"}, {"steps", std::move(steps)}};
}

std::shared_ptr<BuildEventLog> rebuildEventLog(const BuildRecord& build) {
  auto log = std::make_shared<BuildEventLog>();
  if (!build.steps.empty()) log->append(planEvent(build));
  for (const auto& step : build.steps) log->append(stepEvent(step));
  log->append(buildEvent(build));
  log->close();
  return log;
}

}  // namespace lf::coordinator
