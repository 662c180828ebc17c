#pragma once

// The JSON shapes of docs/http-api.md: records -> JSON for answers, and the one parser of
// untrusted JSON the API has (POST /v1/builds -> BuildRequest). Also the lf::StatusCode -> HTTP
// status and error-code mapping of the doc's "Errors" section.
//
// Pure functions, thread-safe. The parser never throws and never crashes on any input: a body
// that is not JSON, nests deeper than kMaxJsonDepth, is not an object, has an unknown field or a
// field of the wrong type is kInvalidArgument naming the field ("tags[2]: expected a string").

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "coordinator/builds/build_service.h"
#include "coordinator/state/state_records.h"

namespace lf::coordinator::api {

// Bodies nesting deeper than this are refused before they are parsed.
inline constexpr int kMaxJsonDepth = 32;

// Parses `text` as JSON (depth-checked, no exceptions). kInvalidArgument with the byte offset
// when it is not JSON.
Result<nlohmann::json> parseJson(std::string_view text);

// POST /v1/builds body -> BuildRequest. `dockerfile` defaults to "Dockerfile"; `null` for an
// optional field means its default; `target` may be a string or a non-negative integer (a stage
// index).
Result<BuildRequest> parseBuildRequest(std::string_view body);
Result<BuildRequest> buildRequestFromJson(const nlohmann::json& json);

// The request "as submitted" (the fields of POST /v1/builds); parseBuildRequest() reads it back.
nlohmann::json buildRequestToJson(const BuildRequest& request);
nlohmann::json stepToJson(const StepRecord& step);
// The build object of GET /v1/builds/{id}; without "steps" when with_steps is false (listings).
nlohmann::json buildToJson(const BuildRecord& build, bool with_steps);
nlohmann::json layerToJson(const LayerDescriptor& layer);
// {"workers": [...]}
nlohmann::json workersToJson(const std::vector<WorkerView>& workers);
// GET /v1/cache/stats
nlohmann::json cacheSummaryToJson(const CacheSummary& summary);
// GET /v1/images/history: {"image": {...}, "history": [...]} oldest first.
nlohmann::json imageHistoryToJson(const ImageRecord& image);

// A step's `kind`: FROM, RUN, COPY, ADD or the metadata keyword, from the record's kind or, when
// that is unspecified, the instruction's first word.
std::string stepKind(const StepRecord& step);

// The doc's error mapping: HTTP status and `code` string for a non-ok status.
unsigned httpStatusOf(StatusCode code);
std::string_view errorCodeOf(StatusCode code);
// {"error": {"code": ..., "message": ...}} serialised.
std::string errorBody(std::string_view code, std::string_view message);

}  // namespace lf::coordinator::api
