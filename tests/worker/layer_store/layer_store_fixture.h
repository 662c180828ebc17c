#pragma once

// Shared set-up of the layer store tests: a scratch blob store, real layers made with writeLayer
// from directories, and a store root, all in one temp dir (one filesystem, so adopt() works).

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/blob/directory_blob_store.h"
#include "common/layer/layer_writer.h"
#include "tests/support/temp_dir.h"
#include "worker/layer_store/layer_store.h"

namespace lf::worker::testing {

class LayerStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    blob::DirectoryBlobStoreOptions options;
    options.fsync = false;
    auto blobs = blob::DirectoryBlobStore::open(tmp_ / "blobs", options);
    ASSERT_TRUE(blobs.isOk()) << blobs.status().toString();
    blobs_ = std::move(blobs).value();
  }

  // Writes `files` (relative path -> content) into a fresh source dir and makes a layer of it.
  LayerRef makeLayer(const std::map<std::string, std::string>& files) {
    std::filesystem::path dir = makeDir(files);
    return layerOf(dir);
  }

  std::filesystem::path makeDir(const std::map<std::string, std::string>& files) {
    std::filesystem::path dir = tmp_ / ("src" + std::to_string(next_src_++));
    std::filesystem::create_directories(dir);
    for (const auto& [rel, content] : files) {
      EXPECT_TRUE(lf::testing::writeFile(dir / rel, content)) << rel;
    }
    return dir;
  }

  LayerRef layerOf(const std::filesystem::path& dir, bool overlay_upper = false) {
    layer::LayerOptions options;
    options.source_date_epoch = 1;  // same tree, same diff ID
    options.overlay_upper = overlay_upper;
    options.threads = 1;
    auto info = layer::writeLayer(dir, options, *blobs_);
    EXPECT_TRUE(info.isOk()) << info.status().toString();
    if (!info.isOk()) {
      return {};
    }
    return LayerRef{info->digest, info->diff_id, info->size, info->media_type};
  }

  std::unique_ptr<LayerStore> openStore(uint64_t budget_bytes = 1ull << 40) {
    LayerStoreOptions options;
    options.root = root();
    options.budget_bytes = budget_bytes;
    options.sync = sync_;
    auto store = LayerStore::open(options, *blobs_);
    EXPECT_TRUE(store.isOk()) << store.status().toString();
    return store.isOk() ? std::move(store).value() : nullptr;
  }

  std::filesystem::path root() const { return tmp_ / "store"; }

  // Entries in a store subdirectory ("l" or "tmp").
  std::vector<std::string> entries(const std::string& sub) const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(root() / sub, ec)) {
      out.push_back(e.path().filename().string());
    }
    return out;
  }

  lf::testing::TempDir tmp_;
  std::unique_ptr<blob::DirectoryBlobStore> blobs_;
  int next_src_ = 0;
  bool sync_ = false;  // scratch stores; one test turns it on
};

}  // namespace lf::worker::testing
