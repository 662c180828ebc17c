// BuildDriver, part 1: the build's life cycle, reading the context, resolving bases, planning,
// the cache lookups, and publishing the record and events.

#include "coordinator/builds/build_driver.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <utility>

#include "common/dockerfile/parser.h"
#include "coordinator/builds/build_events.h"
#include "coordinator/builds/unix_time.h"

namespace lf::coordinator {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

InstructionKind instructionKindOf(plan::StepKind kind) {
  switch (kind) {
    case plan::StepKind::kRun:
      return InstructionKind::kRun;
    case plan::StepKind::kCopy:
      return InstructionKind::kCopy;
    case plan::StepKind::kAdd:
      return InstructionKind::kAdd;
    case plan::StepKind::kConfig:
      break;
  }
  return InstructionKind::kUnspecified;
}

// What the user sees for a step: the history text without BuildKit's marker.
std::string displayText(const plan::Step& step) {
  std::string text = step.created_by;
  constexpr std::string_view kMarker = " # buildkit";
  if (text.ends_with(kMarker)) text.resize(text.size() - kMarker.size());
  return text;
}

bool isScratch(const plan::Stage& stage) {
  return stage.base_stage < 0 && lower(stage.base_ref) == "scratch";
}

// SOURCE_DATE_EPOCH from the build args when it is a number, as BuildKit takes it.
std::optional<int64_t> sourceDateEpochArg(const std::map<std::string, std::string>& args) {
  auto it = args.find("SOURCE_DATE_EPOCH");
  if (it == args.end() || it->second.empty()) return std::nullopt;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), value);
  if (ec != std::errc() || end != it->second.data() + it->second.size() || value < 0) {
    return std::nullopt;
  }
  return value;
}

BuiltLayer builtLayerOf(const CacheEntry& entry) {
  BuiltLayer layer;
  layer.descriptor.media_type = entry.layer.media_type;
  layer.descriptor.digest = entry.layer.digest;
  layer.descriptor.size = entry.layer.size;
  layer.diff_id = entry.diff_id;
  layer.empty = entry.diff_id == emptyLayerDiffId();
  return layer;
}

}  // namespace

BuildDriver::BuildDriver(BuildManager& manager, BuildManager::Run& run) : m_(manager), run_(run) {
  std::lock_guard lock(run.mu);
  rec_ = run.record;
}

void BuildDriver::drive() {
  if (!m_.acquireSlot(run_)) {
    if (cancelRequested()) {
      endBuild(BuildState::kCancelled, "cancelled");
    } else {
      run_.log->close();  // the manager stops: the build stays queued for recover()
    }
    return;
  }
  Status status = run();
  m_.releaseSlot();
  if (status.isOk()) {
    // Finished (and pushed): a cancel or stop that came during the last step is too late.
    endBuild(BuildState::kSucceeded, "");
  } else if (stopRequested()) {
    // The record stays queued/running for recover() at the next start.
    run_.log->close();
  } else if (cancelRequested()) {
    endBuild(BuildState::kCancelled, "cancelled");
  } else {
    endBuild(BuildState::kFailed, status.message());
  }
}

Status BuildDriver::run() {
  rec_.state = BuildState::kRunning;
  if (rec_.started_unix_ms == 0) rec_.started_unix_ms = nowUnixMs();
  auto given_epoch = sourceDateEpochArg(rec_.request.build_args);
  source_date_epoch_given_ = given_epoch.has_value();
  source_date_epoch_ = given_epoch.value_or(rec_.started_unix_ms / 1000);
  publish();
  run_.log->append(buildEvent(rec_));
  if (m_.deps_.metrics) m_.deps_.metrics->buildStarted();
  counted_running_ = true;
  if (run_.resumed) message("resumed after a coordinator restart");
  LF_RETURN_IF_ERROR(prepare());
  if (cancelRequested() || stopRequested()) return cancelled("cancelled");
  LF_RETURN_IF_ERROR(lookupCache());
  if (cancelRequested() || stopRequested()) return cancelled("cancelled");
  LF_RETURN_IF_ERROR(runJobs());
  if (cancelRequested() || stopRequested()) return cancelled("cancelled");
  return finish();
}

