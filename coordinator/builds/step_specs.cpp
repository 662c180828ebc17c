#include "coordinator/builds/step_specs.h"

#include <fmt/format.h>

#include <algorithm>
#include <variant>

namespace lf::coordinator {

namespace {

namespace v1 = layerfarm::v1;

// The hostname RUN sees. BuildKit's, so a step that records its hostname gives the same layer on
// every worker and in every build (the proto's default would derive it from the job id).
constexpr std::string_view kBuildHostname = "buildkitsandbox";

std::string where(const plan::Step& step) {
  return fmt::format("Dockerfile:{}:{}", step.pos.line, step.pos.column);
}

Status refuse(const plan::Step& step, std::string_view what) {
  return invalidArgument(fmt::format("{}: {}", where(step), what));
}

// Go's path.Clean for an absolute path: "/a/./b/../c/" -> "/a/c". Docker cleans mount targets
// and working dirs the same way.
std::string cleanAbsolute(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i <= path.size()) {
    size_t slash = path.find('/', i);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view part = path.substr(i, slash - i);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    i = slash + 1;
  }
  std::string out;
  for (auto part : parts) out.append("/").append(part);
  return out.empty() ? "/" : out;
}

// `path` made absolute against the working dir, as BuildKit resolves RUN --mount targets.
std::string absoluteIn(const std::string& workdir, const std::string& path) {
  if (path.starts_with("/")) return cleanAbsolute(path);
  return cleanAbsolute((workdir.empty() ? std::string("/") : workdir) + "/" + path);
}

bool isEmptyLayer(const BuiltLayer& layer) {
  return layer.empty || layer.diff_id == emptyLayerDiffId();
}

v1::LayerRef layerRef(const BuiltLayer& layer) {
  v1::LayerRef out;
  out.mutable_blob()->set_media_type(layer.descriptor.media_type);
  out.mutable_blob()->set_digest(layer.descriptor.digest.toString());
  out.mutable_blob()->set_size(static_cast<int64_t>(layer.descriptor.size));
  out.set_diff_id(layer.diff_id.toString());
  return out;
}

// The worker refuses a layer without digest or diff ID; say which layer here, where the caller
// can still tell where it came from.
Status checkLayer(const BuiltLayer& layer, const std::string& field) {
  if (layer.descriptor.digest.empty()) return internalError(field + ": layer without a digest");
  if (layer.diff_id.empty()) {
    return internalError(field + ": layer " + layer.descriptor.digest.toString() +
                         " has no diff ID");
  }
  return Status::ok();
}

Status checkChain(const LayerChainInfo& chain, const std::string& field) {
  for (size_t i = 0; i < chain.size(); ++i) {
    LF_RETURN_IF_ERROR(checkLayer(chain[i], fmt::format("{}[{}]", field, i)));
  }
  return Status::ok();
}

// Maps `--from=<ref>` / `--mount=...,from=<ref>` to a filesystem. The planner recorded the refs
// it resolved in order: images (by the reference as written) in Step::uses_images, stages (by
// index) in Step::uses_stages. A ref is an image exactly when it is in uses_images (resolution
// depends only on the ref), so the n-th stage ref met is uses_stages[n].
class FromChains {
 public:
  explicit FromChains(const StepSpecInput& in) : in_(in) {}

  Result<v1::LayerChain> chainFor(const std::string& ref, std::string_view flag) {
    const plan::Step& step = *in_.step;
    const auto& images = step.uses_images;
    if (std::find(images.begin(), images.end(), ref) != images.end()) {
      auto it = in_.image_chains.find(ref);
      if (it == in_.image_chains.end()) {
        return refuse(step, fmt::format("{}={}: the image {} was not resolved", flag, ref, ref));
      }
      LF_RETURN_IF_ERROR(checkChain(it->second, fmt::format("{}={}", flag, ref)));
      return toLayerChain(it->second);
    }
    if (next_stage_ >= step.uses_stages.size()) {
      return internalError(
          fmt::format("{}: {}={}: the plan recorded no stage for it", where(step), flag, ref));
    }
    int index = step.uses_stages[next_stage_++];
    auto it = in_.stage_chains.find(index);
    if (it == in_.stage_chains.end()) {
      return failedPrecondition(
          fmt::format("{}: {}={}: stage {} has not been built", where(step), flag, ref, index));
    }
    LF_RETURN_IF_ERROR(checkChain(it->second, fmt::format("{}={}", flag, ref)));
    return toLayerChain(it->second);
  }

