#pragma once

// Layer variants: what makes a build's image fit to push or export.
//
// Workers store the layers they build uncompressed (media type application/vnd.oci.image.layer.
// v1.tar, blob digest == diff ID), as BuildKit keeps its snapshots: a rebuild does not spend time
// compressing a layer nobody may ever pull. Compression happens here, once per layer, when an
// image leaves the farm: distributionImage() takes an assembled image whose layers may be
// uncompressed tars and returns the image to push or export, with
// - the same config blob (diff_ids describe the uncompressed tars, so the config digest and the
//   image ID do not change),
// - each uncompressed layer replaced by its compressed variant (gzip by default), and each layer
//   that is already compressed (a base image's) left as it is,
// - a new manifest (same annotations) stored in the blob store.
// An image without uncompressed layers is returned unchanged (same manifest).
//
// Variants are remembered in the StateStore (putLayerVariant / getLayerVariant): the next push of
// the same layer, by any build, reuses the recorded blob after checking it is still in the blob
// store (stat, size); a record whose blob is gone is compressed again and replaced. Two builds
// that need the same variant at the same time compress it once: the second waits for the first
// (a process-wide single-flight set keyed by blob store, digest and compression).
//
// The variant's media type is the OCI one for its compression (…tar+gzip, …tar+zstd), also for a
// Docker-typed uncompressed source. The source blob is read through the blob store (digest
// verified); compression uses layer::makeCompressor (parallel gzip, `threads` threads), and its
// output is a deterministic function of the tar and the level, so two coordinators make the same
// variant blob.
//
// Thread-safety: distributionImage() and layerVariant() may be called from any thread
// concurrently; they block (reading, compressing, writing blobs): call them from a build's driver
// thread, never from an io_context. Errors: the blob store's and state store's, with context
// naming the layer ("compress layer sha256:...: ..."); nothing is recorded for a layer that failed.

#include <cstdint>
#include <functional>
#include <string_view>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/layer/compression.h"
#include "common/oci/descriptor.h"
#include "coordinator/assembly/image_assembly.h"
#include "coordinator/metrics/coordinator_metrics.h"
#include "coordinator/state/state_store.h"

namespace lf::coordinator {

struct DistributionOptions {
  // kGzip (default: what every registry and runtime reads) or kZstd. kNone leaves the image as
  // it is.
  layer::Compression compression = layer::Compression::kGzip;
  // Compression threads per layer; 0 = all cores (layer::CompressorOptions).
  int threads = 0;
  int gzip_level = 6;
  int zstd_level = 3;
  // "compressing layer sha256:0123456789ab… (20.0 MB)" per layer actually compressed.
  std::function<void(std::string_view message)> progress;
  // Optional: layer_variant_compressed_bytes_total / layer_variant_reuses_total.
  CoordinatorMetrics* metrics = nullptr;
};

// What one call did (for tests and logs).
struct DistributionStats {
  size_t compressed = 0;          // layers compressed by this call
  uint64_t compressed_bytes = 0;  // their uncompressed bytes
  size_t reused = 0;              // variants found recorded (or made by a concurrent call)
  size_t unchanged = 0;           // layers already compressed, or of a media type left alone
};

struct DistributionImage {
  AssembledImage image;
  DistributionStats stats;
};

// True for the uncompressed layer media types distributionImage() replaces:
// application/vnd.oci.image.layer.v1.tar and application/vnd.docker.image.rootfs.diff.tar.
// Non-distributable / foreign layers are never touched.
bool isUncompressedLayer(std::string_view media_type);

// The compressed variant of one uncompressed layer blob: recorded and still stored, or made now
// (and recorded). `reused` (optional) tells which.
Result<oci::Descriptor> layerVariant(StateStore& state, blob::BlobStore& blobs,
                                     const oci::Descriptor& layer,
                                     const DistributionOptions& options, bool* reused = nullptr);

// The image to push or export (see the header comment). `image.manifest` must be in `blobs`.
Result<DistributionImage> distributionImage(StateStore& state, blob::BlobStore& blobs,
                                            const AssembledImage& image,
                                            const DistributionOptions& options);

}  // namespace lf::coordinator