Status BuildDriver::prepare() {
  const BuildRequest& req = rec_.request;
  const std::string dockerfile_path =
      req.dockerfile_path.empty() ? std::string("Dockerfile") : req.dockerfile_path;
  // The request names a manifest id or a legacy tar digest; builds read the manifest.
  LF_ASSIGN_OR_RETURN(context_manifest_, m_.context_store_.resolve(req.context_digest));
  LF_ASSIGN_OR_RETURN(auto info, m_.deps_.blobs.stat(context_manifest_));
  if (!info) {
    return notFound("context manifest " + context_manifest_.toString() + " is not in the store");
  }
  LF_ASSIGN_OR_RETURN(context_, m_.contexts_.get(m_.deps_.blobs, context_manifest_, dockerfile_path,
                                                 m_.options_.max_dockerfile_bytes));
  LF_ASSIGN_OR_RETURN(dockerfile_, dockerfile::parse(context_->dockerfile_text, dockerfile_path));
  // Keeps the context from being cleaned up while builds use it; losing this is harmless.
  m_.deps_.state.touchContext(req.context_digest, nowUnixMs()).ignore();
  if (req.platform.empty()) {
    platform_ = m_.options_.default_platform;
  } else {
    LF_ASSIGN_OR_RETURN(platform_, plan::Platform::parse(req.platform));
  }
  LF_RETURN_IF_ERROR(planBuild());
  LF_RETURN_IF_ERROR(makeSteps());
  run_.log->append(planEvent(rec_));
  for (const auto& warning : plan_.warnings) message("warning: " + warning);
  for (const auto& arg : plan_.unused_build_args) {
    message("warning: build arg " + arg + " was not consumed by any ARG");
  }
  return Status::ok();
}

Status BuildDriver::planBuild() {
  plan::PlanInput input;
  input.dockerfile = &dockerfile_;
  input.context = &context_->snapshot;
  input.build_args = rec_.request.build_args;
  input.target = rec_.request.target;
  input.target_platform = platform_;
  input.build_platform = platform_;
  // The first pass names the images to resolve; with their configs known, ONBUILD triggers may
  // name more (COPY --from=<image>), hence a few passes.
  for (int pass = 0; pass < 4; ++pass) {
    LF_ASSIGN_OR_RETURN(plan_, plan::makePlan(input));
    if (plan_.unresolved_images.empty()) return Status::ok();
    LF_RETURN_IF_ERROR(resolveImages(plan_.unresolved_images, input));
  }
  return invalidArgument("could not resolve the images " + plan_.unresolved_images.front() +
                         "...: the plan keeps naming new ones");
}

Status BuildDriver::resolveImages(const std::vector<std::string>& refs, plan::PlanInput& input) {
  for (const auto& ref : refs) {
    if (bases_.contains(ref)) continue;
    if (m_.deps_.resolver == nullptr) {
      return failedPrecondition("FROM " + ref +
                                ": this coordinator has no registry to resolve images from");
    }
    plan::Platform platform = platform_;
    for (const auto& stage : plan_.stages) {
      if (stage.base_stage < 0 && stage.base_ref == ref) platform = stage.platform;
    }
    message("resolving " + ref);
    LF_ASSIGN_OR_RETURN(ResolvedBase base, m_.deps_.resolver->resolve(ref, platform));
    input.bases[ref] = base.plan_base;
    bases_.emplace(ref, std::move(base));
  }
  return Status::ok();
}

Status BuildDriver::makeSteps() {
  rec_.steps.clear();
  steps_.clear();
  stages_.assign(plan_.stages.size(), StageTrack{});
  for (const auto& stage : plan_.stages) {
    if (!stage.needed) continue;
    StageTrack& track = stages_[stage.index];
    track.needed = true;
    StepRecord from;
    from.index = static_cast<uint32_t>(rec_.steps.size());
    from.stage = stage.displayName();
    from.key = stage.base_key.value_or(Digest());
    from.state = StepState::kCached;
    from.cached = true;
    if (stage.base_stage >= 0 || isScratch(stage)) {
      from.instruction = "FROM " + stage.base_ref;
    } else {
      auto it = bases_.find(stage.base_ref);
      if (it == bases_.end()) return internalError("FROM " + stage.base_ref + ": not resolved");
      track.base_image = it->second.image;
      track.base_repository = it->second.repository;
      from.instruction = "FROM " + stage.base_ref;
      if (stage.base_ref.find('@') == std::string::npos) {
        from.instruction += "@" + it->second.plan_base.manifest_digest.toString();
      }
    }
    track.from_record = static_cast<int>(from.index);
    rec_.steps.push_back(std::move(from));
    for (size_t pos = 0; pos < stage.steps.size(); ++pos) {
      const plan::Step& step = stage.steps[pos];
      if (!step.cache_key) {
        return internalError(stage.displayName() + " step " + std::to_string(step.index) +
                             ": no cache key after resolution");
      }
      StepRecord r;
      r.index = static_cast<uint32_t>(rec_.steps.size());
      r.stage = stage.displayName();
      r.key = *step.cache_key;
      r.instruction = displayText(step);
      r.kind = instructionKindOf(step.kind);
      StepTrack t;
      t.stage = stage.index;
      t.pos = static_cast<int>(pos);
      t.record = static_cast<int>(r.index);
      if (!step.produces_layer) {
        t.known = true;
        r.state = StepState::kCached;
        r.cached = true;
      }
      track.steps.push_back(static_cast<int>(steps_.size()));
      steps_.push_back(std::move(t));
      rec_.steps.push_back(std::move(r));
    }
  }
  return Status::ok();
}

