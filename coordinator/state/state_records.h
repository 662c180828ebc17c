#pragma once

// The records the coordinator keeps in its RocksDB state (coordinator/state/state_store.h):
// layer-cache entries, output-addressed aliases, builds with their steps, jobs, images with their
// history, and uploaded build contexts.
//
// Plain values. Their stored form is the matching protobuf message in
// proto/layerfarm/v1/state.proto (fields are only ever added, so a newer coordinator reads what
// an older one wrote); record_codec.h converts. Times are Unix milliseconds (0 = not yet), set by
// the caller, so the store needs no clock and tests are deterministic.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/digest/digest.h"

namespace lf::coordinator {

enum class InstructionKind { kUnspecified, kRun, kCopy, kAdd };
std::string_view instructionKindName(InstructionKind kind);  // "RUN", "COPY", "ADD", "?"

// The blob of a layer: the compressed tar in the blob store.
struct LayerDescriptor {
  std::string media_type;
  Digest digest;
  uint64_t size = 0;

  friend bool operator==(const LayerDescriptor&, const LayerDescriptor&) = default;
};

// One layer-cache entry: what a step with this cache key produced.
struct CacheEntry {
  Digest key;  // the step's cache key (common/plan/build_plan.h Step::cache_key)
  LayerDescriptor layer;
  Digest diff_id;  // SHA-256 of the uncompressed tar, for rootfs.diff_ids
  InstructionKind kind = InstructionKind::kUnspecified;
  std::string created_by;        // the instruction, as image history shows it
  std::string created_by_build;  // the build whose job produced it
  int64_t created_unix_ms = 0;
  int64_t last_hit_unix_ms = 0;  // 0 = never hit
  uint64_t hit_count = 0;

  friend bool operator==(const CacheEntry&, const CacheEntry&) = default;
};

// Output-addressed alias: a step whose output is byte-identical to another's is found by
// (parent chain ID, instruction digest) as well as by its own key (ARCHITECTURE.md "Cache keys").
struct Alias {
  Digest parent_chain_id;
  Digest instruction_digest;
  Digest cache_key;  // the CacheEntry it points at
  int64_t created_unix_ms = 0;

  friend bool operator==(const Alias&, const Alias&) = default;
};

enum class BuildState { kQueued, kRunning, kSucceeded, kFailed, kCancelled };
std::string_view buildStateName(BuildState state);  // "queued", "running", ...
bool isFinished(BuildState state);                  // succeeded, failed or cancelled

enum class StepState { kPending, kCached, kQueued, kRunning, kDone, kFailed, kCancelled };
std::string_view stepStateName(StepState state);

// What the user submitted.
struct BuildRequest {
  std::vector<std::string> tags;
  std::map<std::string, std::string> build_args;
  std::string target;           // --target stage; empty = the last stage
  std::string dockerfile_path;  // inside the context
  Digest context_digest;
  std::string platform;  // "linux/amd64"; empty = the coordinator's default
  bool no_cache = false;
  bool push = false;
  std::string output;  // --output spec ("type=oci,dest=..."); empty = none

  friend bool operator==(const BuildRequest&, const BuildRequest&) = default;
};

struct StepRecord {
  uint32_t index = 0;  // position in the build's step list
  std::string stage;   // stage name or index
  Digest key;
  std::string instruction;  // after expansion, as shown to the user
  InstructionKind kind = InstructionKind::kUnspecified;
  StepState state = StepState::kPending;
  bool cached = false;
  std::string job_id;
  std::string worker;
  int64_t queued_unix_ms = 0;
  int64_t started_unix_ms = 0;
  int64_t finished_unix_ms = 0;
  std::optional<LayerDescriptor> layer;
  Digest diff_id;
  std::string error;

  // finished - started, or 0 while not both known.
  int64_t durationMs() const;
  friend bool operator==(const StepRecord&, const StepRecord&) = default;
};

struct BuildRecord {
  std::string id;
  std::string tenant;  // no NUL bytes (it is part of an index key)
  BuildState state = BuildState::kQueued;
  BuildRequest request;
  int64_t created_unix_ms = 0;  // fixed at submission: listing order depends on it
  int64_t started_unix_ms = 0;
  int64_t finished_unix_ms = 0;
  std::vector<StepRecord> steps;
  Digest manifest_digest;  // the result, when succeeded
  Digest config_digest;
  std::string failure_reason;

  friend bool operator==(const BuildRecord&, const BuildRecord&) = default;
};

enum class JobState { kQueued, kRunning, kSucceeded, kFailed, kCancelled, kLost };
std::string_view jobStateName(JobState state);

// One layer job: a step that no cache entry answered, shared by every build that needs its key.
struct JobRecord {
  std::string id;
  Digest key;
  std::vector<std::string> build_ids;
  uint32_t attempt = 0;
  std::string worker;
  int64_t lease_expiry_unix_ms = 0;
  JobState state = JobState::kQueued;
  int64_t created_unix_ms = 0;
  int64_t started_unix_ms = 0;
  int64_t finished_unix_ms = 0;
  std::string error;

  friend bool operator==(const JobRecord&, const JobRecord&) = default;
};

// One entry of the image config's `history`, plus the layer size `layerfarm history` prints.
struct HistoryEntry {
  int64_t created_unix_ms = 0;
  std::string created_by;
  std::string comment;
  bool empty_layer = false;
  uint64_t layer_size = 0;  // 0 for empty layers

  friend bool operator==(const HistoryEntry&, const HistoryEntry&) = default;
};

// An image the farm built: found by its manifest digest and by every reference in `references`.
struct ImageRecord {
  Digest manifest_digest;
  Digest config_digest;
  std::string media_type;               // of the manifest
  std::vector<std::string> references;  // "registry/team/app:1"; may be empty (exported only)
  std::string build_id;
  std::string platform;
  int64_t created_unix_ms = 0;
  std::vector<HistoryEntry> history;  // oldest first, as in the image config

  friend bool operator==(const ImageRecord&, const ImageRecord&) = default;
};

// An uploaded build context, keyed by the id a build names it by: a manifest id (the digest of
// its ContextManifest blob, POST /v1/contexts) or a legacy tar digest (PUT /v1/contexts/<digest>,
// converted on upload). Either way `manifest` names the manifest blob the builds read.
struct ContextRecord {
  Digest digest;
  uint64_t size = 0;
  int64_t uploaded_unix_ms = 0;
  int64_t last_used_unix_ms = 0;
  // The context's manifest blob (common/context/context_manifest.h); equal to `digest` for a
  // manifest id. Empty in records written before manifests existed: such a context is not ready
  // (a build naming it is refused with "re-upload"), since its tar was never split into files.
  Digest manifest;

  friend bool operator==(const ContextRecord&, const ContextRecord&) = default;
};

}  // namespace lf::coordinator
