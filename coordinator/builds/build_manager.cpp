#include "coordinator/builds/build_manager.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <utility>

#include "common/registry/image_transfer.h"
#include "common/registry/reference.h"
#include "coordinator/assembly/image_assembly.h"
#include "coordinator/builds/build_driver.h"
#include "coordinator/builds/build_events.h"
#include "coordinator/builds/context_file.h"
#include "coordinator/builds/unix_time.h"

namespace lf::coordinator {
namespace {

// Whether `caller` may push to `tag` (already parsed): the repository's first path component,
// after the push rules (a one-component name lands in library/), must be one of theirs.
Status checkPushAllowed(const Caller& caller, const registry::Reference& ref, size_t i,
                        const std::string& tag) {
  const registry::Repository repo = registry::pushRepository(ref, true);
  const std::string ns = repo.name.substr(0, repo.name.find('/'));
  const std::string where = fmt::format("tags[{}]: \"{}\"", i, tag);
  if (ns == "library") {
    if (caller.may_push_library) return Status::ok();
    return permissionDenied(where + ": only administrators may push to library/");
  }
  if (caller.any_namespace) return Status::ok();
  if (std::find(caller.namespaces.begin(), caller.namespaces.end(), ns) !=
      caller.namespaces.end()) {
    return Status::ok();
  }
  return permissionDenied(where + ": tenant " + caller.tenant + " may not push to namespace " + ns +
                          "/");
}

bool safeBuildId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(),
                     [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
                              c == '.';
                     }) &&
         id.front() != '.';
}

}  // namespace

BuildManager::BuildManager(BuildManagerDeps deps, BuildManagerOptions options)
    : deps_(deps),
      options_(std::move(options)),
      context_store_(deps.state, deps.blobs, deps.metrics) {
  options_.max_concurrent_builds = std::max(1, options_.max_concurrent_builds);
  deps_.broker.setListener(this);
}

BuildManager::~BuildManager() { stop(); }

Result<RecoveryReport> BuildManager::recover() {
  LF_ASSIGN_OR_RETURN(RecoveryReport report,
                      deps_.state.recoverRunningBuilds(RecoveryAction::kResume, nowUnixMs()));
  for (const auto& build : report.builds) {
    Status s = startRun(build, /*resumed=*/true);
    if (!s.isOk()) {
      spdlog::error("build={} could not be resumed: {}", build.id, s.message());
      // Nothing else will finish it: record why, so it does not stay running for ever.
      auto failed = deps_.state.failBuild(build.id, "could not resume: " + s.message(), nowUnixMs());
      if (!failed.isOk()) spdlog::error("build={} {}", build.id, failed.status().message());
    }
  }
  return report;
}

void BuildManager::stop() {
  std::vector<std::shared_ptr<Run>> runs;
  std::map<std::string, std::thread> threads;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (const auto& [id, run] : runs_) runs.push_back(run);
  }
  for (const auto& run : runs) {
    {
      std::lock_guard lock(run->mu);
      run->stop_requested = true;
    }
    run->wake.notify_all();
  }
  {
    std::lock_guard lock(mu_);
    slots_changed_.notify_all();
  }
  {
    std::lock_guard lock(mu_);
    threads.swap(threads_);
    done_threads_.clear();
  }
  for (auto& [id, thread] : threads) {
    if (thread.joinable()) thread.join();
  }
}

blob::BlobStore& BuildManager::blobs() { return deps_.blobs; }

Result<bool> BuildManager::hasContext(const Digest& digest) { return context_store_.ready(digest); }

Status BuildManager::addContext(const Digest& digest, uint64_t size) {
  return context_store_.addTar(digest, size);
}

Result<ContextUploadStatus> BuildManager::addContextManifest(std::string_view manifest_bytes) {
  return context_store_.addManifest(manifest_bytes);
}

Result<std::map<Digest, uint64_t>> BuildManager::contextManifestFiles(const Digest& id) {
  return context_store_.manifestFiles(id);
}

Result<ContextUploadStatus> BuildManager::contextFilesAdded(const Digest& id) {
  return context_store_.filesAdded(id);
}

