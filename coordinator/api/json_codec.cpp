#include "coordinator/api/json_codec.h"

#include <fmt/format.h>

#include <cctype>
#include <string>
#include <utility>

namespace lf::coordinator::api {

using nlohmann::json;

namespace {

// Deepest nesting of arrays/objects, ignoring brackets inside strings. nlohmann parses
// iteratively but destroys recursively, so a 1 MiB body of '[' must be refused before parsing.
int nestingDepth(std::string_view text) {
  int depth = 0;
  int max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

std::string_view typeName(const json& j) {
  return j.is_null() ? "null" : std::string_view(j.type_name());
}

Status wrongType(std::string_view field, std::string_view expected, const json& got) {
  return invalidArgument(fmt::format("{}: expected {}, got {}", field, expected, typeName(got)));
}

Status readString(const json& j, std::string_view field, std::string* out) {
  if (j.is_null()) return Status::ok();
  if (!j.is_string()) return wrongType(field, "a string", j);
  *out = j.get<std::string>();
  return Status::ok();
}

Status readBool(const json& j, std::string_view field, bool* out) {
  if (j.is_null()) return Status::ok();
  if (!j.is_boolean()) return wrongType(field, "true or false", j);
  *out = j.get<bool>();
  return Status::ok();
}

Status readTags(const json& j, std::vector<std::string>* out) {
  if (j.is_null()) return Status::ok();
  if (!j.is_array()) return wrongType("tags", "an array of strings", j);
  for (size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_string()) return wrongType(fmt::format("tags[{}]", i), "a string", j[i]);
    out->push_back(j[i].get<std::string>());
  }
  return Status::ok();
}

Status readBuildArgs(const json& j, std::map<std::string, std::string>* out) {
  if (j.is_null()) return Status::ok();
  if (!j.is_object()) return wrongType("build_args", "an object of strings", j);
  for (const auto& [name, value] : j.items()) {
    if (name.empty()) return invalidArgument("build_args: empty argument name");
    if (!value.is_string()) {
      return wrongType(fmt::format("build_args.{}", name), "a string", value);
    }
    (*out)[name] = value.get<std::string>();
  }
  return Status::ok();
}

Status readTarget(const json& j, std::string* out) {
  if (j.is_number_unsigned()) {
    *out = std::to_string(j.get<uint64_t>());
    return Status::ok();
  }
  if (j.is_number()) return wrongType("target", "a stage name or a non-negative index", j);
  return readString(j, "target", out);
}

Status readContext(const json& j, Digest* out) {
  if (j.is_null()) return invalidArgument("context: required (the digest of an uploaded context)");
  std::string text;
  LF_RETURN_IF_ERROR(readString(j, "context", &text));
  auto digest = Digest::parse(text);
  if (!digest.isOk()) return digest.status().withContext("context");
  *out = *digest;
  return Status::ok();
}

Status readField(const std::string& key, const json& value, BuildRequest* r) {
  if (key == "context") return readContext(value, &r->context_digest);
  if (key == "dockerfile") return readString(value, key, &r->dockerfile_path);
  if (key == "tags") return readTags(value, &r->tags);
  if (key == "build_args") return readBuildArgs(value, &r->build_args);
  if (key == "target") return readTarget(value, &r->target);
  if (key == "no_cache") return readBool(value, key, &r->no_cache);
  if (key == "push") return readBool(value, key, &r->push);
  if (key == "output") return readString(value, key, &r->output);
  if (key == "platform") return readString(value, key, &r->platform);
  return invalidArgument(fmt::format(
      "unknown field \"{}\" (known: context, dockerfile, tags, build_args, target, no_cache, "
      "push, output, platform)",
      key));
}

int64_t spanMs(int64_t start, int64_t end) { return (start == 0 || end < start) ? 0 : end - start; }

}  // namespace

Result<json> parseJson(std::string_view text) {
  if (nestingDepth(text) > kMaxJsonDepth) {
    return invalidArgument(fmt::format("JSON nests deeper than {} levels", kMaxJsonDepth));
  }
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    return invalidArgument(fmt::format("body is not JSON: {}", e.what()));
  }
}

Result<BuildRequest> parseBuildRequest(std::string_view body) {
  LF_ASSIGN_OR_RETURN(json j, parseJson(body));
  return buildRequestFromJson(j);
}

Result<BuildRequest> buildRequestFromJson(const json& j) {
  if (!j.is_object()) return wrongType("build request", "an object", j);
  BuildRequest r;
  r.dockerfile_path = "Dockerfile";
  bool has_context = false;
  for (const auto& [key, value] : j.items()) {
    LF_RETURN_IF_ERROR(readField(key, value, &r));
    has_context = has_context || key == "context";
  }
  if (!has_context) {
    return invalidArgument("context: required (the digest of an uploaded context)");
  }
  if (r.dockerfile_path.empty()) r.dockerfile_path = "Dockerfile";
  return r;
}

json buildRequestToJson(const BuildRequest& r) {
  json args = json::object();
  for (const auto& [k, v] : r.build_args) args[k] = v;
  return json{{"context", r.context_digest.toString()},
              {"dockerfile", r.dockerfile_path},
              {"tags", r.tags},
              {"build_args", std::move(args)},
              {"target", r.target},
              {"no_cache", r.no_cache},
              {"push", r.push},
              {"output", r.output},
              {"platform", r.platform}};
}