 private:
  const StepSpecInput& in_;
  size_t next_stage_ = 0;
};

// BuildKit's reading of RUN with here-documents: `RUN <<EOF` alone runs the body with the shell;
// anything else hands the command line plus the bodies to the shell, which parses them itself.
Result<std::string> shellCommandLine(const plan::Step& step, const dockerfile::RunCommand& run) {
  std::string line = run.args.empty() ? std::string() : run.args.front();
  if (run.heredocs.empty()) return line;
  std::string_view trimmed = line;
  while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\t')) {
    trimmed.remove_suffix(1);
  }
  if (run.heredocs.size() == 1 && trimmed.starts_with("<<") &&
      trimmed.find_first_of(" \t") == std::string_view::npos) {
    const std::string& body = run.heredocs.front().content;
    if (body.starts_with("#!")) {
      return refuse(step,
                    "RUN with a here-document starting with #! (run as a script file) is not "
                    "supported yet; name the interpreter instead: RUN python3 <<EOF");
    }
    return body;
  }
  for (const auto& doc : run.heredocs) line += "\n" + doc.content + doc.name;
  return line;
}

Status addMount(const StepSpecInput& in, const dockerfile::Mount& m, FromChains& from,
                v1::RunStep* run) {
  const plan::Step& step = *in.step;
  v1::RunMount* out = run->add_mounts();
  out->set_target(absoluteIn(step.config->workdir, m.target));
  out->set_readonly(m.readonly);
  switch (m.type) {
    case dockerfile::MountType::kSecret:
    case dockerfile::MountType::kSsh:
      return refuse(step, fmt::format("RUN --mount=type={}: not supported yet (the farm has no "
                                      "secret or SSH agent forwarding)",
                                      m.type == dockerfile::MountType::kSecret ? "secret" : "ssh"));
    case dockerfile::MountType::kTmpfs:
      out->set_type(v1::RunMount::TYPE_TMPFS);
      out->set_size_bytes(static_cast<int64_t>(m.size_bytes.value_or(0)));
      return Status::ok();
    case dockerfile::MountType::kCache: {
      if (!m.from.empty() || !m.source.empty()) {
        return refuse(step,
                      "RUN --mount=type=cache with from/source: seeding a cache from "
                      "another filesystem is not supported yet");
      }
      static constexpr const char* kSharing[] = {"shared", "private", "locked"};
      out->set_type(v1::RunMount::TYPE_CACHE);
      out->set_id(m.id.empty() ? m.target : m.id);
      out->set_sharing(kSharing[static_cast<int>(m.sharing)]);
      out->set_mode(m.mode.value_or(0755));
      out->set_uid(m.uid.value_or(0));
      out->set_gid(m.gid.value_or(0));
      return Status::ok();
    }
    case dockerfile::MountType::kBind: {
      out->set_type(v1::RunMount::TYPE_BIND);
      out->set_source(m.source);
      if (!m.from.empty()) {
        LF_ASSIGN_OR_RETURN(*out->mutable_from(), from.chainFor(m.from, "RUN --mount from"));
      } else if (in.context) {
        // The context is a layer: giving it as a one-layer chain spares the worker a special case.
        LF_RETURN_IF_ERROR(checkLayer(*in.context, "context"));
        *out->mutable_from()->add_layers() = layerRef(*in.context);
      } else {
        return refuse(step, "RUN --mount=type=bind reads the build context, but none was given");
      }
      return Status::ok();
    }
  }
  return internalError(where(step) + ": unknown mount type");
}

Status makeRun(const StepSpecInput& in, const dockerfile::RunCommand& cmd, v1::StepSpec* spec) {
  const plan::Step& step = *in.step;
  if (cmd.security == dockerfile::SecurityMode::kInsecure) {
    return refuse(step, "RUN --security=insecure: not supported (steps always run sandboxed)");
  }
  v1::RunStep* run = spec->mutable_run();
  if (cmd.shell_form) {
    LF_ASSIGN_OR_RETURN(std::string line, shellCommandLine(step, cmd));
    run->add_command(std::move(line));
    run->set_shell_form(true);
  } else {
    if (!cmd.heredocs.empty()) {
      return refuse(step, "RUN in exec form (JSON array) cannot take here-documents");
    }
    for (const auto& arg : cmd.args) run->add_command(arg);
  }
  static constexpr v1::NetworkMode kNet[] = {v1::NETWORK_MODE_DEFAULT, v1::NETWORK_MODE_NONE,
                                             v1::NETWORK_MODE_HOST};
  run->set_network(kNet[static_cast<int>(cmd.network)]);
  FromChains from(in);
  for (const auto& m : cmd.mounts) LF_RETURN_IF_ERROR(addMount(in, m, from, run));

  v1::ProcessConfig* config = spec->mutable_config();
  for (const auto& kv : step.run_env) config->add_env(kv);
  for (const auto& word : step.config->effectiveShell()) config->add_shell(word);
  config->set_hostname(std::string(kBuildHostname));
  return Status::ok();
}

bool isRemoteSource(std::string_view src) {
  for (std::string_view prefix : {"http://", "https://", "git@", "git://", "ssh://"}) {
    if (src.starts_with(prefix)) return true;
  }
  return false;
}

