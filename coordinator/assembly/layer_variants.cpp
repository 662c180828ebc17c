#include "coordinator/assembly/layer_variants.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>

#include "common/blob/blob_util.h"
#include "common/oci/manifest.h"
#include "common/oci/media_types.h"

namespace lf::coordinator {
namespace {

// Keys of the variants being made in this process right now. A caller that finds its key taken
// waits until the maker is done, then looks the variant up like everyone else (and finds it
// recorded, or makes it itself when the maker failed). Keyed per blob store too: two stores in
// one process (tests) are independent.
class InFlight {
 public:
  static InFlight& instance() {
    static InFlight flights;  // never destroyed before the builds that use it
    return flights;
  }
  // Blocks while `key` is taken; takes it.
  void enter(const std::string& key) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !running_.contains(key); });
    running_.insert(key);
  }
  void leave(const std::string& key) {
    {
      std::lock_guard lock(mu_);
      running_.erase(key);
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> running_;
};

class FlightGuard {
 public:
  explicit FlightGuard(std::string key) : key_(std::move(key)) { InFlight::instance().enter(key_); }
  ~FlightGuard() { InFlight::instance().leave(key_); }
  FlightGuard(const FlightGuard&) = delete;
  FlightGuard& operator=(const FlightGuard&) = delete;

 private:
  std::string key_;
};

// "20.0 MB", "3.1 kB", "512 B" (decimal units, as docker shows sizes).
std::string humanBytes(uint64_t bytes) {
  if (bytes >= 1'000'000) return fmt::format("{:.1f} MB", static_cast<double>(bytes) / 1e6);
  if (bytes >= 1'000) return fmt::format("{:.1f} kB", static_cast<double>(bytes) / 1e3);
  return fmt::format("{} B", bytes);
}

// A recorded variant whose blob is still in the store with its size; nullopt otherwise.
Result<std::optional<oci::Descriptor>> storedVariant(StateStore& state, blob::BlobStore& blobs,
                                                     const Digest& source,
                                                     std::string_view compression) {
  LF_ASSIGN_OR_RETURN(std::optional<oci::Descriptor> recorded,
                      state.getLayerVariant(source, compression));
  if (!recorded) return recorded;
  LF_ASSIGN_OR_RETURN(std::optional<blob::BlobInfo> info, blobs.stat(recorded->digest));
  if (info && info->size == recorded->size) return recorded;
  spdlog::info("layer variant {} ({}) of {} is no longer in the blob store; compressing again",
               recorded->digest.toString(), compression, source.toString());
  return std::optional<oci::Descriptor>();
}

// Streams the source blob through the compressor into a new blob; returns the new blob.
Result<blob::BlobInfo> compressBlob(blob::BlobStore& blobs, const oci::Descriptor& layer,
                                    const DistributionOptions& options) {
  LF_ASSIGN_OR_RETURN(std::unique_ptr<blob::BlobWriter> writer, blobs.openWriter());
  layer::CompressorOptions copts{options.threads, options.gzip_level, options.zstd_level};
  LF_ASSIGN_OR_RETURN(
      std::unique_ptr<layer::Compressor> compressor,
      layer::makeCompressor(options.compression, copts, [&](const void* data, size_t size) {
        return writer->write(data, size);
      }));
  bool first = true;
  LF_RETURN_IF_ERROR(
      blob::streamBlob(blobs, layer.digest, [&](const void* data, size_t size) -> Status {
        // A blob typed as a tar that is in fact compressed would be compressed twice and give a
        // layer no runtime reads; refuse it instead.
        if (first && size > 0) {
          first = false;
          if (layer::detectCompression(data, size) != layer::Compression::kNone) {
            return invalidArgument("the blob is typed " + layer.media_type +
                                   " but its bytes are already compressed");
          }
        }
        return compressor->write(data, size);
      }));
  LF_RETURN_IF_ERROR(compressor->finish());
  return writer->commit();
}

}  // namespace

bool isUncompressedLayer(std::string_view media_type) {
  return media_type == oci::kOciLayerTar ||
         media_type == "application/vnd.docker.image.rootfs.diff.tar";
}

Result<oci::Descriptor> layerVariant(StateStore& state, blob::BlobStore& blobs,
                                     const oci::Descriptor& layer,
                                     const DistributionOptions& options, bool* reused) {
  if (reused) *reused = false;
  if (options.compression == layer::Compression::kNone) {
    return invalidArgument("layer variant: compression none makes no variant");
  }
  const std::string_view name = layer::compressionName(options.compression);
  FlightGuard guard(
      fmt::format("{} {} {}", static_cast<const void*>(&blobs), layer.digest.toString(), name));
  LF_ASSIGN_OR_RETURN(std::optional<oci::Descriptor> stored,
                      storedVariant(state, blobs, layer.digest, name));
  if (stored) {
    if (reused) *reused = true;
    if (options.metrics) options.metrics->layerVariantReused();
    return *stored;
  }
  if (options.progress) {
    options.progress(fmt::format("compressing layer {}… ({})",
                                 layer.digest.toString().substr(0, 19), humanBytes(layer.size)));
  }
  const auto start = std::chrono::steady_clock::now();
  Result<blob::BlobInfo> blob = compressBlob(blobs, layer, options);
  if (!blob.isOk()) {
    return blob.status().withContext("compress layer " + layer.digest.toString());
  }
  oci::Descriptor variant;
  variant.media_type = std::string(layer::layerMediaType(options.compression));
  variant.digest = blob->digest;
  variant.size = blob->size;
  variant.annotations = layer.annotations;
  LF_RETURN_IF_ERROR(state.putLayerVariant(layer.digest, name, variant));
  if (options.metrics) options.metrics->layerVariantCompressed(layer.size);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  spdlog::info("compressed layer {} ({}) to {} {} ({}) in {} ms", layer.digest.toString(),
               humanBytes(layer.size), name, variant.digest.toString(), humanBytes(variant.size),
               ms);
  return variant;
}

Result<DistributionImage> distributionImage(StateStore& state, blob::BlobStore& blobs,
                                            const AssembledImage& image,
                                            const DistributionOptions& options) {
  DistributionImage out{image, {}};
  if (options.compression == layer::Compression::kNone) {
    out.stats.unchanged = image.layers.size();
    return out;
  }
  bool changed = false;
  for (oci::Descriptor& layer : out.image.layers) {
    if (!isUncompressedLayer(layer.media_type)) {
      ++out.stats.unchanged;
      continue;
    }
    bool reused = false;
    LF_ASSIGN_OR_RETURN(oci::Descriptor variant,
                        layerVariant(state, blobs, layer, options, &reused));
    if (reused) {
      ++out.stats.reused;
    } else {
      ++out.stats.compressed;
      out.stats.compressed_bytes += layer.size;
    }
    layer = std::move(variant);
    changed = true;
  }
  if (!changed) return out;

  // The local manifest with the layers swapped: annotations and everything else carry over.
  LF_ASSIGN_OR_RETURN(std::string text,
                      blobs.getBytes(image.manifest.digest, oci::kMaxManifestBytes));
  LF_ASSIGN_OR_RETURN(oci::Manifest manifest, oci::Manifest::fromJson(text));
  manifest.layers = out.image.layers;
  const std::string json = manifest.toJson();
  LF_ASSIGN_OR_RETURN(blob::BlobInfo stored, blobs.putBytes(json));
  out.image.manifest.digest = stored.digest;
  out.image.manifest.size = stored.size;
  return out;
}

}  // namespace lf::coordinator
