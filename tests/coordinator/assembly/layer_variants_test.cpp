// distributionImage / layerVariant on real components: a directory blob store, a RocksDB state
// store, layers written by the real layer writer (one uncompressed, one gzip "base" layer), the
// real decompressor to check what was made.

#include "coordinator/assembly/layer_variants.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "common/blob/directory_blob_store.h"
#include "common/layer/layer_writer.h"
#include "common/oci/layout.h"
#include "common/oci/manifest.h"
#include "common/oci/media_types.h"
#include "tests/common/registry/test_image.h"
#include "tests/support/temp_dir.h"

namespace lf::coordinator {
namespace {

using registry::testing::randomBytes;

// SHA-256 of the blob's bytes after the real decompressor (format detected by magic).
Digest decompressedDigest(blob::BlobStore& store, const Digest& digest) {
  auto reader = store.openReader(digest);
  EXPECT_TRUE(reader.isOk()) << reader.status().toString();
  if (!reader.isOk()) return {};
  blob::BlobReader* r = reader->get();
  auto d = layer::makeDecompressor([r](void* data, size_t size) { return r->read(data, size); });
  Sha256 sha;
  std::string buf(1 << 16, '\0');
  while (true) {
    auto n = d->read(buf.data(), buf.size());
    EXPECT_TRUE(n.isOk()) << n.status().toString();
    if (!n.isOk() || *n == 0) break;
    sha.update(buf.data(), *n);
  }
  return sha.finish();
}

size_t countBlobs(blob::BlobStore& store) {
  size_t n = 0;
  EXPECT_TRUE(store.list([&](const blob::BlobInfo&) { ++n; }).isOk());
  return n;
}

class LayerVariantsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto blobs = blob::DirectoryBlobStore::open(dir_ / "blobs");
    ASSERT_TRUE(blobs.isOk()) << blobs.status().toString();
    blobs_ = std::move(*blobs);
    auto state = StateStore::open({.dir = dir_ / "state", .sync_writes = false});
    ASSERT_TRUE(state.isOk()) << state.status().toString();
    state_ = std::move(*state);
    base_ = writeLayer("base", {{"etc/os-release", "NAME=base\n"}}, layer::Compression::kGzip);
    ours_ = writeLayer("ours", {{"app/data.bin", randomBytes(kOurBytes, 7)}},
                       layer::Compression::kNone);
    image_ = assemble({base_, ours_});
  }

  layer::LayerInfo writeLayer(const std::string& name,
                              const std::map<std::string, std::string>& files,
                              layer::Compression compression) {
    for (const auto& [path, content] : files) dir_.write("trees/" + name + "/" + path, content);
    layer::LayerOptions options;
    options.compression = compression;
    options.source_date_epoch = 0;
    auto info = layer::writeLayer(dir_ / ("trees/" + name), options, *blobs_);
    EXPECT_TRUE(info.isOk()) << info.status().toString();
    return info.isOk() ? *info : layer::LayerInfo{};
  }

  // An image over `layers` as assembleImage leaves it: config and manifest in the store.
  AssembledImage assemble(const std::vector<layer::LayerInfo>& layers) {
    AssembledImage image;
    image.config.architecture = "amd64";
    image.config.os = "linux";
    for (const auto& l : layers) {
      image.config.rootfs.diff_ids.push_back(l.diff_id);
      image.layers.push_back({.media_type = l.media_type, .digest = l.digest, .size = l.size});
    }
    auto manifest = oci::storeImage(*blobs_, image.config, image.layers,
                                    {{"org.opencontainers.image.created", "x"}});
    EXPECT_TRUE(manifest.isOk()) << manifest.status().toString();
    image.manifest = *manifest;
    image.config_json = image.config.toJson();
    image.config_descriptor = {.media_type = std::string(oci::kOciConfig),
                               .digest = Digest::sha256Of(image.config_json),
                               .size = image.config_json.size()};
    return image;
  }

