#pragma once

// Image assembly (ARCHITECTURE.md, step 7): turns a planned stage plus the layers its steps
// produced into an OCI image in the blob store (config + manifest), then pushes it to registries
// or exports it as an OCI layout / archive or a `docker load` tarball.
//
// What the config holds and why it looks like BuildKit's:
// - architecture/os/variant from the platform; `created` from created_unix_seconds
//   (SOURCE_DATE_EPOCH or the build's start) so the same input gives the same config digest.
// - `config` from the stage's final RuntimeConfig (the plan already applies Docker's rules:
//   inherited base config, default PATH, ENTRYPOINT resetting an inherited CMD).
// - `history`: the base's entries first (missing ones are filled in, as BuildKit does, when a base
//   has fewer non-empty entries than layers), then one entry per step of the stage, in order, with
//   created_by = Step::created_by ("RUN /bin/sh -c make # buildkit", "COPY a /b # buildkit",
//   "ENV A=b", "WORKDIR /x") and comment "buildkit.dockerfile.v0". Metadata steps (ENV, LABEL,
//   ARG, WORKDIR, ...) get empty_layer=true. ONBUILD gets no entry (BuildKit writes none).
// - `rootfs.diff_ids`: the base's, then each produced layer's, in step order.
// Known differences from BuildKit (tests/e2e/compare_buildkit.sh builds the same Dockerfiles with
// both and compares; docs/buildkit-differences.md has the full list and the reasons):
// - created_by is the plan's text, BuildKit's format except COPY --from (kept) and HEALTHCHECK.
// - WORKDIR is metadata only (the plan has no layer for it); BuildKit also makes the directory
//   in a layer when it is missing (runtimes create the working directory anyway).
// - Every new entry's `created` is created_unix_seconds, not each step's own finishing time.
// - Filled-in base entries have an empty created_by and a comment saying so (BuildKit writes
//   "created by buildkit" / "buildkit.exporter.image.v0").
// The number of history entries without empty_layer must equal the number of layers; any
// mismatch (a layer step without a layer, a layer for a metadata step, a base whose diff_ids and
// layers differ) is kInvalidArgument naming the step or the field. Nothing is stored then.
//
// Layers are taken as the steps made them: workers store their layers uncompressed by default
// (coordinator `layer_compression: none`), so the manifest assembleImage() stores lists
// uncompressed tars for the build's own layers and the base's layers as they came. That local
// manifest is what a build without push or export reports. Pushing or exporting goes through
// distributionImage() (coordinator/assembly/layer_variants.h) first, which swaps in compressed
// variants (same config, new manifest); the pushed/exported manifest's digest is the one a build
// with push or output reports, so it equals the registry's.
//
// Free functions, no state; thread-safe as far as the BlobStore and RegistryClient are.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/digest/digest.h"
#include "common/oci/descriptor.h"
#include "common/oci/image_config.h"
#include "common/plan/build_plan.h"
#include "common/registry/image_transfer.h"
#include "common/registry/registry_client.h"

