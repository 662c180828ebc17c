#pragma once

// StepRunner: runs one build step (a StepSpec) from its parent layers to its result layer.
//
//   1. materialize: pin the parent chain in the LayerStore (fetching and unpacking what is
//      missing); for COPY/ADD also the source (the context blob, or the --from chain); for
//      RUN --mount=type=bind the mount's from chain (bind_mount.h);
//   2. run: RUN in the sandbox (worker/sandbox) inside a per-step cgroup (worker/cgroup) with the
//      spec's limits; COPY/ADD with copyIntoRoot (worker/copy) on the overlay-mounted root in a
//      child process with a private mount namespace, no process in the sandbox;
//   3. layer: the overlay upper dir becomes an OCI layer in one pass (whiteouts for deletions)
//      written to the blob store, then the upper dir is adopted by the LayerStore, so the next
//      step of the stage starts from it without unpacking.
//
// Scratch space for a step lives in <state_root>/steps/<step>-<random>/ and is removed when the
// step ends; after a crash, recoverAfterCrash (worker/recovery) removes what is left.
//
// Error contract: run() never fails as a call; every outcome is a StepResult (SUCCEEDED, FAILED
// with the exit status and last output lines, TIMED_OUT, LIMIT_EXCEEDED, CANCELLED, or ERROR for
// problems that are not the step's fault, e.g. a missing blob or a sandbox failure), with the
// error text naming the step and what went wrong. A spec no worker can run (it fails
// validateStepSpec: a bad field, an unsupported mount type) and a bind mount whose source is not
// in its from filesystem are FAILED, never ERROR, so the coordinator does not retry them.
//
// Thread-safety: run() may be called from several threads at once (one step each); the blob
// store and the layer store are thread-safe. Ownership: the stores outlive the runner.

#include <cstdint>
#include <filesystem>
#include <functional>

#include "common/blob/blob_store.h"
#include "proto/layerfarm/v1/step.pb.h"
#include "worker/cgroup/cgroup.h"
#include "worker/layer_store/layer_store.h"
#include "worker/sandbox/sandbox.h"

namespace lf::worker {

struct StepRunnerOptions {
  // Scratch dirs (steps/) and RUN --mount=type=cache dirs (cache/). Must be on the same
  // filesystem as the layer store's root (adoption renames the upper dir into it).
  std::filesystem::path state_root;
  // Whether RUN --network=host is allowed; refused otherwise (a step could reach the worker's
  // network and whatever it can reach).
  bool allow_host_network = false;
  // Limits for specs that leave them 0. 0 here = unlimited.
  int64_t default_timeout_ms = 2 * 60 * 60 * 1000;
  int64_t default_memory_bytes = 0;
  int64_t default_pids_max = 0;
  // Per-step cgroups (limits, kill-all, OOM detection). Off only where no cgroup is writable;
  // limits in the spec are then refused.
  bool use_cgroups = true;
  cgroup::CgroupConfig cgroups;
  // Compression threads for the layer; 0 = all cores.
  int compression_threads = 0;
};

class StepRunner {
 public:
  using LogCallback = std::function<void(const layerfarm::v1::StepLog&)>;

  StepRunner(StepRunnerOptions options, blob::BlobStore& blobs, LayerStore& layers);

  // Runs `spec` (validated here too). `log` gets the command's output line by line as it
  // happens, on the calling thread. `cancel` (optional) stops a running RUN.
  layerfarm::v1::StepResult run(const layerfarm::v1::StepSpec& spec, const LogCallback& log,
                                sandbox::Canceller* cancel = nullptr);

 private:
  StepRunnerOptions options_;
  blob::BlobStore& blobs_;
  LayerStore& layers_;
};

}  // namespace lf::worker
