#include "common/oci/layout.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "common/blob/directory_blob_store.h"
#include "common/oci/media_types.h"
#include "tests/support/temp_dir.h"

namespace lf::oci {
namespace {

namespace fs = std::filesystem;
using lf::testing::readFile;
using lf::testing::TempDir;

// Reads every regular file of a tar into name -> content.
std::map<std::string, std::string> readTar(const fs::path& path) {
  std::map<std::string, std::string> out;
  struct archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  EXPECT_EQ(archive_read_open_filename(a, path.c_str(), 65536), ARCHIVE_OK);
  struct archive_entry* e = nullptr;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    std::string name = archive_entry_pathname(e);
    if (archive_entry_filetype(e) != AE_IFREG) {
      continue;
    }
    std::string data(static_cast<size_t>(archive_entry_size(e)), '\0');
    if (!data.empty()) {
      EXPECT_EQ(archive_read_data(a, data.data(), data.size()),
                static_cast<la_ssize_t>(data.size()));
    }
    out[name] = data;
  }
  archive_read_free(a);
  return out;
}

// A store holding a small image whose "layers" are arbitrary blobs (layouts don't look inside).
struct Fixture {
  TempDir dir;
  std::unique_ptr<blob::DirectoryBlobStore> store;
  ImageConfig config;
  std::vector<Descriptor> layers;
  Descriptor manifest;

  explicit Fixture(std::vector<std::string> layer_bytes = {"layer one", "layer two"}) {
    store = std::move(blob::DirectoryBlobStore::open(dir / "store")).value();
    config.architecture = "amd64";
    config.os = "linux";
    config.config.cmd = std::vector<std::string>{"/bin/true"};
    for (const auto& bytes : layer_bytes) {
      auto info = store->putBytes(bytes);
      EXPECT_TRUE(info.isOk());
      layers.push_back({std::string(kOciLayerTarGzip), info->digest, info->size});
      config.rootfs.diff_ids.push_back(Digest::sha256Of("uncompressed " + bytes));
    }
    auto m = storeImage(*store, config, layers);
    EXPECT_TRUE(m.isOk()) << m.status().toString();
    manifest = *m;
  }
};

TEST(Layout, StoreImageChecksLayerCount) {
  Fixture f;
  ImageConfig c = f.config;
  c.rootfs.diff_ids.pop_back();
  EXPECT_EQ(storeImage(*f.store, c, f.layers).status().code(), StatusCode::kInvalidArgument);
}

TEST(Layout, WriteThenReadBackVerified) {
  Fixture f;
  fs::path out = f.dir / "layout";
  ASSERT_TRUE(writeOciLayout(*f.store, f.manifest, "latest", out).isOk());
  EXPECT_EQ(readFile(out / "oci-layout"), R"({"imageLayoutVersion":"1.0.0"})");
  EXPECT_FALSE(fs::exists(out / "tmp"));
  auto index = Index::fromJson(readFile(out / "index.json"));
  ASSERT_TRUE(index.isOk()) << index.status().toString();
  ASSERT_EQ(index->manifests.size(), 1u);
  EXPECT_EQ(index->media_type, kOciIndex);
  EXPECT_EQ(index->manifests[0].annotations.at(std::string(kAnnotationRefName)), "latest");
  EXPECT_EQ(index->manifests[0].digest, f.manifest.digest);

  auto image = readOciLayout(out);
  ASSERT_TRUE(image.isOk()) << image.status().toString();
  EXPECT_EQ(image->config, f.config);
  EXPECT_EQ(image->manifest.layers, f.layers);
  EXPECT_EQ(Digest::sha256Of(image->manifest_json), f.manifest.digest);
  EXPECT_EQ(image->manifest.config.digest, Digest::sha256Of(image->config_json));
}

TEST(Layout, SecondTagIsAddedAndSameTagReplaced) {
  Fixture f;
  Fixture g({"other layer"});
  fs::path out = f.dir / "layout";
  ASSERT_TRUE(writeOciLayout(*f.store, f.manifest, "v1", out).isOk());
  ASSERT_TRUE(writeOciLayout(*g.store, g.manifest, "v2", out).isOk());
  ASSERT_TRUE(writeOciLayout(*g.store, g.manifest, "v1", out).isOk());
  auto index = Index::fromJson(readFile(out / "index.json"));
  ASSERT_TRUE(index.isOk());
  EXPECT_EQ(index->manifests.size(), 2u);
  auto v1 = readOciLayout(out, {.ref_name = "v1"});
  ASSERT_TRUE(v1.isOk()) << v1.status().toString();
  EXPECT_EQ(v1->manifest_descriptor.digest, g.manifest.digest);
  auto none = readOciLayout(out);
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument) << "two manifests, no ref name";
  EXPECT_EQ(readOciLayout(out, {.ref_name = "v3"}).status().code(), StatusCode::kNotFound);
}

TEST(Layout, RefusesNonEmptyDirectoryThatIsNotALayout) {
  Fixture f;
  f.dir.write("junk/file", "x");
  EXPECT_EQ(writeOciLayout(*f.store, f.manifest, "latest", f.dir / "junk").code(),
            StatusCode::kFailedPrecondition);
}

