#pragma once

// The JSON events of a build's event stream (docs/http-api.md, "Event stream") made from its
// BuildRecord, shared by the live driver and by the logs rebuilt for finished builds that are no
// longer in memory. Pure functions; thread-safe.

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "coordinator/builds/build_event_log.h"
#include "coordinator/state/state_records.h"

namespace lf::coordinator {

// The step's `kind` as the API shows it: FROM, RUN, COPY, ADD or the metadata keyword (the first
// word of the instruction).
std::string stepKindText(const StepRecord& step);

// {"type":"build","state":...,"failure_reason":...}
nlohmann::json buildEvent(const BuildRecord& build);
// {"type":"step","index",...}; `attempt` 0 when unknown.
nlohmann::json stepEvent(const StepRecord& step, int attempt = 0);
// {"type":"message","text":...}
nlohmann::json messageEvent(std::string_view text);
// {"type":"plan","steps":[...]} from the record's steps (stage_step/stage_steps counted per stage,
// FROM being 1 as in Docker's "[build 1/4] FROM ...").
nlohmann::json planEvent(const BuildRecord& build);

// A closed log for a build not held in memory: plan, one step event per step, the build event.
std::shared_ptr<BuildEventLog> rebuildEventLog(const BuildRecord& build);

}  // namespace lf::coordinator
