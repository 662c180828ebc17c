// BuildDriver, part 2: submitting the steps no cache entry answered as jobs once their parents
// are known, and applying what the broker reports about them.

#include <spdlog/spdlog.h>

#include <chrono>
#include <type_traits>
#include <utility>

#include "common/context/context_manifest.h"
#include "coordinator/builds/build_driver.h"
#include "coordinator/builds/build_events.h"
#include "coordinator/builds/unix_time.h"

namespace lf::coordinator {
namespace {

bool isEmptyLayer(const BuiltLayer& layer) {
  return layer.empty || layer.diff_id == emptyLayerDiffId();
}

void appendChain(LayerChainInfo& chain, const std::optional<BuiltLayer>& layer) {
  if (layer && !isEmptyLayer(*layer)) chain.push_back(*layer);
}

LayerChainInfo chainOf(const BaseImageInfo& image) {
  LayerChainInfo chain;
  for (size_t i = 0; i < image.layers.size(); ++i) {
    BuiltLayer layer;
    layer.descriptor = image.layers[i];
    if (i < image.config.rootfs.diff_ids.size()) layer.diff_id = image.config.rootfs.diff_ids[i];
    chain.push_back(std::move(layer));
  }
  return chain;
}

}  // namespace

std::string BuildDriver::stepName(const StepTrack& step) const {
  const plan::Stage& stage = plan_.stages[step.stage];
  return "[" + stage.displayName() + " " + std::to_string(step.pos + 2) + "/" +
         std::to_string(stage.steps.size() + 1) + "] " + rec_.steps[step.record].instruction;
}

Status BuildDriver::runJobs() {
  while (true) {
    bool progressed = false;
    // Completion first: a stage finished by the last event makes the steps that COPY --from it
    // (or build on it) ready in this same pass.
    updateCompletion();
    LF_RETURN_IF_ERROR(submitReady(progressed));
    updateCompletion();
    publish();
    if (allComplete()) return Status::ok();
    if (!jobsInFlight()) {
      // Cannot happen with a plan whose stage references point backwards; fail rather than hang.
      return internalError("build stalled: no step is ready and no job is running");
    }
    std::deque<InboundEvent> events;
    {
      std::unique_lock lock(run_.mu);
      run_.wake.wait(lock, [&] {
        return !run_.inbox.empty() || run_.cancel_requested.load() || run_.stop_requested.load();
      });
      events.swap(run_.inbox);
    }
    if (cancelRequested() || stopRequested()) return cancelled("cancelled");
    for (const auto& event : events) LF_RETURN_IF_ERROR(handle(event));
  }
}

Status BuildDriver::submitReady(bool& progressed) {
  for (size_t i = 0; i < steps_.size(); ++i) {
    if (!stepReady(steps_[i])) continue;
    LF_RETURN_IF_ERROR(submitStep(static_cast<int>(i)));
    progressed = true;
  }
  return Status::ok();
}

bool BuildDriver::stepReady(const StepTrack& step) const {
  if (step.known || step.submitted) return false;
  const plan::Stage& stage = plan_.stages[step.stage];
  if (stage.base_stage >= 0 && !stages_[stage.base_stage].complete) return false;
  for (int index : stages_[step.stage].steps) {
    const StepTrack& before = steps_[index];
    if (before.pos >= step.pos) break;
    if (!before.known) return false;
  }
  for (int used : stage.steps[step.pos].uses_stages) {
    if (!stages_[used].complete) return false;
  }
  return true;
}

LayerChainInfo BuildDriver::baseChain(int stage) const {
  const plan::Stage& s = plan_.stages[stage];
  if (s.base_stage >= 0) return stageChain(s.base_stage);
  if (stages_[stage].base_image) return chainOf(*stages_[stage].base_image);
  return {};
}

LayerChainInfo BuildDriver::stageChain(int stage) const {
  LayerChainInfo chain = baseChain(stage);
  for (int index : stages_[stage].steps) appendChain(chain, steps_[index].layer);
  return chain;
}

LayerChainInfo BuildDriver::chainBefore(const StepTrack& step) const {
  LayerChainInfo chain = baseChain(step.stage);
  for (int index : stages_[step.stage].steps) {
    if (steps_[index].pos >= step.pos) break;
    appendChain(chain, steps_[index].layer);
  }
  return chain;
}

Status BuildDriver::submitStep(int index) {
  StepTrack& t = steps_[index];
  const plan::Stage& stage = plan_.stages[t.stage];
  const plan::Step& step = stage.steps[t.pos];
  StepSpecInput input;
  input.stage = &stage;
  input.step = &step;
  input.parent = chainBefore(t);
  BuiltLayer context;
  // The context travels as its manifest: workers materialize the tree from it and the file
  // blobs (worker/layer_store). The manifest's digest names that tree, so it is its diff ID too.
  // Workers get the view without the builder-only files (ContextFiles::worker_manifest).
  context.descriptor.media_type = std::string(context::kContextManifestMediaType);
  context.descriptor.digest = context_->worker_manifest;
  context.descriptor.size = context_->worker_manifest_size;
  context.diff_id = context_->worker_manifest;
  input.context = context;
  for (int used : step.uses_stages) input.stage_chains[used] = stageChain(used);
  for (const auto& ref : step.uses_images) {
    auto it = bases_.find(ref);
    if (it != bases_.end()) input.image_chains[ref] = chainOf(it->second.image);
  }
  input.source_date_epoch = source_date_epoch_;
  input.compression = m_.options_.compression;
  LF_ASSIGN_OR_RETURN(layerfarm::v1::StepSpec spec, makeStepSpec(input));

  JobRequest request;
  request.build_id = rec_.id;
  request.tenant = rec_.tenant;
  request.key = rec_.steps[t.record].key;
  request.platform = stage.platform.toString();
  for (const auto& layer : input.parent)
    request.parent_diff_ids.push_back(layer.diff_id.toString());
  request.spec = std::move(spec);
  auto outcome = m_.deps_.broker.submit(std::move(request));
  if (!outcome.isOk()) return outcome.status().withContext(stepName(t) + ": submitting the job");
  t.submitted = true;
  submitted_any_ = true;
  job_steps_[outcome->job_id].push_back(index);
  StepRecord& r = rec_.steps[t.record];
  r.job_id = outcome->job_id;
  setStepState(t.record, StepState::kQueued);
  emitStep(t.record);
  return Status::ok();
}

void BuildDriver::updateCompletion() {
  // Stage order: a stage's base stage comes before it.
  for (size_t s = 0; s < stages_.size(); ++s) {
    StageTrack& track = stages_[s];
    if (!track.needed || track.complete) continue;
    const plan::Stage& stage = plan_.stages[s];
    if (stage.base_stage >= 0 && !stages_[stage.base_stage].complete) continue;
    bool all = true;
    for (int index : track.steps) all = all && steps_[index].known;
    track.complete = all;
  }
}

bool BuildDriver::allComplete() const {
  for (const auto& track : stages_) {
    if (track.needed && !track.complete) return false;
  }
  return true;
}

bool BuildDriver::jobsInFlight() const { return !job_steps_.empty(); }

Status BuildDriver::handle(const InboundEvent& event) {
  return std::visit(
      [this](const auto& e) -> Status {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, JobAssigned>) {
          onAssigned(e);
          return Status::ok();
        } else if constexpr (std::is_same_v<T, JobLogBatch>) {
          onLog(e);
          return Status::ok();
        } else {
          return onJobEvent(e);
        }
      },
      event);
}

