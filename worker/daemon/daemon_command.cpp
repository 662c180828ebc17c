// `layerfarm-worker --config worker.yaml`: wires config, cgroups, recovery, stores, step runner
// and the daemon together. No Beast here.
#include <spdlog/spdlog.h>

#include <ostream>

#include "common/blob/directory_blob_store.h"
#include "worker/cgroup/cgroup.h"
#include "worker/daemon/worker_daemon.h"
#include "worker/exec/step_runner.h"
#include "worker/layer_store/layer_store.h"
#include "worker/recovery/recovery.h"

namespace lf::worker {
namespace {

namespace fs = std::filesystem;

// The cgroup config the steps will use: start-up moves the worker into a leaf on v2 (see
// prepareWorkerCgroups), and recovery empties the worker's parent of a previous run's steps.
Result<cgroup::CgroupConfig> prepareCgroups(const WorkerConfig& config) {
  cgroup::CgroupConfig cgroups;
  cgroups.parent = config.cgroup_parent;
  if (!config.use_cgroups) {
    return cgroups;
  }
  return prepareWorkerCgroups(cgroups);
}

int runDaemon(const WorkerConfig& config, std::ostream& err) {
  auto fail = [&](const Status& status) {
    err << "layerfarm-worker: " << status.message() << "\n";
    return 1;
  };
  auto cgroups = prepareCgroups(config);
  if (!cgroups.isOk()) {
    return fail(cgroups.status().withContext("cgroups"));
  }
  fs::path state = fs::absolute(config.state_dir);
  std::error_code ec;
  fs::create_directories(state, ec);
  auto recovered = recoverAfterCrash(state, *cgroups);
  if (!recovered.isOk()) {
    return fail(recovered.status().withContext("recovery of " + state.string()));
  }
  spdlog::info("worker recovered state={} mounts={} step_dirs={} cgroups={} processes={}",
               state.string(), recovered->mounts_unmounted, recovered->step_dirs_removed,
               recovered->cgroups_removed, recovered->processes_killed);
  blob::DirectoryBlobStoreOptions blob_options;
  blob_options.create = false;
  auto blobs = blob::DirectoryBlobStore::open(config.blob_dir, blob_options);
  if (!blobs.isOk()) {
    return fail(blobs.status().withContext("blob_store.directory " + config.blob_dir.string()));
  }
  LayerStoreOptions store_options;
  store_options.root = state / "layers";
  store_options.budget_bytes = config.layer_budget_bytes;
  auto layers = LayerStore::open(store_options, **blobs);
  if (!layers.isOk()) {
    return fail(layers.status().withContext("state_dir " + state.string()));
  }
  StepRunnerOptions runner_options;
  runner_options.state_root = state;
  runner_options.allow_host_network = config.allow_host_network;
  runner_options.default_timeout_ms = config.default_limits.timeout_ms;
  runner_options.default_memory_bytes = config.default_limits.memory_bytes;
  runner_options.default_pids_max = config.default_limits.pids_max;
  runner_options.use_cgroups = config.use_cgroups;
  runner_options.cgroups = *cgroups;
  StepRunner runner(runner_options, **blobs, **layers);
  StepRunnerExecutor executor(runner, **layers);

  WorkerDaemonOptions options;
  options.config = config;
  options.handle_signals = true;
  WorkerDaemon daemon(options, executor);
  spdlog::info("worker starts worker={} coordinator={} slots={}", config.worker_id,
               config.coordinator_url, config.slots);
  Status status = daemon.run();
  if (!status.isOk()) {
    return fail(status);
  }
  spdlog::info("worker drained and exits worker={}", config.worker_id);
  return 0;
}

}  // namespace

int runWorkerDaemonCommand(const std::string& config_path, std::ostream& err) {
  auto config = loadWorkerConfig(config_path);
  if (!config.isOk()) {
    err << "layerfarm-worker: " << config.status().message() << "\n";
    return 2;
  }
  return runDaemon(*config, err);
}

}  // namespace lf::worker