Status BuildDriver::lookupCache() {
  std::vector<int> layer_steps;
  std::vector<Digest> keys;
  for (size_t i = 0; i < steps_.size(); ++i) {
    if (steps_[i].known) continue;
    layer_steps.push_back(static_cast<int>(i));
    keys.push_back(rec_.steps[steps_[i].record].key);
  }
  std::vector<Digest> hits;
  if (!rec_.request.no_cache && !keys.empty()) {
    LF_ASSIGN_OR_RETURN(auto found, m_.deps_.state.lookupMany(keys));
    for (size_t i = 0; i < layer_steps.size(); ++i) {
      StepTrack& t = steps_[layer_steps[i]];
      StepRecord& r = rec_.steps[t.record];
      const bool hit = found[i].has_value();
      m_.lookups_.fetch_add(1);
      if (hit) m_.lookup_hits_.fetch_add(1);
      if (m_.deps_.metrics) m_.deps_.metrics->cacheLookup(instructionKindName(r.kind), hit);
      if (!hit) continue;
      t.known = true;
      t.layer = builtLayerOf(*found[i]);
      t.layer_created_unix_ms = found[i]->created_unix_ms;
      r.state = StepState::kCached;
      r.cached = true;
      r.layer = found[i]->layer;
      r.diff_id = found[i]->diff_id;
      hits.push_back(keys[i]);
    }
  }
  if (!hits.empty()) {
    // Hit counts are statistics: a failure to count one must not fail the build.
    Status s = m_.deps_.state.recordHits(hits, nowUnixMs());
    if (!s.isOk()) spdlog::warn("build={} recording cache hits: {}", rec_.id, s.message());
  }
  for (const auto& step : rec_.steps) {
    if (step.state == StepState::kCached) emitStep(static_cast<int>(step.index));
  }
  publish();
  return Status::ok();
}

void BuildDriver::setStepState(int record, StepState state) {
  StepRecord& r = rec_.steps[record];
  r.state = state;
  const int64_t now = nowUnixMs();
  switch (state) {
    case StepState::kQueued:
      r.queued_unix_ms = now;
      r.started_unix_ms = 0;
      r.worker.clear();
      break;
    case StepState::kRunning:
      r.started_unix_ms = now;
      break;
    case StepState::kDone:
    case StepState::kFailed:
    case StepState::kCancelled:
      if (r.started_unix_ms == 0) r.started_unix_ms = now;
      r.finished_unix_ms = now;
      break;
    case StepState::kPending:
    case StepState::kCached:
      break;
  }
}

void BuildDriver::emitStep(int record, int attempt) {
  run_.log->append(stepEvent(rec_.steps[record], attempt));
}

void BuildDriver::message(std::string_view text) { run_.log->append(messageEvent(text)); }

void BuildDriver::publish(bool final) {
  // Log lines and requeues of an unchanged record are frequent: store only changes.
  if (!final && published_ && rec_ == *published_) return;
  published_ = rec_;
  {
    std::lock_guard lock(run_.mu);
    run_.record = rec_;
    if (final) run_.finished = true;
  }
  run_.changed.notify_all();
  Status s = m_.deps_.state.putBuild(rec_);
  // The in-memory record stays right; the stored one catches up at the next change.
  if (!s.isOk()) spdlog::error("build={} storing the build record: {}", rec_.id, s.message());
}

bool BuildDriver::cancelRequested() const { return run_.cancel_requested.load(); }
bool BuildDriver::stopRequested() const { return run_.stop_requested.load(); }

}  // namespace lf::coordinator
