#pragma once

// BuildManager: runs submitted builds end to end (ARCHITECTURE.md "The life of a build"):
// validate and store the request, read the Dockerfile and context from the context blob, resolve
// the FROM images, plan, answer steps from the layer cache, submit the misses to the JobBroker as
// their parents become known, record what the jobs produce in the cache, assemble the image,
// store its history, push and/or export it, and report every state change in the build's
// BuildEventLog and BuildRecord (StateStore).
//
// Threads: each build in flight has one driver thread (at most max_concurrent_builds of them run
// a build at once; the others wait queued). Only the driver changes its build. The JobListener
// callbacks come from the broker's thread: they only queue the event to the build's driver and
// wake it. BuildService methods may be called from any thread.
//
// Ownership: the dependencies in BuildManagerDeps are not owned and must outlive the manager.
// The destructor stops (see stop()). Shutdown order: stop() the manager (no more calls into the
// broker), then stop the broker (no more listener calls), then destroy the manager.
//
// Errors: submit() answers with the codes docs/http-api.md maps to HTTP statuses. A build that
// fails (plan, resolution, a step, assembly, push, export) ends `failed` with the reason in
// failure_reason and in its final `build` event; it never throws or aborts the coordinator.
//
// Restart: recover() (called once, before accepting builds) resumes builds that were queued or
// running: the build is replanned, the steps that had finished are cache hits now, and the rest
// run again.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/layer/compression.h"
#include "common/plan/build_plan.h"
#include "common/registry/registry_client.h"
#include "coordinator/builds/base_resolver.h"
#include "coordinator/builds/build_event_log.h"
#include "coordinator/builds/build_service.h"
#include "coordinator/builds/context_cache.h"
#include "coordinator/builds/context_store.h"
#include "coordinator/jobs/job_broker.h"
#include "coordinator/metrics/coordinator_metrics.h"
#include "coordinator/state/state_store.h"

namespace lf::coordinator {

struct BuildManagerDeps {
  StateStore& state;
  blob::BlobStore& blobs;  // contexts, layers, configs, manifests
  // Resolves `FROM <image>`. May be null: then only FROM scratch / FROM <stage> builds work and
  // an image reference fails the build naming it.
  BaseResolver* resolver = nullptr;
  JobBroker& broker;
  registry::RegistryClient* registry = nullptr;  // for push; null: push requests fail the build
  CoordinatorMetrics* metrics = nullptr;         // optional
};

struct BuildManagerOptions {
  // Exports go to <data_dir>/exports/<build id>.tar (created when missing).
  std::filesystem::path data_dir;
  // Platform of builds that do not name one. Default: linux/amd64.
  plan::Platform default_platform;
  // Builds running (planning, waiting for jobs, assembling) at once; the others wait queued.
  // Values below 1 count as 1. Default: 8.
  int max_concurrent_builds = 8;
  // Layer compression the workers use for the layers they build. Default: none (BuildKit keeps
  // its snapshots uncompressed too): a rebuild does not pay for compressing a layer; pushing or
  // exporting compresses each layer once, with push_compression (coordinator/assembly/
  // layer_variants.h).
  layerfarm::v1::Compression compression = layerfarm::v1::COMPRESSION_NONE;
  // Compression of the layers pushed or exported (kGzip or kZstd). Default: gzip (what every
  // registry and runtime reads).
  layer::Compression push_compression = layer::Compression::kGzip;
  // Finished builds whose full event logs (with step output) stay in memory for late readers;
  // older ones are rebuilt from their record without the output. Default: 64.
  size_t keep_finished_logs = 64;
  // Log lines kept per build (BuildEventLog). Default: 200000.
  size_t max_log_lines = 200'000;
  // Largest Dockerfile read from a context. Default: 1 MiB.
  uint64_t max_dockerfile_bytes = 1u << 20;
  // How long cacheSummary() reuses StateStore::cacheStats() (a full scan). Default: 5 s.
  std::chrono::milliseconds cache_stats_ttl{5'000};
};

class BuildManager : public BuildService, public JobListener {
 public:
  // Registers itself as the broker's listener.
  BuildManager(BuildManagerDeps deps, BuildManagerOptions options);
  ~BuildManager() override;  // stop()
  BuildManager(const BuildManager&) = delete;
  BuildManager& operator=(const BuildManager&) = delete;

