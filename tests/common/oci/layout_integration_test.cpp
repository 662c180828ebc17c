// Exported images read by the real peers: umoci unpacks an OCI layout into exactly the tree the
// layer was made from; skopeo reads the oci-archive and docker-archive tarballs.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "common/blob/directory_blob_store.h"
#include "common/layer/layer_writer.h"
#include "common/oci/layout.h"
#include "tests/support/shell.h"
#include "tests/support/temp_dir.h"

namespace lf::oci {
namespace {

namespace fs = std::filesystem;
using lf::testing::TempDir;

using Output = lf::testing::ShellResult;

Output sh(const std::string& command) { return lf::testing::runShell(command); }

bool haveTool(const std::string& name) { return sh("command -v " + name).code == 0; }

// One line per entry below `root`: path, type, permission bits, owner, mtime and content (or
// symlink target), so two trees compare equal exactly when a container would see the same files.
std::map<std::string, std::string> describeTree(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    struct stat st {};
    EXPECT_EQ(::lstat(it->path().c_str(), &st), 0);
    std::string d = std::to_string(st.st_mode) + " " + std::to_string(st.st_uid) + ":" +
                    std::to_string(st.st_gid);
    if (!S_ISDIR(st.st_mode)) {
      d += " mtime=" + std::to_string(st.st_mtime);
    }
    if (S_ISLNK(st.st_mode)) {
      d += " -> " + fs::read_symlink(it->path()).string();
    } else if (S_ISREG(st.st_mode)) {
      d += " nlink=" + std::to_string(st.st_nlink) + " " +
           Digest::sha256Of(lf::testing::readFile(it->path())).toString();
    }
    out[fs::relative(it->path(), root).string()] = d;
  }
  return out;
}

void makeTree(const TempDir& dir, const fs::path& root) {
  dir.write("tree/bin/tool", "#!/bin/sh\nexit 0\n");
  fs::permissions(root / "bin/tool", fs::perms(0755));
  dir.write("tree/etc/config", "key=value\n");
  fs::permissions(root / "etc/config", fs::perms(0600));
  dir.write("tree/empty", "");
  dir.write("tree/deep/a/b/c/d/file with spaces and ünïcode", "x");
  std::string big(3 << 20, '\0');
  std::mt19937 rng(42);
  for (auto& c : big) {
    c = static_cast<char>(rng());
  }
  dir.write("tree/data/big.bin", big);
  fs::create_symlink("../bin/tool", root / "etc/tool-link");
  fs::create_symlink("/etc/config", root / "abs-link");
  fs::create_hard_link(root / "etc/config", root / "etc/config-hardlink");
  fs::create_directories(root / "emptydir");
  fs::permissions(root / "emptydir", fs::perms(01777));
  if (::geteuid() == 0) {
    EXPECT_EQ(::lchown((root / "data/big.bin").c_str(), 1234, 5678), 0);
  }
  // Whole-second mtimes in the past: the layer keeps seconds.
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    struct timespec times[2] = {{1600000000, 0}, {1600000000, 0}};
    ::utimensat(AT_FDCWD, it->path().c_str(), times, AT_SYMLINK_NOFOLLOW);
  }
}

struct BuiltImage {
  std::unique_ptr<blob::DirectoryBlobStore> store;
  Descriptor manifest;
};

BuiltImage buildImage(const TempDir& dir, const fs::path& root) {
  BuiltImage out;
  out.store = std::move(blob::DirectoryBlobStore::open(dir / "store")).value();
  auto layer = layer::writeLayer(root, layer::LayerOptions{}, *out.store);
  EXPECT_TRUE(layer.isOk()) << layer.status().toString();
  ImageConfig config;
  config.architecture = "amd64";
  config.os = "linux";
  config.config.cmd = std::vector<std::string>{"/bin/tool"};
  config.rootfs.diff_ids = {layer->diff_id};
  auto m = storeImage(*out.store, config, {{layer->media_type, layer->digest, layer->size}});
  EXPECT_TRUE(m.isOk()) << m.status().toString();
  out.manifest = *m;
  return out;
}

TEST(LayoutIntegration, UmociUnpackGivesExactlyTheTree) {
  if (!haveTool("umoci")) {
    GTEST_SKIP() << "umoci is not installed";
  }
  TempDir dir;
  fs::path root = dir / "tree";
  makeTree(dir, root);
  BuiltImage image = buildImage(dir, root);
  fs::path layout = dir / "layout";
  ASSERT_TRUE(writeOciLayout(*image.store, image.manifest, "test", layout).isOk());

  fs::path bundle = dir / "bundle";
  std::string rootless = ::geteuid() == 0 ? "" : "--rootless ";
  auto r =
      sh("umoci unpack " + rootless + "--image " + layout.string() + ":test " + bundle.string());
  ASSERT_EQ(r.code, 0) << r.text;
  auto want = describeTree(root);
  auto got = describeTree(bundle / "rootfs");
  if (::geteuid() != 0) {
    GTEST_SKIP() << "not root: umoci --rootless cannot restore ownership, tree not compared";
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(got.size(), want.size());
}

TEST(LayoutIntegration, SkopeoReadsOciArchiveAndDockerArchive) {
  if (!haveTool("skopeo")) {
    GTEST_SKIP() << "skopeo is not installed";
  }
  TempDir dir;
  fs::path root = dir / "tree";
  makeTree(dir, root);
  BuiltImage image = buildImage(dir, root);

  fs::path oci_tar = dir / "image.tar";
  ASSERT_TRUE(writeOciArchive(*image.store, image.manifest, "v1", oci_tar).isOk());
  auto r = sh("skopeo inspect oci-archive:" + oci_tar.string() + ":v1");
  ASSERT_EQ(r.code, 0) << r.text;
  auto info = nlohmann::json::parse(r.text);
  EXPECT_EQ(info["Digest"], image.manifest.digest.toString());
  EXPECT_EQ(info["Architecture"], "amd64");
  ASSERT_EQ(info["Layers"].size(), 1u);

  fs::path docker_tar = dir / "docker.tar";
  ASSERT_TRUE(
      writeDockerArchive(*image.store, image.manifest, {"example/tree:v1"}, docker_tar).isOk());
  // Selecting the image by its RepoTags entry proves skopeo read manifest.json's tags.
  r = sh("skopeo inspect docker-archive:" + docker_tar.string() + ":example/tree:v1");
  ASSERT_EQ(r.code, 0) << r.text;
  info = nlohmann::json::parse(r.text);
  EXPECT_EQ(info["Layers"].size(), 1u);
  EXPECT_EQ(info["Architecture"], "amd64");
  // skopeo can copy it out again (it decompresses and checks the layer against diff_ids).
  r = sh("skopeo copy docker-archive:" + docker_tar.string() + " oci:" + (dir / "copy").string() +
         ":v1");
  EXPECT_EQ(r.code, 0) << r.text;
  auto copied = readOciLayout(dir / "copy", {.ref_name = "v1"});
  EXPECT_TRUE(copied.isOk()) << copied.status().toString();
}

}  // namespace
}  // namespace lf::oci