// What CopyStep cannot express yet: refused here, with the position, rather than run wrongly.
Status checkCopySupported(const plan::Step& step, const dockerfile::CopyCommand& cmd) {
  const char* keyword = cmd.is_add ? "ADD" : "COPY";
  if (!cmd.inline_sources.empty()) {
    return refuse(step, fmt::format("{} <<{}: here-document sources are not supported yet", keyword,
                                    cmd.inline_sources.front().name));
  }
  if (cmd.is_add) {
    for (const auto& src : cmd.sources) {
      if (isRemoteSource(src)) {
        return refuse(step, fmt::format("ADD {}: remote sources are not supported; download it "
                                        "in a RUN step (curl/wget) or COPY it from the context",
                                        src));
      }
    }
  }
  if (cmd.parents) return refuse(step, "COPY --parents: not supported yet");
  if (!cmd.excludes.empty()) {
    return refuse(step, fmt::format("{} --exclude: not supported yet", keyword));
  }
  if (cmd.checksum) return refuse(step, "ADD --checksum: only remote sources take a checksum");
  if (cmd.unpack && !*cmd.unpack) {
    return refuse(step, "ADD --unpack=false: not supported yet (local archives are extracted)");
  }
  if (cmd.chmod && !cmd.chmod_octal) {
    return refuse(
        step, fmt::format("{} --chmod={}: only octal modes are supported", keyword, *cmd.chmod));
  }
  if (cmd.sources.empty()) return refuse(step, fmt::format("{}: no source", keyword));
  return Status::ok();
}

Status makeCopy(const StepSpecInput& in, const dockerfile::CopyCommand& cmd, v1::StepSpec* spec) {
  const plan::Step& step = *in.step;
  LF_RETURN_IF_ERROR(checkCopySupported(step, cmd));
  v1::CopyStep* copy = spec->mutable_copy();
  if (cmd.from) {
    FromChains from(in);
    LF_ASSIGN_OR_RETURN(*copy->mutable_from(), from.chainFor(*cmd.from, "COPY --from"));
  } else if (in.context) {
    LF_RETURN_IF_ERROR(checkLayer(*in.context, "context"));
    *copy->mutable_context() = layerRef(*in.context);
  } else {
    return refuse(step, fmt::format("{} reads the build context, but none was given",
                                    cmd.is_add ? "ADD" : "COPY"));
  }
  for (const auto& src : cmd.sources) copy->add_sources(src);
  copy->set_destination(cmd.dest);
  copy->set_chown(cmd.chown.value_or(""));
  if (cmd.chmod_octal) copy->set_chmod(fmt::format("{:o}", *cmd.chmod_octal));
  copy->set_link(cmd.link);
  return Status::ok();
}

}  // namespace

v1::LayerChain toLayerChain(const LayerChainInfo& chain) {
  v1::LayerChain out;
  for (const auto& layer : chain) {
    // An empty layer changes nothing in the filesystem, and the assembled image drops it
    // (AssemblyInput::omit_empty_layers): leaving it out keeps the chain what the image holds
    // and spares the worker a download.
    if (isEmptyLayer(layer)) continue;
    *out.add_layers() = layerRef(layer);
  }
  return out;
}

Result<v1::StepSpec> makeStepSpec(const StepSpecInput& in) {
  if (in.stage == nullptr || in.step == nullptr) {
    return invalidArgument("step spec: no stage or step given");
  }
  const plan::Step& step = *in.step;
  if (!step.produces_layer || step.config == nullptr) {
    return invalidArgument(
        fmt::format("{}: {} does not produce a layer", where(step), step.keyword));
  }
  v1::StepSpec spec;
  LF_RETURN_IF_ERROR(checkChain(in.parent, "parent"));
  *spec.mutable_parent() = toLayerChain(in.parent);
  v1::ProcessConfig* config = spec.mutable_config();
  config->set_user(step.config->user);
  config->set_working_dir(step.config->workdir.empty() ? "/"
                                                       : absoluteIn("/", step.config->workdir));
  spec.set_compression(in.compression);
  if (in.source_date_epoch) spec.set_source_date_epoch(*in.source_date_epoch);

  if (const auto* run = std::get_if<dockerfile::RunCommand>(&step.command)) {
    spec.set_kind(v1::STEP_KIND_RUN);
    LF_RETURN_IF_ERROR(makeRun(in, *run, &spec));
  } else if (const auto* copy = std::get_if<dockerfile::CopyCommand>(&step.command)) {
    spec.set_kind(copy->is_add ? v1::STEP_KIND_ADD : v1::STEP_KIND_COPY);
    LF_RETURN_IF_ERROR(makeCopy(in, *copy, &spec));
  } else {
    return invalidArgument(
        fmt::format("{}: {} is not RUN, COPY or ADD", where(step), step.keyword));
  }
  return spec;
}

}  // namespace lf::coordinator