void BuildDriver::onAssigned(const JobAssigned& assigned) {
  auto it = job_steps_.find(assigned.job_id);
  if (it == job_steps_.end()) return;
  for (int index : it->second) {
    const int record = steps_[index].record;
    setStepState(record, StepState::kRunning);
    rec_.steps[record].worker = assigned.worker_id;
    emitStep(record, assigned.attempt);
  }
}

void BuildDriver::onLog(const JobLogBatch& batch) {
  auto it = job_steps_.find(batch.job_id);
  if (it == job_steps_.end() || it->second.empty()) return;
  // Steps sharing a job share its output; it is shown once, under the first of them.
  const int record = steps_[it->second.front()].record;
  if (batch.dropped_lines > 0) {
    message("step " + std::to_string(record) + ": the worker dropped " +
            std::to_string(batch.dropped_lines) + " output lines");
  }
  for (const auto& line : batch.lines) {
    run_.log->append(
        {{"type", "log"},
         {"index", record},
         {"stream", line.stream() == layerfarm::v1::StepLog::STREAM_STDERR ? "stderr" : "stdout"},
         {"line", line.line()},
         {"ts_ns", line.timestamp_unix_ns()}});
  }
}

Status BuildDriver::onJobEvent(const JobEvent& event) {
  auto it = job_steps_.find(event.job_id);
  if (it == job_steps_.end()) return Status::ok();  // a job this build no longer waits for
  const std::vector<int> steps = it->second;
  switch (event.kind) {
    case JobEvent::Kind::kSucceeded:
      job_steps_.erase(it);
      return onSucceeded(event, steps);
    case JobEvent::Kind::kFailed: {
      job_steps_.erase(it);
      std::string error = event.result.error().empty() ? event.reason : event.result.error();
      if (error.empty()) error = "the step failed";
      for (int index : steps) {
        const int record = steps_[index].record;
        setStepState(record, StepState::kFailed);
        rec_.steps[record].worker = event.worker_id;
        rec_.steps[record].error = error;
        emitStep(record, event.attempt);
      }
      return failedPrecondition(stepName(steps_[steps.front()]) + ": " + error);
    }
    case JobEvent::Kind::kRequeued:
      for (int index : steps) {
        setStepState(steps_[index].record, StepState::kQueued);
        emitStep(steps_[index].record, event.attempt);
      }
      message("job " + event.job_id + " requeued: " + event.reason);
      return Status::ok();
    case JobEvent::Kind::kCancelled:
      if (cancelRequested()) return Status::ok();
      // Not asked for by this build: submit the steps again rather than wait forever.
      job_steps_.erase(it);
      for (int index : steps) {
        steps_[index].submitted = false;
        setStepState(steps_[index].record, StepState::kPending);
        rec_.steps[steps_[index].record].job_id.clear();
        emitStep(steps_[index].record, event.attempt);
      }
      message("job " + event.job_id + " was cancelled (" + event.reason + "); submitting again");
      return Status::ok();
  }
  return Status::ok();
}

