// BuildDriver, part 3: assembling the target stage's image, storing its history, pushing and
// exporting it, and ending the build.

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <system_error>

#include "common/registry/reference.h"
#include "coordinator/assembly/image_history.h"
#include "coordinator/assembly/layer_variants.h"
#include "coordinator/builds/build_driver.h"
#include "coordinator/builds/build_events.h"
#include "coordinator/builds/unix_time.h"

namespace lf::coordinator {

Status BuildDriver::finish() {
  message("assembling the image");
  LF_ASSIGN_OR_RETURN(AssembledImage local, assembleStage(plan_.target_stage));
  std::vector<std::string> references;
  for (const auto& tag : rec_.request.tags) {
    auto ref = registry::Reference::parse(tag);
    references.push_back(ref.isOk() ? ref->toString() : tag);
  }
  // History sizes come from the local image: uncompressed for the build's own layers, which is
  // what `docker history` shows.
  LF_ASSIGN_OR_RETURN(ImageRecord record, imageRecordOf(local, references, rec_.id));
  // What leaves the farm has compressed layers (layer_variants.h); the digest the build reports
  // and records is that image's, so it matches the registry's. Without push or export nothing
  // is compressed and the local manifest (uncompressed layers) is the result.
  const bool distribute = rec_.request.push || !rec_.request.output.empty();
  AssembledImage image = local;
  if (distribute) {
    if (cancelRequested()) return cancelled("cancelled");
    DistributionOptions options;
    options.compression = m_.options_.push_compression;
    options.progress = [this](std::string_view text) { message(text); };
    options.metrics = m_.deps_.metrics;
    LF_ASSIGN_OR_RETURN(DistributionImage dist,
                        distributionImage(m_.deps_.state, m_.deps_.blobs, local, options));
    image = std::move(dist.image);
    record.manifest_digest = image.manifest.digest;
    record.media_type = image.manifest.media_type;
  }
  LF_RETURN_IF_ERROR(m_.deps_.state.putImage(record));
  if (rec_.request.push) {
    if (cancelRequested()) return cancelled("cancelled");
    LF_RETURN_IF_ERROR(pushImage(image));
  }
  if (!rec_.request.output.empty()) LF_RETURN_IF_ERROR(exportImage(image));

  rec_.manifest_digest = image.manifest.digest;
  rec_.config_digest = image.config_descriptor.digest;
  uint64_t size = image.manifest.size + image.config_descriptor.size;
  for (const auto& layer : image.layers) size += layer.size;
  size_t cached = 0;
  for (const auto& step : rec_.steps) cached += step.cached ? 1 : 0;
  run_.log->append({{"type", "result"},
                    {"manifest_digest", image.manifest.digest.toString()},
                    {"config_digest", image.config_descriptor.digest.toString()},
                    {"size", size},
                    {"cached_steps", cached},
                    {"total_steps", rec_.steps.size()},
                    {"pushed", pushed_}});
  return Status::ok();
}

Result<AssembledImage> BuildDriver::assembleStage(int stage_index) {
  auto done = assembled_.find(stage_index);
  if (done != assembled_.end()) return done->second;
  const plan::Stage& stage = plan_.stages[stage_index];
  AssemblyInput input;
  input.stage = &stage;
  if (stage.base_stage >= 0) {
    LF_ASSIGN_OR_RETURN(AssembledImage base, assembleStage(stage.base_stage));
    input.base = BaseImageInfo{base.config, base.layers};
  } else if (stages_[stage_index].base_image) {
    input.base = stages_[stage_index].base_image;
  }
  for (int index : stages_[stage_index].steps) {
    const StepTrack& t = steps_[index];
    if (t.layer) input.step_layers[stage.steps[t.pos].index] = *t.layer;
  }
  input.platform = stage.platform;
  input.created_unix_seconds = imageCreatedSeconds();
  LF_ASSIGN_OR_RETURN(AssembledImage image, assembleImage(input, m_.deps_.blobs));
  assembled_.emplace(stage_index, image);
  return image;
}

// The image's `created`: SOURCE_DATE_EPOCH when given; else when the newest layer of the build
// was first made (its cache entry's time), so a rebuild answered from the cache gives the same
// config and manifest digest, as BuildKit's does; the build's start when no step made a layer.
int64_t BuildDriver::imageCreatedSeconds() const {
  if (source_date_epoch_given_) return source_date_epoch_;
  int64_t newest_ms = 0;
  for (const auto& t : steps_) newest_ms = std::max(newest_ms, t.layer_created_unix_ms);
  return newest_ms > 0 ? newest_ms / 1000 : source_date_epoch_;
}

Status BuildDriver::pushImage(const AssembledImage& image) {
  if (m_.deps_.registry == nullptr) {
    return failedPrecondition("push: this coordinator has no registry client configured");
  }
  PushAssembledOptions options;
  for (const auto& track : stages_) {
    if (track.needed && !track.base_repository.empty()) {
      options.mount_from.push_back(track.base_repository);
    }
  }
  options.progress = [this](std::string_view text) { message(text); };
  for (const auto& tag : rec_.request.tags) message("pushing " + tag);
  auto results =
      pushAssembledImage(*m_.deps_.registry, m_.deps_.blobs, image, rec_.request.tags, options);
  if (!results.isOk()) return results.status().withContext("push");
  pushed_ = rec_.request.tags;
  return Status::ok();
}

Status BuildDriver::exportImage(const AssembledImage& image) {
  const std::filesystem::path dest = m_.exportFile(rec_.id);
  std::error_code ec;
  std::filesystem::create_directories(dest.parent_path(), ec);
  if (ec) return errnoStatus(ec.value(), "export: create " + dest.parent_path().string());
  // The coordinator decides where the file goes; a dest= in the spec is replaced.
  std::string spec = rec_.request.output;
  if (spec.find("dest=") == std::string::npos) spec += ",dest=" + dest.string();
  LF_ASSIGN_OR_RETURN(ExportOptions options, parseExportSpec(spec, rec_.request.tags));
  options.dest = dest;
  options.tar = true;
  message("exporting the image");
  return coordinator::exportImage(m_.deps_.blobs, image, options).withContext("export");
}

void BuildDriver::endBuild(BuildState state, std::string reason) {
  if (state != BuildState::kSucceeded && submitted_any_) m_.deps_.broker.cancelBuild(rec_.id);
  for (auto& step : rec_.steps) {
    if (step.state == StepState::kPending || step.state == StepState::kQueued ||
        step.state == StepState::kRunning) {
      setStepState(static_cast<int>(step.index), StepState::kCancelled);
      emitStep(static_cast<int>(step.index));
    }
  }
  rec_.state = state;
  rec_.failure_reason = std::move(reason);
  rec_.finished_unix_ms = nowUnixMs();
  if (m_.deps_.metrics) {
    // builds_running counts started builds; one cancelled while queued never was.
    if (!counted_running_) m_.deps_.metrics->buildStarted();
    const double seconds =
        static_cast<double>(rec_.finished_unix_ms - rec_.created_unix_ms) / 1000.0;
    m_.deps_.metrics->buildFinished(buildStateName(state), seconds);
  }
  // Record, then the last event: whoever saw the build end finds the final record and metrics.
  publish(/*final=*/true);
  run_.log->append(buildEvent(rec_));
  run_.log->close();
  spdlog::info("build={} state={} reason={}", rec_.id, buildStateName(state), rec_.failure_reason);
}

}  // namespace lf::coordinator
