#pragma once

// Builders shared by the scheduler tests: explicit times, keys from names, workers and results.

#include <chrono>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/digest/digest.h"
#include "coordinator/scheduler/scheduler.h"

namespace lf::coordinator::testing {

// A point in time, `ms` milliseconds after an arbitrary origin.
inline TimePoint at(int64_t ms) { return TimePoint{} + std::chrono::milliseconds(ms); }

inline Digest keyOf(const std::string& name) { return Digest::sha256Of("key:" + name); }

inline JobRequest request(const std::string& build, const std::string& tenant,
                          const std::string& key, std::vector<std::string> parents = {},
                          const std::string& platform = "") {
  JobRequest req;
  req.build_id = build;
  req.tenant = tenant;
  req.key = keyOf(key);
  req.platform = platform;
  req.parent_diff_ids = std::move(parents);
  req.spec.set_kind(layerfarm::v1::STEP_KIND_RUN);
  req.spec.mutable_run()->add_command("echo " + key);
  return req;
}

inline WorkerInfo workerInfo(const std::string& id, int slots = 1,
                             const std::string& platform = "linux/amd64",
                             std::unordered_set<std::string> held = {}) {
  WorkerInfo info;
  info.id = id;
  info.slots = slots;
  info.platform = platform;
  info.held_diff_ids = std::move(held);
  return info;
}

inline layerfarm::v1::StepResult succeeded(const std::string& diff_id) {
  layerfarm::v1::StepResult result;
  result.set_outcome(layerfarm::v1::STEP_OUTCOME_SUCCEEDED);
  result.mutable_layer()->set_diff_id(diff_id);
  return result;
}

inline layerfarm::v1::StepResult outcome(layerfarm::v1::StepOutcome value,
                                         const std::string& error = "") {
  layerfarm::v1::StepResult result;
  result.set_outcome(value);
  result.set_error(error);
  return result;
}

}  // namespace lf::coordinator::testing
