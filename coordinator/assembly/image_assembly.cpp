#include "coordinator/assembly/image_assembly.h"

#include <string>

#include "common/oci/layout.h"
#include "common/oci/media_types.h"

namespace lf::coordinator {

namespace {

// "stage build step 3 (RUN /bin/sh -c make # buildkit)"
std::string stepName(const plan::Stage& stage, const plan::Step& step) {
  return "stage " + stage.displayName() + " step " + std::to_string(step.index) + " (" +
         step.created_by + ")";
}

size_t countLayerEntries(const std::vector<oci::History>& history) {
  size_t n = 0;
  for (const auto& h : history) n += h.empty_layer ? 0 : 1;
  return n;
}

// Copies the base's layers, diff_ids and history into `config`/`layers`. A base with fewer
// history entries than layers (images imported without history) gets entries filled in after
// its own, as BuildKit's exporter does; one with more is refused: its history cannot be matched
// to its layers.
Status addBase(const BaseImageInfo& base, oci::ImageConfig* config,
               std::vector<oci::Descriptor>* layers) {
  const auto& diff_ids = base.config.rootfs.diff_ids;
  if (diff_ids.size() != base.layers.size()) {
    return invalidArgument("base image: config.rootfs.diff_ids has " +
                           std::to_string(diff_ids.size()) + " entries but the manifest has " +
                           std::to_string(base.layers.size()) + " layers");
  }
  size_t with_layer = countLayerEntries(base.config.history);
  if (with_layer > base.layers.size()) {
    return invalidArgument("base image: config.history has " + std::to_string(with_layer) +
                           " entries with a layer but the image has " +
                           std::to_string(base.layers.size()) + " layers");
  }
  config->history = base.config.history;
  for (size_t i = with_layer; i < base.layers.size(); ++i) {
    oci::History h;
    h.created = base.config.created;
    h.comment = "history entry missing in the base image, added by layerfarm";
    config->history.push_back(std::move(h));
  }
  config->rootfs.diff_ids = diff_ids;
  *layers = base.layers;
  return Status::ok();
}

bool isEmptyLayer(const BuiltLayer& layer) {
  return layer.empty || layer.diff_id == emptyLayerDiffId();
}

// The layer a layer step produced, checked against the store.
Result<BuiltLayer> stepLayer(const AssemblyInput& in, const plan::Step& step,
                             blob::BlobStore& store) {
  const plan::Stage& stage = *in.stage;
  auto it = in.step_layers.find(step.index);
  if (it == in.step_layers.end()) {
    return invalidArgument(stepName(stage, step) + " produces a layer but none was given");
  }
  const BuiltLayer& layer = it->second;
  const oci::Descriptor& d = layer.descriptor;
  if (!oci::isLayerMediaType(d.media_type)) {
    return invalidArgument(stepName(stage, step) + ": layer " + d.digest.toString() +
                           " has media type \"" + d.media_type + "\", not a layer's");
  }
  if (d.digest.empty() || layer.diff_id.empty()) {
    return invalidArgument(stepName(stage, step) + ": layer has no digest or diff_id");
  }
  LF_ASSIGN_OR_RETURN(auto info, store.stat(d.digest));
  if (!info) {
    return notFound(stepName(stage, step) + ": layer blob " + d.digest.toString() +
                    " is not in the blob store");
  }
  if (info->size != d.size) {
    return dataLoss(stepName(stage, step) + ": layer blob " + d.digest.toString() + " is " +
                    std::to_string(info->size) + " bytes, its descriptor says " +
                    std::to_string(d.size));
  }
  return layer;
}

// One history entry per step, and the layers the layer steps add.
Status addSteps(const AssemblyInput& in, blob::BlobStore& store, oci::ImageConfig* config,
                std::vector<oci::Descriptor>* layers) {
  const plan::Stage& stage = *in.stage;
  for (const auto& [index, layer] : in.step_layers) {
    if (index < 1 || index > static_cast<int>(stage.steps.size())) {
      return invalidArgument("stage " + stage.displayName() + ": a layer was given for step " +
                             std::to_string(index) + ", which does not exist");
    }
    const plan::Step& step = stage.steps[index - 1];
    if (!step.produces_layer) {
      return invalidArgument(stepName(stage, step) +
                             " is a metadata step but a layer was given for it");
    }
  }
  for (const auto& step : stage.steps) {
    // BuildKit records no history for ONBUILD: it only adds a trigger to the config.
    if (step.keyword == "ONBUILD") continue;
    oci::History h;
    h.created = config->created;
    h.created_by = step.created_by;
    h.comment = std::string(kHistoryComment);
    if (!step.produces_layer) {
      h.empty_layer = true;
    } else {
      LF_ASSIGN_OR_RETURN(BuiltLayer layer, stepLayer(in, step, store));
      if (in.omit_empty_layers && isEmptyLayer(layer)) {
        h.empty_layer = true;
      } else {
        layers->push_back(layer.descriptor);
        config->rootfs.diff_ids.push_back(layer.diff_id);
      }
    }
    config->history.push_back(std::move(h));
  }
  return Status::ok();
}

}  // namespace

const Digest& emptyLayerDiffId() {
  static const Digest kEmpty = Digest::sha256Of(std::string(1024, '\0'));
  return kEmpty;
}

oci::ContainerConfig containerConfigOf(const plan::RuntimeConfig& c) {
  oci::ContainerConfig out;
  out.user = c.user;
  out.exposed_ports = c.exposed_ports;
  out.env = c.env;
  out.entrypoint = c.entrypoint;
  out.cmd = c.cmd;
  out.volumes = c.volumes;
  out.working_dir = c.workdir;
  out.labels = c.labels;
  out.stop_signal = c.stop_signal;
  if (c.healthcheck) {
    const plan::Healthcheck& h = *c.healthcheck;
    out.healthcheck = oci::HealthConfig{
        h.test, h.interval_ns, h.timeout_ns, h.start_period_ns, h.start_interval_ns, h.retries};
  }
  out.on_build = c.onbuild;
  out.shell = c.shell;
  out.args_escaped = c.args_escaped;
  return out;
}

plan::RuntimeConfig runtimeConfigOf(const oci::ImageConfig& image) {
  const oci::ContainerConfig& c = image.config;
  plan::RuntimeConfig out;
  out.env = c.env;
  out.user = c.user;
  out.workdir = c.working_dir;
  out.shell = c.shell;
  out.entrypoint = c.entrypoint;
  out.cmd = c.cmd;
  out.labels = c.labels;
  out.exposed_ports = c.exposed_ports;
  out.volumes = c.volumes;
  if (c.healthcheck) {
    const oci::HealthConfig& h = *c.healthcheck;
    out.healthcheck = plan::Healthcheck{h.test,
                                        h.interval_ns,
                                        h.timeout_ns,
                                        h.start_period_ns,
                                        h.start_interval_ns,
                                        static_cast<int>(h.retries)};
  }
  out.stop_signal = c.stop_signal;
  out.onbuild = c.on_build;
  out.author = image.author;
  out.args_escaped = c.args_escaped;
  return out;
}

Result<AssembledImage> assembleImage(const AssemblyInput& in, blob::BlobStore& store) {
  if (in.stage == nullptr) return invalidArgument("assemble image: no stage given");
  const plan::Stage& stage = *in.stage;
  const std::string what = "assemble stage " + stage.displayName();
  if (in.created_unix_seconds < 0) {
    return invalidArgument(what + ": created time " + std::to_string(in.created_unix_seconds) +
                           " is before 1970");
  }
  AssembledImage out;
  oci::ImageConfig& config = out.config;
  config.created = oci::formatRfc3339(in.created_unix_seconds);
  config.architecture = in.platform.architecture;
  config.os = in.platform.os;
  config.variant = in.platform.variant;
  const plan::RuntimeConfig& final_config = stage.finalConfig();
  config.config = containerConfigOf(final_config);
  config.author = final_config.author;
  if (in.base) {
    Status s = addBase(*in.base, &config, &out.layers);
    if (!s.isOk()) return s.withContext(what);
  }
  LF_RETURN_IF_ERROR(addSteps(in, store, &config, &out.layers));

  // addBase and addSteps keep these in step; a mismatch here is a bug, caught before storing.
  size_t with_layer = countLayerEntries(config.history);
  if (with_layer != out.layers.size() || config.rootfs.diff_ids.size() != out.layers.size()) {
    return internalError(what + ": " + std::to_string(with_layer) +
                         " history entries with a layer, " + std::to_string(out.layers.size()) +
                         " layers, " + std::to_string(config.rootfs.diff_ids.size()) + " diff_ids");
  }
  out.config_json = config.toJson();
  LF_ASSIGN_OR_RETURN(out.manifest, oci::storeImage(store, config, out.layers, in.annotations));
  // storeImage stored exactly toJson()'s bytes; describe them for callers.
  out.config_descriptor.media_type = std::string(oci::kOciConfig);
  out.config_descriptor.digest = Digest::sha256Of(out.config_json);
  out.config_descriptor.size = out.config_json.size();
  return out;
}

}  // namespace lf::coordinator
