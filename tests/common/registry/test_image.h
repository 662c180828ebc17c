#pragma once

// Builds small synthetic OCI images (random uncompressed "layers", a valid config, a manifest)
// in a BlobStore for registry tests.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "common/blob/blob_store.h"
#include "common/oci/manifest.h"
#include "common/oci/media_types.h"

namespace lf::registry::testing {

struct TestImage {
  Digest manifest_digest;
  std::string manifest_bytes;
  oci::Manifest manifest;
  std::vector<Digest> blobs;  // config first, then layers
};

inline std::string randomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  for (size_t i = 0; i < size; i += 8) {
    uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < size; ++j) out[i + j] = static_cast<char>(v >> (8 * j));
  }
  return out;
}

inline TestImage makeTestImage(blob::BlobStore& store, const std::vector<size_t>& layer_sizes,
                               uint64_t seed) {
  TestImage image;
  nlohmann::json diff_ids = nlohmann::json::array();
  std::vector<oci::Descriptor> layers;
  for (size_t i = 0; i < layer_sizes.size(); ++i) {
    std::string bytes = randomBytes(layer_sizes[i], seed * 1000 + i);
    auto info = store.putBytes(bytes);
    EXPECT_TRUE(info.isOk()) << info.status().toString();
    oci::Descriptor d;
    d.media_type = std::string(oci::kOciLayerTar);
    d.digest = info->digest;
    d.size = info->size;
    layers.push_back(d);
    diff_ids.push_back(d.digest.toString());
  }
  nlohmann::json config = {{"architecture", "amd64"},
                           {"os", "linux"},
                           {"config", {{"Env", {"SEED=" + std::to_string(seed)}}}},
                           {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  std::string config_bytes = config.dump();
  auto cinfo = store.putBytes(config_bytes);
  EXPECT_TRUE(cinfo.isOk());
  image.manifest.media_type = std::string(oci::kOciManifest);
  image.manifest.config.media_type = std::string(oci::kOciConfig);
  image.manifest.config.digest = cinfo->digest;
  image.manifest.config.size = cinfo->size;
  image.manifest.layers = layers;
  image.manifest_bytes = image.manifest.toJson();
  auto minfo = store.putBytes(image.manifest_bytes);
  EXPECT_TRUE(minfo.isOk());
  image.manifest_digest = minfo->digest;
  image.blobs.push_back(cinfo->digest);
  for (const auto& l : layers) image.blobs.push_back(l.digest);
  return image;
}

}  // namespace lf::registry::testing