  // Once, after the StateStore opened and before submit(): resumes the builds that were queued or
  // running when the coordinator stopped (StateStore::recoverRunningBuilds with kResume) and
  // returns what recovery found.
  Result<RecoveryReport> recover();

  // Stops accepting builds (ready() answers kUnavailable), stops the drivers and joins them
  // (a driver in a blocking call, resolving or pushing, finishes that call first).
  // Builds in flight are left queued/running in the state store as they are, for recover() at
  // the next start; their jobs are not cancelled (a coordinator that stops loses its broker
  // anyway). Idempotent.
  void stop();

  // --- BuildService ---
  blob::BlobStore& blobs() override;
  Result<bool> hasContext(const Digest& digest) override;
  Status addContext(const Digest& digest, uint64_t size) override;
  Result<ContextUploadStatus> addContextManifest(std::string_view manifest_bytes) override;
  Result<std::map<Digest, uint64_t>> contextManifestFiles(const Digest& id) override;
  Result<ContextUploadStatus> contextFilesAdded(const Digest& id) override;
  Result<BuildRecord> submit(const Caller& caller, BuildRequest request) override;
  Result<std::optional<BuildRecord>> getBuild(const std::string& id) override;
  Result<std::vector<BuildRecord>> listBuilds(const ListBuildsOptions& options) override;
  Result<BuildRecord> cancel(const std::string& id) override;
  Result<std::shared_ptr<const BuildEventLog>> events(const std::string& id) override;
  Result<std::string> exportPath(const std::string& id) override;
  Result<std::optional<ImageRecord>> image(const std::string& ref) override;
  Result<CacheSummary> cacheSummary() override;
  std::vector<WorkerView> workers() override;
  Status ready() override;

  // --- JobListener (the broker's thread; queue and wake the driver) ---
  void onJobAssigned(const JobAssigned& assigned) override;
  void onJobLog(const JobLogBatch& batch) override;
  void onJobEvent(const JobEvent& event) override;

  // Builds whose drivers are still alive (for tests and status).
  size_t activeBuilds() const;

  // One build's run (defined in build_driver.h); public so the driver's free helpers can name it.
  struct Run;

 private:
  friend class BuildDriver;

  std::string newBuildId();
  Status validate(const Caller& caller, const BuildRequest& request) const;
  Status startRun(BuildRecord record, bool resumed);
  void driverMain(std::shared_ptr<Run> run);
  bool acquireSlot(Run& run);
  void releaseSlot();
  void retire(const std::shared_ptr<Run>& run);
  void reapThreads();
  template <typename Event>
  void deliver(const std::vector<std::string>& build_ids, const Event& event);
  std::shared_ptr<Run> findRun(const std::string& id) const;
  std::filesystem::path exportFile(const std::string& id) const;

  BuildManagerDeps deps_;
  BuildManagerOptions options_;

  mutable std::mutex mu_;
  std::condition_variable slots_changed_;
  bool stopping_ = false;
  int running_slots_ = 0;
  uint64_t id_counter_ = 0;
  std::map<std::string, std::shared_ptr<Run>> runs_;  // drivers alive
  std::map<std::string, std::thread> threads_;        // by build id, joined when done
  std::vector<std::string> done_threads_;             // drivers that returned, to join
  // Event logs of recently finished builds (oldest first), for late readers.
  std::deque<std::pair<std::string, std::shared_ptr<BuildEventLog>>> finished_logs_;
  ContextCache contexts_;  // Dockerfile + snapshot of recently built contexts
  ContextStore context_store_;  // uploaded contexts: records, manifests, files

  std::mutex stats_mu_;
  std::optional<CacheStats> cached_stats_;
  std::chrono::steady_clock::time_point cached_stats_at_;
  std::atomic<uint64_t> lookups_{0};
  std::atomic<uint64_t> lookup_hits_{0};
};

}  // namespace lf::coordinator