Status BuildManager::validate(const Caller& caller, const BuildRequest& request) const {
  if (request.context_digest.empty()) return invalidArgument("context: required");
  // A manifest id or a legacy tar digest; either must name a READY context.
  LF_RETURN_IF_ERROR(context_store_.resolve(request.context_digest).status());
  LF_RETURN_IF_ERROR(normalizeContextPath(request.dockerfile_path).status());
  for (size_t i = 0; i < request.tags.size(); ++i) {
    const std::string& tag = request.tags[i];
    auto ref = registry::Reference::parse(tag);
    if (!ref.isOk()) {
      return invalidArgument(fmt::format("tags[{}]: \"{}\": {}", i, tag, ref.status().message()));
    }
    if (ref->digest) {
      return invalidArgument(fmt::format("tags[{}]: \"{}\": a tag cannot name a digest", i, tag));
    }
    if (request.push) LF_RETURN_IF_ERROR(checkPushAllowed(caller, *ref, i, tag));
  }
  if (request.push && request.tags.empty()) {
    return invalidArgument("push: needs at least one tag");
  }
  if (request.push && deps_.registry == nullptr) {
    return failedPrecondition("push: this coordinator has no registry configured");
  }
  if (!request.output.empty()) {
    std::string spec = request.output;
    if (spec.find("dest=") == std::string::npos) spec += ",dest=unused.tar";
    auto parsed = parseExportSpec(spec, request.tags);
    if (!parsed.isOk()) return invalidArgument("output: " + parsed.status().message());
  }
  if (!request.platform.empty()) {
    auto platform = plan::Platform::parse(request.platform);
    if (!platform.isOk()) return invalidArgument("platform: " + platform.status().message());
  }
  return Status::ok();
}

std::string BuildManager::newBuildId() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  const int64_t ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
  std::lock_guard lock(mu_);
  return fmt::format("b-{}-{:03d}-{}", stamp, ms, ++id_counter_);
}

Result<BuildRecord> BuildManager::submit(const Caller& caller, BuildRequest request) {
  reapThreads();
  LF_RETURN_IF_ERROR(ready());
  if (request.dockerfile_path.empty()) request.dockerfile_path = "Dockerfile";
  LF_RETURN_IF_ERROR(validate(caller, request));
  BuildRecord record;
  // The time and a per-process counter make ids unique; a restart within the same millisecond
  // could repeat one, so the store is asked.
  for (int attempt = 0;; ++attempt) {
    record.id = newBuildId();
    LF_ASSIGN_OR_RETURN(auto existing, deps_.state.getBuild(record.id));
    if (!existing) break;
    if (attempt > 1000) return internalError("could not find an unused build id");
  }
  record.tenant = caller.tenant;
  record.state = BuildState::kQueued;
  record.request = std::move(request);
  record.created_unix_ms = nowUnixMs();
  LF_RETURN_IF_ERROR(deps_.state.putBuild(record));
  Status started = startRun(record, /*resumed=*/false);
  if (!started.isOk()) {
    auto failed = deps_.state.failBuild(record.id, started.message(), nowUnixMs());
    if (!failed.isOk()) spdlog::error("build={} {}", record.id, failed.status().message());
    return started;
  }
  spdlog::info("build={} tenant={} submitted", record.id, record.tenant);
  return record;
}

Status BuildManager::startRun(BuildRecord record, bool resumed) {
  auto run = std::make_shared<Run>();
  run->id = record.id;
  run->resumed = resumed;
  run->log = std::make_shared<BuildEventLog>(options_.max_log_lines);
  run->record = std::move(record);
  if (!resumed) run->log->append(buildEvent(run->record));  // queued
  std::lock_guard lock(mu_);
  if (stopping_) return unavailable("the coordinator is shutting down");
  runs_[run->id] = run;
  threads_[run->id] = std::thread(&BuildManager::driverMain, this, run);
  return Status::ok();
}

void BuildManager::driverMain(std::shared_ptr<Run> run) {
  BuildDriver(*this, *run).drive();
  retire(run);
}

bool BuildManager::acquireSlot(Run& run) {
  std::unique_lock lock(mu_);
  slots_changed_.wait(lock, [&] {
    return stopping_ || run.cancel_requested.load() ||
           running_slots_ < options_.max_concurrent_builds;
  });
  if (stopping_ || run.cancel_requested.load()) return false;
  ++running_slots_;
  return true;
}

void BuildManager::releaseSlot() {
  {
    std::lock_guard lock(mu_);
    --running_slots_;
  }
  slots_changed_.notify_all();
}

void BuildManager::retire(const std::shared_ptr<Run>& run) {
  bool finished = false;
  {
    std::lock_guard lock(run->mu);
    finished = run->finished;
  }
  std::lock_guard lock(mu_);
  runs_.erase(run->id);
  if (finished && options_.keep_finished_logs > 0) {
    finished_logs_.emplace_back(run->id, run->log);
    while (finished_logs_.size() > options_.keep_finished_logs) finished_logs_.pop_front();
  }
  if (threads_.contains(run->id)) done_threads_.push_back(run->id);
}

void BuildManager::reapThreads() {
  std::vector<std::thread> done;
  {
    std::lock_guard lock(mu_);
    for (const auto& id : done_threads_) {
      auto it = threads_.find(id);
      if (it == threads_.end()) continue;
      done.push_back(std::move(it->second));
      threads_.erase(it);
    }
    done_threads_.clear();
  }
  // These drivers have returned from retire(): joining takes no time.
  for (auto& thread : done) thread.join();
}

std::shared_ptr<BuildManager::Run> BuildManager::findRun(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = runs_.find(id);
  return it == runs_.end() ? nullptr : it->second;
}

std::filesystem::path BuildManager::exportFile(const std::string& id) const {
  return options_.data_dir / "exports" / (id + ".tar");
}