Status BuildDriver::onSucceeded(const JobEvent& event, const std::vector<int>& steps) {
  const StepTrack& first = steps_[steps.front()];
  const StepRecord& first_record = rec_.steps[first.record];
  const auto& ref = event.result.layer();
  auto digest = Digest::parse(ref.blob().digest());
  auto diff_id = Digest::parse(ref.diff_id());
  if (!digest.isOk() || !diff_id.isOk()) {
    return dataLoss(stepName(first) + ": worker " + event.worker_id +
                    " reported a layer without valid digests");
  }
  CacheEntry entry;
  entry.key = first_record.key;
  entry.layer.media_type = ref.blob().media_type();
  entry.layer.digest = *digest;
  entry.layer.size = static_cast<uint64_t>(ref.blob().size());
  entry.diff_id = *diff_id;
  entry.kind = first_record.kind;
  entry.created_by = plan_.stages[first.stage].steps[first.pos].created_by;
  entry.created_by_build = rec_.id;
  entry.created_unix_ms = nowUnixMs();
  // The first writer of a key wins: use what the index holds so every build agrees.
  auto stored = m_.deps_.state.putCacheEntry(entry, blobCheckFor(m_.deps_.blobs));
  if (!stored.isOk()) {
    return stored.status().withContext(stepName(first) + ": recording the layer");
  }
  BuiltLayer layer;
  layer.descriptor.media_type = stored->layer.media_type;
  layer.descriptor.digest = stored->layer.digest;
  layer.descriptor.size = stored->layer.size;
  layer.diff_id = stored->diff_id;
  layer.empty = stored->diff_id == emptyLayerDiffId() ||
                (event.result.empty_layer() && stored->layer == entry.layer);
  for (int index : steps) {
    StepTrack& t = steps_[index];
    t.known = true;
    t.layer = layer;
    t.layer_created_unix_ms = stored->created_unix_ms;
    StepRecord& r = rec_.steps[t.record];
    setStepState(t.record, StepState::kDone);
    if (!event.worker_id.empty()) r.worker = event.worker_id;
    r.layer = stored->layer;
    r.diff_id = stored->diff_id;
    emitStep(t.record, event.attempt);
  }
  return Status::ok();
}

}  // namespace lf::coordinator
