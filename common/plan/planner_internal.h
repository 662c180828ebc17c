#pragma once

// Pieces of makePlan() shared between build_plan.cpp (stages, ARG scoping, image config) and
// step_keys.cpp (cache keys and history text of layer steps). Not a public API.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/plan/build_plan.h"

namespace lf::plan::internal {

// ARGs declared in the current scope, in declaration order; a declaration without a value
// (ARG name, no default, no --build-arg) is present with nullopt.
using ArgScope = std::vector<std::pair<std::string, std::optional<std::string>>>;

// What a layer step's key and history depend on besides the command itself.
struct StepEnv {
  const PlanInput* input = nullptr;
  const std::vector<Stage>* stages = nullptr;             // stages planned so far (earlier ones)
  const std::vector<std::string>* stage_names = nullptr;  // every stage's name, lower-cased
  const RuntimeConfig* config = nullptr;                  // in effect before the step
  const ArgScope* args = nullptr;
  Platform platform;
  std::string file_name;
  // Names of the --build-arg values that are proxies (passed to RUN, never keyed).
  std::map<std::string, std::string> proxy_args;
};

// The ARGs in scope that have a value and are not shadowed by an ENV of the same name, sorted:
// what Docker passes to RUN and writes as "|N k=v" into its history.
std::map<std::string, std::string> effectiveArgs(const ArgScope& args, const RuntimeConfig& config);

// Keys and history text for RUN, COPY and ADD. `parent` is the previous step's key; the result's
// cache_key stays empty when something it depends on is unresolved (a base image without a
// digest). Fills step->cache_key, step->created_by, step->uses_stages, step->uses_images and,
// for RUN, step->run_env. Errors name the Dockerfile position.
Status keyRunStep(const dockerfile::RunCommand& run, const std::optional<Digest>& parent,
                  const StepEnv& env, Step* step, BuildPlan* plan);
Status keyCopyStep(const dockerfile::CopyCommand& copy, const std::optional<Digest>& parent,
                   const StepEnv& env, Step* step, BuildPlan* plan);

// Resolves a stage reference (`--from=build`, `--from=0`) among the stages planned so far:
// the stage index, or -1 when it names no stage (then it is an image reference).
// A reference to the current or a later stage is an error.
Result<int> findStageRef(std::string_view ref, const std::vector<Stage>& stages,
                         const std::vector<std::string>& all_stage_names, int current_stage,
                         const std::string& where);

std::string quoteJsonArray(const std::vector<std::string>& items);
// How BuildKit's Go code prints a []string into history text: fmt's %q gives
// ["/bin/sh" "-c" "echo \"hi\""] (CMD, ENTRYPOINT), %v gives [/bin/bash -c] (SHELL, VOLUME).
std::string goQuotedList(const std::vector<std::string>& items);
std::string goPlainList(const std::vector<std::string>& items);
std::string lower(std::string_view s);

}  // namespace lf::plan::internal
