#include "worker/exec/step_spec.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cctype>

#include "common/oci/media_types.h"

namespace lf::worker {
namespace {

namespace v1 = layerfarm::v1;

Status checkAbsolute(const std::string& path, const std::string& field) {
  if (!path.empty() && path.front() != '/') {
    return invalidArgument(field + ": \"" + path + "\" is not an absolute path");
  }
  return Status::ok();
}

Status checkNoNul(const std::string& value, const std::string& field) {
  if (value.find('\0') != std::string::npos) {
    return invalidArgument(field + ": contains a NUL byte");
  }
  return Status::ok();
}

Status validateConfig(const v1::ProcessConfig& config) {
  for (int i = 0; i < config.env_size(); ++i) {
    const std::string field = "config.env[" + std::to_string(i) + "]";
    const std::string& entry = config.env(i);
    LF_RETURN_IF_ERROR(checkNoNul(entry, field));
    size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) {
      return invalidArgument(field + ": \"" + entry + "\" is not KEY=VALUE");
    }
  }
  LF_RETURN_IF_ERROR(checkAbsolute(config.working_dir(), "config.working_dir"));
  LF_RETURN_IF_ERROR(checkNoNul(config.user(), "config.user"));
  if (config.hostname().size() > 64) {
    return invalidArgument("config.hostname: longer than 64 bytes");
  }
  return Status::ok();
}

std::string lowerCase(std::string text) {
  for (char& c : text) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return text;
}

// "a/b" is "a" or below it; both normalised, relative.
bool isSameOrBelow(const std::string& path, const std::string& dir) {
  return path.compare(0, dir.size(), dir) == 0 &&
         (path.size() == dir.size() || path[dir.size()] == '/');
}

// A mount target as a normalised relative path ("/a//./b/" -> "a/b"). The sandbox needs it
// absolute, without "..", not the root and not on what it provides itself (/proc, /sys, /dev,
// the /etc files); it checks again, but a spec problem found here fails the step at once.
Result<std::string> mountTarget(const std::string& path, const std::string& field) {
  LF_RETURN_IF_ERROR(checkNoNul(path, field));
  if (path.empty() || path.front() != '/') {
    return invalidArgument(field + ": must be an absolute path");
  }
  std::string rel;
  for (size_t pos = 0; pos < path.size();) {
    size_t end = std::min(path.find('/', pos), path.size());
    std::string part = path.substr(pos, end - pos);
    pos = end + 1;
    if (part == "..") {
      return invalidArgument(field + ": \"" + path + "\" has a \"..\" component");
    }
    if (!part.empty() && part != ".") {
      rel += (rel.empty() ? "" : "/") + part;
    }
  }
  if (rel.empty()) {
    return invalidArgument(field + ": the root cannot be a mount target");
  }
  for (const char* reserved :
       {"proc", "sys", "dev", "etc/hosts", "etc/resolv.conf", "etc/hostname"}) {
    if (isSameOrBelow(rel, reserved)) {
      return invalidArgument(field + ": \"" + path + "\" is provided by the sandbox (/" + reserved +
                             ")");
    }
  }
  return rel;
}

Status validateRun(const v1::RunStep& run) {
  if (run.command_size() == 0) {
    return invalidArgument("run.command: empty");
  }
  if (run.shell_form() && run.command_size() != 1) {
    return invalidArgument("run.command: the shell form takes exactly one string");
  }
  for (int i = 0; i < run.command_size(); ++i) {
    LF_RETURN_IF_ERROR(checkNoNul(run.command(i), "run.command[" + std::to_string(i) + "]"));
  }
  std::vector<std::string> targets;
  for (int i = 0; i < run.mounts_size(); ++i) {
    const auto& mount = run.mounts(i);
    const std::string field = "run.mounts[" + std::to_string(i) + "]";
    LF_ASSIGN_OR_RETURN(std::string target, mountTarget(mount.target(), field + ".target"));
    for (const std::string& other : targets) {
      if (isSameOrBelow(target, other) || isSameOrBelow(other, target)) {
        return invalidArgument(field + ".target: \"" + mount.target() +
                               "\" overlaps the target of another mount (/" + other + ")");
      }
    }
    targets.push_back(std::move(target));
    switch (mount.type()) {
      case v1::RunMount::TYPE_TMPFS:
      case v1::RunMount::TYPE_CACHE:
        break;
      case v1::RunMount::TYPE_BIND:
        LF_RETURN_IF_ERROR(checkNoNul(mount.source(), field + ".source"));
        LF_RETURN_IF_ERROR(toLayerChain(mount.from(), field + ".from").status());
        break;
      case v1::RunMount::TYPE_UNSPECIFIED:
        return invalidArgument(field + ".type: missing");
      default:
        return unimplemented(field + ": RUN --mount=type=" +
                             lowerCase(v1::RunMount::Type_Name(mount.type()).substr(5)) +
                             " is not supported by the worker (tmpfs, cache and bind are)");
    }
  }
  for (int i = 0; i < run.extra_hosts_size(); ++i) {
    const std::string& host = run.extra_hosts(i);
    if (host.find(':') == std::string::npos || host.find_first_of(" \t\n\0") != std::string::npos) {
      return invalidArgument("run.extra_hosts[" + std::to_string(i) + "]: \"" + host +
                             "\" is not name:ip");
    }
  }
  return Status::ok();
}

Status validateCopy(const v1::CopyStep& copy) {
  if (copy.source_case() == v1::CopyStep::SOURCE_NOT_SET) {
    return invalidArgument("copy: neither context nor from is set");
  }
  if (copy.source_case() == v1::CopyStep::kContext) {
    LF_RETURN_IF_ERROR(toLayerRef(copy.context(), "copy.context").status());
  } else {
    LF_RETURN_IF_ERROR(toLayerChain(copy.from(), "copy.from").status());
  }
  if (copy.sources_size() == 0) {
    return invalidArgument("copy.sources: empty");
  }
  for (int i = 0; i < copy.sources_size(); ++i) {
    const std::string field = "copy.sources[" + std::to_string(i) + "]";
    if (copy.sources(i).empty()) {
      return invalidArgument(field + ": empty path");
    }
    LF_RETURN_IF_ERROR(checkNoNul(copy.sources(i), field));
  }
  if (copy.destination().empty()) {
    return invalidArgument("copy.destination: empty");
  }
  LF_RETURN_IF_ERROR(checkNoNul(copy.destination(), "copy.destination"));
  LF_RETURN_IF_ERROR(checkNoNul(copy.chown(), "copy.chown"));
  return Status::ok();
}

}  // namespace