TEST(Layout, ReadDetectsDamagedAndMissingBlobs) {
  Fixture f;
  fs::path out = f.dir / "layout";
  ASSERT_TRUE(writeOciLayout(*f.store, f.manifest, "latest", out).isOk());
  fs::path layer = out / "blobs" / "sha256" / f.layers[1].digest.hex();
  std::string bytes = readFile(layer);
  bytes[0] ^= 1;
  fs::permissions(layer, fs::perms::owner_write, fs::perm_options::add);
  ASSERT_TRUE(lf::testing::writeFile(layer, bytes));
  auto damaged = readOciLayout(out);
  EXPECT_EQ(damaged.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(damaged.status().message().find("manifest.layers[1]"), std::string::npos)
      << damaged.status().message();
  EXPECT_TRUE(fs::exists(layer)) << "reading a layout must not modify it";
  // Size-only check does not read layer bytes.
  EXPECT_TRUE(readOciLayout(out, {.verify_layers = false}).isOk());

  fs::remove(layer);
  EXPECT_EQ(readOciLayout(out, {.verify_layers = false}).status().code(), StatusCode::kNotFound);

  fs::path manifest = out / "blobs" / "sha256" / f.manifest.digest.hex();
  fs::permissions(manifest, fs::perms::owner_write, fs::perm_options::add);
  ASSERT_TRUE(lf::testing::writeFile(manifest, "{}"));
  EXPECT_EQ(readOciLayout(out).status().code(), StatusCode::kDataLoss);
}

TEST(Layout, ReadRejectsMalformedIndexWithFileAndField) {
  TempDir dir;
  dir.write("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  dir.write("index.json", R"({"schemaVersion":2,"manifests":[{"mediaType":"x/y","size":"1"}]})");
  std::error_code ec;
  fs::create_directories(dir / "blobs" / "sha256", ec);
  auto r = readOciLayout(dir.path());
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("index.json.manifests[0].digest: required"),
            std::string::npos)
      << r.status().message();
  dir.write("oci-layout", R"({"imageLayoutVersion":"2.0.0"})");
  EXPECT_NE(readOciLayout(dir.path()).status().message().find("unsupported version"),
            std::string::npos);
}

TEST(Layout, OciArchiveHoldsTheLayout) {
  Fixture f;
  fs::path tar = f.dir / "image.tar";
  ASSERT_TRUE(writeOciArchive(*f.store, f.manifest, "1.0", tar).isOk());
  auto files = readTar(tar);
  EXPECT_EQ(files.at("oci-layout"), R"({"imageLayoutVersion":"1.0.0"})");
  auto index = Index::fromJson(files.at("index.json"));
  ASSERT_TRUE(index.isOk());
  EXPECT_EQ(index->manifests.at(0).digest, f.manifest.digest);
  for (const auto& l : f.layers) {
    EXPECT_EQ(files.at("blobs/sha256/" + l.digest.hex()), *f.store->getBytes(l.digest));
  }
  EXPECT_EQ(Digest::sha256Of(files.at("blobs/sha256/" + f.manifest.digest.hex())),
            f.manifest.digest);
  // Deterministic: the same image gives the same archive bytes.
  fs::path again = f.dir / "again.tar";
  ASSERT_TRUE(writeOciArchive(*f.store, f.manifest, "1.0", again).isOk());
  EXPECT_EQ(readFile(tar), readFile(again));
}

TEST(Layout, DockerArchiveManifest) {
  Fixture f;
  fs::path tar = f.dir / "docker.tar";
  ASSERT_TRUE(writeDockerArchive(*f.store, f.manifest, {"busybox:latest"}, tar).isOk());
  auto files = readTar(tar);
  auto manifest = nlohmann::json::parse(files.at("manifest.json"));
  ASSERT_TRUE(manifest.is_array());
  ASSERT_EQ(manifest.size(), 1u);
  auto config = manifest[0]["Config"].get<std::string>();
  EXPECT_EQ(manifest[0]["RepoTags"], nlohmann::json::array({"busybox:latest"}));
  auto parsed = ImageConfig::fromJson(files.at(config));
  ASSERT_TRUE(parsed.isOk());
  EXPECT_EQ(*parsed, f.config);
  ASSERT_EQ(manifest[0]["Layers"].size(), f.layers.size());
  for (size_t i = 0; i < f.layers.size(); ++i) {
    EXPECT_EQ(files.at(manifest[0]["Layers"][i].get<std::string>()),
              *f.store->getBytes(f.layers[i].digest));
  }
}

TEST(Layout, DockerArchiveRefusesZstdLayers) {
  Fixture f;
  std::vector<Descriptor> layers = f.layers;
  layers[0].media_type = std::string(kOciLayerTarZstd);
  auto m = storeImage(*f.store, f.config, layers);
  ASSERT_TRUE(m.isOk());
  fs::path tar = f.dir / "docker.tar";
  auto s = writeDockerArchive(*f.store, *m, {"x:y"}, tar);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(fs::exists(tar));
}

TEST(Layout, ExportOfMissingBlobFailsAndLeavesNoArchive) {
  Fixture f;
  ASSERT_TRUE(f.store->remove(f.layers[0].digest).isOk());
  fs::path tar = f.dir / "image.tar";
  EXPECT_EQ(writeOciArchive(*f.store, f.manifest, "x", tar).code(), StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(tar));
  size_t leftovers = 0;
  for (const auto& e : fs::directory_iterator(f.dir.path())) {
    leftovers += e.path().filename().string().starts_with(".image.tar") ? 1 : 0;
  }
  EXPECT_EQ(leftovers, 0u);
}

}  // namespace
}  // namespace lf::oci