  Result<DistributionImage> distribute(CoordinatorMetrics* metrics = nullptr) {
    DistributionOptions options;
    options.metrics = metrics;
    options.progress = [this](std::string_view m) { messages_.emplace_back(m); };
    return distributionImage(*state_, *blobs_, image_, options);
  }

  static constexpr size_t kOurBytes = 20'000'000;
  lf::testing::TempDir dir_;
  std::unique_ptr<blob::BlobStore> blobs_;
  std::unique_ptr<StateStore> state_;
  layer::LayerInfo base_, ours_;
  AssembledImage image_;
  std::vector<std::string> messages_;
};

TEST_F(LayerVariantsTest, WorkerLayersAreUncompressedTarsWhoseDigestIsTheDiffId) {
  EXPECT_EQ(ours_.media_type, oci::kOciLayerTar);
  EXPECT_EQ(ours_.digest, ours_.diff_id);
  EXPECT_GT(ours_.size, kOurBytes);
}

TEST_F(LayerVariantsTest, CompressesUncompressedLayersAndKeepsTheRest) {
  const auto start = std::chrono::steady_clock::now();
  auto dist = distribute();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  ASSERT_TRUE(dist.isOk()) << dist.status().toString();
  std::printf("compressing a %zu-byte random layer to gzip took %lld ms\n", ours_.size,
              static_cast<long long>(ms));
  const AssembledImage& out = dist->image;
  EXPECT_EQ(dist->stats.compressed, 1u);
  EXPECT_EQ(dist->stats.compressed_bytes, ours_.size);
  EXPECT_EQ(dist->stats.unchanged, 1u);
  ASSERT_EQ(out.layers.size(), 2u);

  // The base's gzip layer is untouched; ours is a gzip blob of exactly the tar.
  EXPECT_EQ(out.layers[0], image_.layers[0]);
  EXPECT_EQ(out.layers[1].media_type, oci::kOciLayerTarGzip);
  EXPECT_NE(out.layers[1].digest, ours_.digest);
  auto stat = blobs_->stat(out.layers[1].digest);
  ASSERT_TRUE(stat.isOk() && stat->has_value());
  EXPECT_EQ((*stat)->size, out.layers[1].size);
  EXPECT_EQ(decompressedDigest(*blobs_, out.layers[1].digest), ours_.diff_id);

  // Same config (diff_ids unchanged); a new manifest over the new layers, in the store.
  EXPECT_EQ(out.config_descriptor, image_.config_descriptor);
  EXPECT_EQ(out.config_json, image_.config_json);
  EXPECT_NE(out.manifest.digest, image_.manifest.digest);
  auto bytes = blobs_->getBytes(out.manifest.digest);
  ASSERT_TRUE(bytes.isOk()) << bytes.status().toString();
  EXPECT_EQ(Digest::sha256Of(*bytes), out.manifest.digest);
  EXPECT_EQ(bytes->size(), out.manifest.size);
  auto manifest = oci::Manifest::fromJson(*bytes);
  ASSERT_TRUE(manifest.isOk()) << manifest.status().toString();
  EXPECT_EQ(manifest->config, image_.config_descriptor);
  EXPECT_EQ(manifest->layers, out.layers);
  EXPECT_EQ(manifest->annotations.at("org.opencontainers.image.created"), "x");
  EXPECT_EQ(out.manifest.media_type, oci::kOciManifest);

  ASSERT_EQ(messages_.size(), 1u);
  EXPECT_EQ(messages_[0],
            "compressing layer " + ours_.digest.toString().substr(0, 19) + "… (20.0 MB)");
}

