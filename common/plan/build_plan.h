#pragma once

// The build plan: a parsed Dockerfile plus its context, turned into stages and steps, each step
// with the image config in effect after it and its cache key (../shared/ARCHITECTURE.md, "Cache
// keys"). Pure computation shared by the coordinator and the CLI: no I/O except what the caller
// passed in (the context snapshot), no registry: base images are resolved by the caller and given
// as digests. Thread-compatible; makePlan() may be called concurrently on different inputs.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/digest/digest.h"
#include "common/dockerfile/ast.h"
#include "common/dockerfile/commands.h"

namespace lf::context {
class ContextSnapshot;
}

namespace lf::plan {

struct Platform {
  std::string os = "linux";
  std::string architecture = "amd64";
  std::string variant;

  std::string toString() const;  // "linux/arm64/v8"
  static Result<Platform> parse(std::string_view text);
  friend bool operator==(const Platform&, const Platform&) = default;
};

struct Healthcheck {
  std::vector<std::string> test;  // ["NONE"], ["CMD", ...] or ["CMD-SHELL", "cmd"]
  int64_t interval_ns = 0;
  int64_t timeout_ns = 0;
  int64_t start_period_ns = 0;
  int64_t start_interval_ns = 0;
  int retries = 0;
  friend bool operator==(const Healthcheck&, const Healthcheck&) = default;
};

// The runtime part of an image config, as the Dockerfile shapes it.
struct RuntimeConfig {
  std::vector<std::string> env;  // "KEY=value" in definition order; redefining keeps the slot
  std::string user;
  std::string workdir;
  std::vector<std::string> shell;  // empty means the default ["/bin/sh", "-c"]
  std::optional<std::vector<std::string>> entrypoint;
  std::optional<std::vector<std::string>> cmd;
  std::map<std::string, std::string> labels;
  std::set<std::string> exposed_ports;  // "80/tcp"
  std::set<std::string> volumes;
  std::optional<Healthcheck> healthcheck;
  std::string stop_signal;
  std::vector<std::string> onbuild;
  std::string author;         // MAINTAINER
  bool args_escaped = false;  // the config's ArgsEscaped: set by CMD, as BuildKit does

  // The value of an ENV variable, or nullopt.
  std::optional<std::string> getEnv(std::string_view key) const;
  void setEnv(const std::string& key, const std::string& value);
  std::vector<std::string> effectiveShell() const;
  friend bool operator==(const RuntimeConfig&, const RuntimeConfig&) = default;
};

// A base image as the caller resolved it (registry lookup happens outside the plan).
struct BaseImage {
  Digest manifest_digest;
  // The base's config, when known: its env, workdir, user, entrypoint... are inherited.
  std::optional<RuntimeConfig> config;
  // The base's layer count, when known (for history); not part of any key.
  int layer_count = 0;
};

enum class StepKind { kRun, kCopy, kAdd, kConfig };
std::string_view stepKindName(StepKind kind);

struct Step {
  int index = 0;  // 1-based within the stage, like "[build 3/5]"
  StepKind kind = StepKind::kConfig;
  bool produces_layer = false;
  std::string keyword;     // "RUN"
  std::string created_by;  // what `history` shows, after expansion: "RUN /bin/sh -c make"
  dockerfile::Position pos;
  // Set when the stage's base is resolved (a digest was supplied, scratch, or an earlier stage).
  std::optional<Digest> cache_key;
  // In effect after this step. Immutable and shared: steps that do not change the config (RUN,
  // COPY, ADD) point at the same snapshot as the step before them.
  std::shared_ptr<const RuntimeConfig> config;
  std::vector<int> uses_stages;          // COPY --from / RUN --mount from= stage indexes
  std::vector<std::string> uses_images;  // COPY --from=<image> references
  const dockerfile::Instruction* instruction = nullptr;  // into the Dockerfile or BuildPlan
  dockerfile::Command command;  // decoded, with build-time expansion applied
  // RUN only: the environment the command runs with: the config's env, then the ARGs in scope
  // that ENV does not override, then proxy build args (which, as in Docker, are not keyed).
  std::vector<std::string> run_env;
  bool from_onbuild = false;  // a trigger inherited from the base image's ONBUILD
};

struct Stage {
  int index = 0;
  std::string name;      // lower-cased `AS name`, or empty
  std::string base_ref;  // after expansion: "alpine:3.20", "scratch", or a stage name
  int base_stage = -1;   // index of the stage it builds on, or -1
  Platform platform;
  dockerfile::Position pos;
  std::optional<Digest> base_key;  // key of the FROM itself
  RuntimeConfig base_config;       // the config right after FROM (inherited, plus default PATH)
  std::vector<Step> steps;
  std::set<int> depends_on;  // stage indexes
  bool needed = true;        // false when the target does not reach it

  // Key of the stage's last step (its filesystem and config), if resolved.
  std::optional<Digest> finalKey() const;
  const RuntimeConfig& finalConfig() const;
  std::string displayName() const;  // name, or the index as a string
};

struct PlanInput {
  const dockerfile::Dockerfile* dockerfile = nullptr;
  // The build context after .dockerignore, or null when no COPY/ADD reads it.
  const context::ContextSnapshot* context = nullptr;
  std::map<std::string, std::string> build_args;
  std::string target;  // stage name or index; empty: the last stage
  Platform target_platform;
  Platform build_platform;
  // Keyed by the reference as written in FROM after expansion ("alpine:3.20"), or normalised.
  std::map<std::string, BaseImage> bases;
};

struct BuildPlan {
  std::vector<Stage> stages;
  int target_stage = -1;
  std::vector<std::string> unused_build_args;  // --build-arg names no ARG consumed
  std::vector<std::string> unresolved_images;  // images that had no digest in PlanInput::bases
  std::vector<std::string> warnings;           // things a user should know, e.g. ADD of a URL
  // ONBUILD triggers parsed while planning; Step::instruction may point here.
  std::vector<std::unique_ptr<dockerfile::Dockerfile>> trigger_sources;
  // Total steps in needed stages, and how many of them produce layers.
  int step_count = 0;
  int layer_step_count = 0;
};

// Errors name the Dockerfile position: "Dockerfile:7:1: COPY --from=bulid: no stage or image ...".
Result<BuildPlan> makePlan(const PlanInput& input);

}  // namespace lf::plan
