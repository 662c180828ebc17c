#pragma once

// Reading and checking the job message (proto/layerfarm/v1/step.proto) a worker runs.
//
// parseStepSpecJson() takes protobuf's canonical JSON form (what `layerfarm-worker exec --spec`
// reads); validateStepSpec() checks everything the executors rely on before any work starts, so
// a bad spec fails fast with an error naming the field ("copy.sources[1]: empty path"), never
// half-way through a step. stepResultToJson() prints a result for operators and tests.

#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "proto/layerfarm/v1/step.pb.h"
#include "worker/layer_store/layer_store.h"

namespace lf::worker {

// Parses and validates. `origin` names the input in errors (a file name).
Result<layerfarm::v1::StepSpec> parseStepSpecJson(std::string_view json, std::string_view origin);
Status validateStepSpec(const layerfarm::v1::StepSpec& spec);

std::string stepResultToJson(const layerfarm::v1::StepResult& result);
std::string stepSpecToJson(const layerfarm::v1::StepSpec& spec);

// A validated LayerRef / chain as the layer store's type. `field` names it in errors.
Result<LayerRef> toLayerRef(const layerfarm::v1::LayerRef& ref, const std::string& field);
Result<std::vector<LayerRef>> toLayerChain(const layerfarm::v1::LayerChain& chain,
                                           const std::string& field);
layerfarm::v1::LayerRef fromLayerRef(const LayerRef& ref);

}  // namespace lf::worker