size_t BuildManager::activeBuilds() const {
  std::lock_guard lock(mu_);
  return runs_.size();
}

Result<std::optional<BuildRecord>> BuildManager::getBuild(const std::string& id) {
  if (auto run = findRun(id)) {
    std::lock_guard lock(run->mu);
    return std::optional<BuildRecord>(run->record);
  }
  return deps_.state.getBuild(id);
}

Result<std::vector<BuildRecord>> BuildManager::listBuilds(const ListBuildsOptions& options) {
  return deps_.state.listBuilds(options);
}

Result<BuildRecord> BuildManager::cancel(const std::string& id) {
  auto run = findRun(id);
  if (!run) {
    LF_ASSIGN_OR_RETURN(auto record, deps_.state.getBuild(id));
    if (!record) return notFound("build " + id + " not found");
    if (isFinished(record->state)) {
      return failedPrecondition("build " + id + " already finished (" +
                                std::string(buildStateName(record->state)) + ")");
    }
    // Left queued/running by an earlier coordinator and not resumed: nothing runs it.
    BuildRecord cancelled = *record;
    const int64_t now = nowUnixMs();
    for (auto& step : cancelled.steps) {
      if (step.state == StepState::kPending || step.state == StepState::kQueued ||
          step.state == StepState::kRunning) {
        step.state = StepState::kCancelled;
        step.finished_unix_ms = now;
      }
    }
    cancelled.state = BuildState::kCancelled;
    cancelled.failure_reason = "cancelled";
    cancelled.finished_unix_ms = now;
    LF_RETURN_IF_ERROR(deps_.state.putBuild(cancelled));
    return cancelled;
  }
  {
    std::lock_guard lock(run->mu);
    if (run->finished) {
      return failedPrecondition("build " + id + " already finished (" +
                                std::string(buildStateName(run->record.state)) + ")");
    }
    run->cancel_requested = true;
  }
  run->wake.notify_all();
  {
    std::lock_guard lock(mu_);
    slots_changed_.notify_all();
  }
  // The driver ends the build at once unless it is in a blocking call (resolving, pushing);
  // answer with what it has then.
  std::unique_lock lock(run->mu);
  run->changed.wait_for(lock, std::chrono::seconds(5), [&] { return run->finished; });
  return run->record;
}

Result<std::shared_ptr<const BuildEventLog>> BuildManager::events(const std::string& id) {
  if (auto run = findRun(id)) return std::shared_ptr<const BuildEventLog>(run->log);
  {
    std::lock_guard lock(mu_);
    for (const auto& [log_id, log] : finished_logs_) {
      if (log_id == id) return std::shared_ptr<const BuildEventLog>(log);
    }
  }
  LF_ASSIGN_OR_RETURN(auto record, deps_.state.getBuild(id));
  if (!record) return notFound("build " + id + " not found");
  return std::shared_ptr<const BuildEventLog>(rebuildEventLog(*record));
}

Result<std::string> BuildManager::exportPath(const std::string& id) {
  if (!safeBuildId(id)) return notFound("build " + id + " not found");
  const std::filesystem::path path = exportFile(id);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return notFound("build " + id + " has no exported image");
  }
  return path.string();
}

Result<std::optional<ImageRecord>> BuildManager::image(const std::string& ref) {
  return deps_.state.getImage(ref);
}

Result<CacheSummary> BuildManager::cacheSummary() {
  CacheSummary summary;
  {
    std::lock_guard lock(stats_mu_);
    const auto now = std::chrono::steady_clock::now();
    if (!cached_stats_ || now - cached_stats_at_ >= options_.cache_stats_ttl) {
      LF_ASSIGN_OR_RETURN(CacheStats stats, deps_.state.cacheStats());
      cached_stats_ = stats;
      cached_stats_at_ = now;
    }
    summary.stored = *cached_stats_;
  }
  summary.lookups = lookups_.load();
  summary.lookup_hits = lookup_hits_.load();
  return summary;
}

std::vector<WorkerView> BuildManager::workers() { return deps_.broker.workers(); }

Status BuildManager::ready() {
  std::lock_guard lock(mu_);
  if (stopping_) return unavailable("the coordinator is shutting down");
  return Status::ok();
}

template <typename Event>
void BuildManager::deliver(const std::vector<std::string>& build_ids, const Event& event) {
  for (const auto& id : build_ids) {
    auto run = findRun(id);
    if (!run) continue;
    {
      std::lock_guard lock(run->mu);
      run->inbox.emplace_back(event);
    }
    run->wake.notify_all();
  }
}

void BuildManager::onJobAssigned(const JobAssigned& assigned) {
  deliver(assigned.build_ids, assigned);
}

void BuildManager::onJobLog(const JobLogBatch& batch) { deliver(batch.build_ids, batch); }

void BuildManager::onJobEvent(const JobEvent& event) { deliver(event.build_ids, event); }

}  // namespace lf::coordinator