json layerToJson(const LayerDescriptor& layer) {
  return json{
      {"media_type", layer.media_type}, {"digest", layer.digest.toString()}, {"size", layer.size}};
}

std::string stepKind(const StepRecord& step) {
  if (step.kind != InstructionKind::kUnspecified) {
    return std::string(instructionKindName(step.kind));
  }
  std::string word;
  size_t i = step.instruction.find_first_not_of(" \t");
  for (;
       i < step.instruction.size() && std::isalpha(static_cast<unsigned char>(step.instruction[i]));
       ++i) {
    word.push_back(
        static_cast<char>(std::toupper(static_cast<unsigned char>(step.instruction[i]))));
  }
  return word;
}

json stepToJson(const StepRecord& s) {
  return json{{"index", s.index},
              {"stage", s.stage},
              {"instruction", s.instruction},
              {"kind", stepKind(s)},
              {"state", stepStateName(s.state)},
              {"cached", s.cached},
              {"key", s.key.toString()},
              {"job", s.job_id},
              {"worker", s.worker},
              {"queued_ms", s.queued_unix_ms},
              {"started_ms", s.started_unix_ms},
              {"finished_ms", s.finished_unix_ms},
              {"duration_ms", s.durationMs()},
              {"layer", s.layer ? layerToJson(*s.layer) : json(nullptr)},
              {"diff_id", s.diff_id.toString()},
              {"error", s.error}};
}

json buildToJson(const BuildRecord& b, bool with_steps) {
  size_t cached = 0;
  for (const StepRecord& s : b.steps) cached += s.cached ? 1 : 0;
  json j{{"id", b.id},
         {"tenant", b.tenant},
         {"state", buildStateName(b.state)},
         {"created_ms", b.created_unix_ms},
         {"started_ms", b.started_unix_ms},
         {"finished_ms", b.finished_unix_ms},
         {"duration_ms", spanMs(b.started_unix_ms, b.finished_unix_ms)},
         {"request", buildRequestToJson(b.request)},
         {"cached_steps", cached},
         {"total_steps", b.steps.size()},
         {"manifest_digest", b.manifest_digest.toString()},
         {"config_digest", b.config_digest.toString()},
         {"failure_reason", b.failure_reason}};
  if (with_steps) {
    json steps = json::array();
    for (const StepRecord& s : b.steps) steps.push_back(stepToJson(s));
    j["steps"] = std::move(steps);
  }
  return j;
}

json workersToJson(const std::vector<WorkerView>& workers) {
  json list = json::array();
  for (const WorkerView& w : workers) {
    list.push_back(json{{"id", w.id},
                        {"platform", w.platform},
                        {"slots", w.slots},
                        {"running", w.running},
                        {"draining", w.draining},
                        {"held_layers", w.held_layers}});
  }
  return json{{"workers", std::move(list)}};
}

json cacheSummaryToJson(const CacheSummary& summary) {
  const CacheStats& s = summary.stored;
  auto kind = [](const CacheStats::PerKind& k) {
    return json{{"entries", k.entries}, {"total_bytes", k.total_bytes}, {"hits", k.hits}};
  };
  return json{{"entries", s.entries},
              {"total_bytes", s.total_bytes},
              {"hits", s.hits},
              {"by_kind", {{"RUN", kind(s.run)}, {"COPY", kind(s.copy)}, {"ADD", kind(s.add)}}},
              {"lookups", summary.lookups},
              {"lookup_hits", summary.lookup_hits}};
}

json imageHistoryToJson(const ImageRecord& image) {
  json history = json::array();
  for (const HistoryEntry& h : image.history) {
    history.push_back(json{{"created_ms", h.created_unix_ms},
                           {"created_by", h.created_by},
                           {"comment", h.comment},
                           {"empty_layer", h.empty_layer},
                           {"size", h.layer_size}});
  }
  return json{{"image",
               {{"manifest_digest", image.manifest_digest.toString()},
                {"config_digest", image.config_digest.toString()},
                {"references", image.references},
                {"build_id", image.build_id},
                {"platform", image.platform},
                {"created_ms", image.created_unix_ms}}},
              {"history", std::move(history)}};
}

unsigned httpStatusOf(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
      return 409;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
    case StatusCode::kCancelled:
    case StatusCode::kResourceExhausted:
      return 503;
    case StatusCode::kUnimplemented:
      return 501;
    case StatusCode::kDataLoss:
    case StatusCode::kInternal:
      break;
  }
  return 500;
}

std::string_view errorCodeOf(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kInvalidArgument:
      return "invalid_argument";
    case StatusCode::kNotFound:
      return "not_found";
    case StatusCode::kAlreadyExists:
      return "already_exists";
    case StatusCode::kFailedPrecondition:
      return "failed_precondition";
    case StatusCode::kPermissionDenied:
      return "permission_denied";
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
    case StatusCode::kCancelled:
    case StatusCode::kResourceExhausted:
      return "unavailable";
    case StatusCode::kUnimplemented:
      return "unimplemented";
    case StatusCode::kDataLoss:
    case StatusCode::kInternal:
      break;
  }
  return "internal";
}

std::string errorBody(std::string_view code, std::string_view message) {
  json j{{"error", {{"code", code}, {"message", message}}}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace lf::coordinator::api