namespace lf::coordinator {

// What BuildKit writes in every history entry's comment for Dockerfile steps.
inline constexpr std::string_view kHistoryComment = "buildkit.dockerfile.v0";

// One layer a step produced (or a base image layer).
struct BuiltLayer {
  oci::Descriptor descriptor;  // the layer blob in the store (uncompressed tar or compressed)
  Digest diff_id;              // SHA-256 of the uncompressed tar
  // The step changed nothing (e.g. `RUN true`). Also inferred when diff_id is the digest of an
  // empty tar (1024 zero bytes), which is what layer::writeLayer makes of an unchanged upper dir.
  bool empty = false;
};

// The image a stage starts from. Its history and diff_ids carry over into the result.
struct BaseImageInfo {
  oci::ImageConfig config;
  std::vector<oci::Descriptor> layers;  // same order and count as config.rootfs.diff_ids
};

struct AssemblyInput {
  const plan::Stage* stage = nullptr;  // the target stage (and its steps); must outlive the call
  // nullopt = FROM scratch. For FROM <earlier stage> the caller passes that stage's assembled
  // image (AssembledImage::config and ::layers).
  std::optional<BaseImageInfo> base;
  std::map<int, BuiltLayer> step_layers;  // Step::index -> its layer (layer steps only)
  plan::Platform platform;
  int64_t created_unix_seconds = 0;  // SOURCE_DATE_EPOCH or now
  // A layer step whose layer is empty: BuildKit drops the layer and marks the history entry
  // empty_layer=true (its exporter removes empty gzip layers); Docker's classic builder keeps a
  // 1024-byte empty tar layer. Default: drop, as BuildKit does. False keeps the empty layers.
  bool omit_empty_layers = true;
  // Manifest annotations (e.g. org.opencontainers.image.created); none by default, like BuildKit.
  std::map<std::string, std::string> annotations;
};

struct AssembledImage {
  oci::ImageConfig config;
  std::vector<oci::Descriptor> layers;  // the manifest's layers, base first
  oci::Descriptor manifest;             // stored in the BlobStore, OCI media type
  oci::Descriptor config_descriptor;    // stored in the BlobStore
  std::string config_json;              // the exact config blob bytes
};

// Builds the config and manifest and stores both in `store` (layer blobs must already be there:
// they are checked with stat(), kNotFound naming the step when one is missing).
Result<AssembledImage> assembleImage(const AssemblyInput& input, blob::BlobStore& store);

// The image config's `config` object for a stage's final RuntimeConfig (Shell only when a SHELL
// instruction set one, as BuildKit writes it).
oci::ContainerConfig containerConfigOf(const plan::RuntimeConfig& config);
// The inverse, for the planner's BaseImage::config: what a stage inherits from its base image.
plan::RuntimeConfig runtimeConfigOf(const oci::ImageConfig& image);
// The diff ID of an empty layer: SHA-256 of a tar holding only its 1024-byte end marker.
const Digest& emptyLayerDiffId();

// --output type=oci|docker,dest=...
struct ExportOptions {
  enum class Type { kOci, kDocker };
  Type type = Type::kOci;
  std::filesystem::path dest;
  // kOci only: true writes one tar (BuildKit's default for type=oci), false an OCI layout
  // directory (BuildKit's tar=false); an existing layout directory is added to.
  bool tar = true;
  // Image references ("registry/team/app:1"). kOci: the first one's tag becomes the index.json
  // entry's org.opencontainers.image.ref.name ("1"; "latest" without tags), as BuildKit's OCI
  // exporter does. kDocker: all of them become RepoTags in Docker's familiar form
  // ("team/app:1", "registry:5000/team/app:1").
  std::vector<std::string> tags;
};

// Parses `--output type=oci,dest=out.tar[,tar=false]` / `type=docker,dest=x.tar`. Errors name
// the bad key or value.
Result<ExportOptions> parseExportSpec(std::string_view spec, std::vector<std::string> tags = {});

// Writes the image (manifest, config, layers from `store`) to options.dest, atomically.
Status exportImage(blob::BlobStore& store, const AssembledImage& image,
                   const ExportOptions& options);

struct PushAssembledOptions {
  // Repositories that may hold the blobs already, e.g. the base image's, as full names
  // ("127.0.0.1:5000/library/busybox", "docker.io/library/alpine"). Each target repository
  // mounts only from those on its own registry. When `store` is a registry::RegistryBlobStore on
  // the same host as a target, its repository is added automatically, so layers are mounted
  // instead of uploaded.
  std::vector<std::string> mount_from;
  bool default_library_namespace = true;
  std::function<void(std::string_view message)> progress;
};

// Pushes the image to every reference in `tags` ("127.0.0.1:5000/team/app:1"): per repository,
// the blobs it lacks (mounted where possible, else uploaded), then the manifest once per tag
// (registry::pushImage does the work). References may name different repositories and
// registries. Returns one result per repository, in the order the tags first name them.
Result<std::vector<registry::PushResult>> pushAssembledImage(
    registry::RegistryClient& client, blob::BlobStore& store, const AssembledImage& image,
    const std::vector<std::string>& tags, const PushAssembledOptions& options = {});

}  // namespace lf::coordinator