Result<LayerRef> toLayerRef(const v1::LayerRef& ref, const std::string& field) {
  LayerRef out;
  auto digest = Digest::parse(ref.blob().digest());
  if (!digest.isOk()) {
    return invalidArgument(field + ".blob.digest: " + digest.status().message());
  }
  out.digest = *digest;
  if (ref.blob().size() < 0) {
    return invalidArgument(field + ".blob.size: negative");
  }
  out.size = static_cast<uint64_t>(ref.blob().size());
  out.media_type = ref.blob().media_type();
  if (!ref.diff_id().empty()) {
    auto diff_id = Digest::parse(ref.diff_id());
    if (!diff_id.isOk()) {
      return invalidArgument(field + ".diff_id: " + diff_id.status().message());
    }
    out.diff_id = *diff_id;
  } else {
    return invalidArgument(field + ".diff_id: missing (the worker keys unpacked layers by it)");
  }
  return out;
}

Result<std::vector<LayerRef>> toLayerChain(const v1::LayerChain& chain, const std::string& field) {
  std::vector<LayerRef> out;
  out.reserve(static_cast<size_t>(chain.layers_size()));
  for (int i = 0; i < chain.layers_size(); ++i) {
    LF_ASSIGN_OR_RETURN(LayerRef ref,
                        toLayerRef(chain.layers(i), field + ".layers[" + std::to_string(i) + "]"));
    out.push_back(std::move(ref));
  }
  return out;
}

v1::LayerRef fromLayerRef(const LayerRef& ref) {
  v1::LayerRef out;
  out.mutable_blob()->set_media_type(ref.media_type);
  out.mutable_blob()->set_digest(ref.digest.toString());
  out.mutable_blob()->set_size(static_cast<int64_t>(ref.size));
  out.set_diff_id(ref.diff_id.toString());
  return out;
}

Status validateStepSpec(const v1::StepSpec& spec) {
  LF_RETURN_IF_ERROR(toLayerChain(spec.parent(), "parent").status());
  LF_RETURN_IF_ERROR(validateConfig(spec.config()));
  const auto& limits = spec.limits();
  if (limits.timeout_ms() < 0 || limits.memory_bytes() < 0 || limits.pids_max() < 0 ||
      limits.cpu_millis() < 0) {
    return invalidArgument("limits: negative value");
  }
  switch (spec.kind()) {
    case v1::STEP_KIND_RUN:
      return validateRun(spec.run());
    case v1::STEP_KIND_COPY:
    case v1::STEP_KIND_ADD:
      return validateCopy(spec.copy());
    default:
      return invalidArgument("kind: expected STEP_KIND_RUN, STEP_KIND_COPY or STEP_KIND_ADD");
  }
}

Result<v1::StepSpec> parseStepSpecJson(std::string_view json, std::string_view origin) {
  v1::StepSpec spec;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &spec, options);
  if (!status.ok()) {
    return invalidArgument(std::string(origin) + ": " + std::string(status.message()));
  }
  auto valid = validateStepSpec(spec);
  if (!valid.isOk()) {
    return valid.withContext(origin);
  }
  return spec;
}

namespace {
std::string toJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = false;
  // Printing a message we built cannot fail (no Any fields); an empty string would show it.
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}
}  // namespace

std::string stepResultToJson(const v1::StepResult& result) { return toJson(result); }
std::string stepSpecToJson(const v1::StepSpec& spec) { return toJson(spec); }

}  // namespace lf::worker
