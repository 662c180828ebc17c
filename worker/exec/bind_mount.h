#pragma once

// RUN --mount=type=bind: turning one RunMount of a step into what the sandbox mounts.
//
// The mount's `from` chain (a stage's or image's layers, or the build context as a one-layer
// chain) is pinned in the LayerStore for the step, and `source` is looked up inside it the way
// the sandbox will bind it: symlinks resolved as if the tree were "/" (openat2
// RESOLVE_IN_ROOT), so nothing outside the tree is ever reached. What the sandbox gets:
//   read-only, one layer  -> that layer's dir, bound read-only (nosuid, nodev);
//   read-only, several    -> a read-only overlay of the layers, mounted by the sandbox in its
//                            private mount namespace, then bound;
//   read-write (rw)       -> an overlay of the layers with a throwaway upper dir in the step's
//                            scratch dir: the command may write, the writes vanish with the step
//                            and never reach the layer store or the step's layer.
// The mount point is a directory, or an empty file when the source is a file; the sandbox makes
// it in its skeleton layer, so it is not part of the step's layer either (as BuildKit does).
//
// Error contract: a Status error is a problem of the worker (a blob missing from the blob store,
// an I/O or mount failure): the step is an ERROR and may be retried elsewhere. A problem of the
// step itself (the source does not exist in `from`, a symlink loop) is not an error: it comes
// back in BindMount::step_error, and the step FAILS with that message and is not retried.
//
// Thread-safety: prepareBindMount may run on several threads at once (different scratch dirs).

#include <filesystem>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "proto/layerfarm/v1/step.pb.h"
#include "worker/layer_store/layer_store.h"
#include "worker/sandbox/sandbox.h"

namespace lf::worker {

struct BindMount {
  sandbox::MountSpec mount;  // for sandbox::ProcessSpec::mounts
  LayerStore::Lease lease;   // pins the from layers: keep it until the sandbox has exited
  std::string step_error;    // non-empty: the step's own fault; `mount` is then unusable
};

// `m` is a validated TYPE_BIND mount. `scratch` names a directory that does not exist yet, inside
// the step's scratch dir (a local filesystem; the caller removes it after the step): it is created
// here and holds this mount's overlay upper, work and probe dirs.
// The lower dirs of an overlay, bottom first, each layer once at its topmost place: overlayfs
// refuses a directory given twice (ELOOP), and a chain may repeat a layer (a step that changed
// nothing twice); the lower copies are shadowed by the top one anyway.
std::vector<std::filesystem::path> uniqueLowerDirs(
    const std::vector<std::filesystem::path>& bottom_first);

Result<BindMount> prepareBindMount(const layerfarm::v1::RunMount& m, LayerStore& layers,
                                   const std::filesystem::path& scratch);

}  // namespace lf::worker