TEST_F(LayerVariantsTest, ASecondDistributionReusesTheVariant) {
  CoordinatorMetrics metrics;
  auto first = distribute(&metrics);
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  const size_t blobs_after_first = countBlobs(*blobs_);

  auto second = distribute(&metrics);
  ASSERT_TRUE(second.isOk()) << second.status().toString();
  EXPECT_EQ(second->stats.compressed, 0u);
  EXPECT_EQ(second->stats.reused, 1u);
  EXPECT_EQ(second->image.manifest, first->image.manifest);
  EXPECT_EQ(second->image.layers, first->image.layers);
  EXPECT_EQ(countBlobs(*blobs_), blobs_after_first);  // nothing new written
  EXPECT_EQ(messages_.size(), 1u);                    // one "compressing" message in all
  const std::string text = metrics.serialize();
  EXPECT_NE(text.find("layerfarm_layer_variant_reuses_total 1"), std::string::npos) << text;
  EXPECT_NE(
      text.find("layerfarm_layer_variant_compressed_bytes_total " + std::to_string(ours_.size)),
      std::string::npos)
      << text;
}

TEST_F(LayerVariantsTest, AVariantWhoseBlobWasDeletedIsCompressedAgain) {
  auto first = distribute();
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  const oci::Descriptor variant = first->image.layers[1];
  ASSERT_TRUE(blobs_->remove(variant.digest).isOk());

  auto second = distribute();
  ASSERT_TRUE(second.isOk()) << second.status().toString();
  EXPECT_EQ(second->stats.compressed, 1u);
  EXPECT_EQ(second->stats.reused, 0u);
  // Compression is deterministic: the same blob again, present again.
  EXPECT_EQ(second->image.layers[1], variant);
  auto has = blobs_->has(variant.digest);
  ASSERT_TRUE(has.isOk());
  EXPECT_TRUE(*has);
}

TEST_F(LayerVariantsTest, ConcurrentDistributionsCompressOnce) {
  Result<DistributionImage> a = internalError("not run"), b = internalError("not run");
  std::thread ta([&] { a = distribute(); });
  std::thread tb([&] { b = distribute(); });
  ta.join();
  tb.join();
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  ASSERT_TRUE(b.isOk()) << b.status().toString();
  EXPECT_EQ(a->stats.compressed + b->stats.compressed, 1u);
  EXPECT_EQ(a->stats.reused + b->stats.reused, 1u);
  EXPECT_EQ(a->image.manifest, b->image.manifest);
}

TEST_F(LayerVariantsTest, ZstdIsItsOwnVariant) {
  DistributionOptions options;
  options.compression = layer::Compression::kZstd;
  auto zstd = distributionImage(*state_, *blobs_, image_, options);
  ASSERT_TRUE(zstd.isOk()) << zstd.status().toString();
  EXPECT_EQ(zstd->image.layers[1].media_type, oci::kOciLayerTarZstd);
  EXPECT_EQ(decompressedDigest(*blobs_, zstd->image.layers[1].digest), ours_.diff_id);
  auto gzip = distribute();
  ASSERT_TRUE(gzip.isOk()) << gzip.status().toString();
  EXPECT_EQ(gzip->stats.compressed, 1u);  // the zstd record does not answer for gzip
}

TEST_F(LayerVariantsTest, AnImageWithoutUncompressedLayersIsReturnedUnchanged) {
  image_ = assemble({base_});
  auto dist = distribute();
  ASSERT_TRUE(dist.isOk()) << dist.status().toString();
  EXPECT_EQ(dist->image.manifest, image_.manifest);
  EXPECT_EQ(dist->image.layers, image_.layers);
  EXPECT_EQ(dist->stats.unchanged, 1u);
  EXPECT_TRUE(messages_.empty());
}

TEST_F(LayerVariantsTest, ABlobTypedAsTarButCompressedIsRefused) {
  oci::Descriptor lying = image_.layers[0];  // the base's gzip blob
  lying.media_type = std::string(oci::kOciLayerTar);
  auto variant = layerVariant(*state_, *blobs_, lying, DistributionOptions{});
  ASSERT_FALSE(variant.isOk());
  EXPECT_NE(variant.status().message().find("already compressed"), std::string::npos)
      << variant.status().message();
  auto recorded = state_->getLayerVariant(lying.digest, "gzip");
  ASSERT_TRUE(recorded.isOk());
  EXPECT_FALSE(recorded->has_value());  // nothing recorded for a failure
}

}  // namespace
}  // namespace lf::coordinator
