#pragma once

// Turning a planned layer step (RUN, COPY, ADD) into the StepSpec a worker runs
// (proto/layerfarm/v1/step.proto), given the layers it starts from.
//
// What the coordinator resolves here so the worker never has to: the parent chain as blob
// descriptors with diff IDs; the process config from the step's config (env = Step::run_env for
// RUN, user, workdir, shell); RUN --mount targets made absolute against WORKDIR; COPY/ADD
// sources from the context blob or from an earlier stage's layer chain (COPY --from=stage);
// `--from=<image>` chains from a resolved image; SOURCE_DATE_EPOCH; compression.
//
// Pure function over its inputs; thread-safe. Errors: kInvalidArgument naming the step's
// Dockerfile position for what the worker could not run (RUN --mount=type=secret / ssh, ADD of a
// URL, COPY --from an image not given).

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/plan/build_plan.h"
#include "coordinator/assembly/image_assembly.h"
#include "proto/layerfarm/v1/step.pb.h"

namespace lf::coordinator {

// A filesystem as a chain of layers, bottom first (a stage's base layers plus its produced
// non-empty layers so far).
using LayerChainInfo = std::vector<BuiltLayer>;

struct StepSpecInput {
  const plan::Stage* stage = nullptr;
  const plan::Step* step = nullptr;  // produces_layer must be true
  LayerChainInfo parent;             // the filesystem before the step
  // The uploaded context as a layer ref: its manifest (media type
  // context::kContextManifestMediaType, digest = diff ID = the manifest id), which workers
  // materialize from the file blobs; needed for COPY/ADD from the context and
  // RUN --mount=type=bind without from.
  std::optional<BuiltLayer> context;
  // Final filesystems of earlier stages, by stage index (COPY --from=stage, RUN --mount from=).
  std::map<int, LayerChainInfo> stage_chains;
  // Filesystems of images named by COPY --from=<image>, by the reference as written.
  std::map<std::string, LayerChainInfo> image_chains;
  std::optional<int64_t> source_date_epoch;
  layerfarm::v1::Compression compression = layerfarm::v1::COMPRESSION_GZIP;
};

Result<layerfarm::v1::StepSpec> makeStepSpec(const StepSpecInput& input);

// The worker's LayerChain for a chain.
layerfarm::v1::LayerChain toLayerChain(const LayerChainInfo& chain);

}  // namespace lf::coordinator
