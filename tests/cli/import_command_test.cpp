// `layerfarm import` driven through runCli, checked by reading what it wrote back with the OCI
// readers (no external tools; see import_integration_test.cpp for umoci/skopeo/runc).

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/app.h"
#include "common/blob/directory_blob_store.h"
#include "common/layer/layer_reader.h"
#include "common/oci/layout.h"
#include "common/oci/media_types.h"
#include "tests/support/temp_dir.h"

namespace lf::cli {
namespace {

namespace fs = std::filesystem;
using lf::testing::readFile;
using lf::testing::TempDir;

struct CliResult {
  int code;
  std::string out;
  std::string err;
};

CliResult run(std::vector<std::string> args) {
  args.insert(args.begin(), "layerfarm");
  std::vector<const char*> argv;
  for (const auto& a : args) {
    argv.push_back(a.c_str());
  }
  std::ostringstream out;
  std::ostringstream err;
  int code = runCli(static_cast<int>(argv.size()), argv.data(), Io{&out, &err});
  return {code, out.str(), err.str()};
}

void makeRootfs(const TempDir& dir) {
  dir.write("rootfs/bin/hello", "#!/bin/sh\necho hi\n");
  dir.write("rootfs/etc/motd", "welcome\n");
  fs::permissions(dir / "rootfs/bin/hello", fs::perms(0755));
  fs::create_symlink("hello", dir / "rootfs/bin/hi");
}

// Unpacks the image's single layer into `target` with the layer engine.
void unpackImage(const fs::path& layout, const oci::LayoutImage& image, const fs::path& target) {
  auto store = blob::DirectoryBlobStore::open(layout, {.create = false, .read_only = true});
  ASSERT_TRUE(store.isOk());
  std::vector<Digest> layers;
  for (const auto& l : image.manifest.layers) {
    layers.push_back(l.digest);
  }
  Status s = layer::unpackLayers(**store, layers, target, layer::ApplyOptions{},
                                 image.config.rootfs.diff_ids);
  ASSERT_TRUE(s.isOk()) << s.toString();
}

TEST(ImportCommand, DirectoryToOciLayoutWithChanges) {
  TempDir dir;
  makeRootfs(dir);
  fs::path layout = dir / "layout";
  auto r = run({"import",     (dir / "rootfs").string(),
                "-t",         "example.com/team/app:1.2",
                "--output",   "type=oci,dest=" + layout.string(),
                "--platform", "linux/arm64/v8",
                "--change",   "ENV PATH=/bin GREETING=hi",
                "--change",   "CMD [\"/bin/hello\", \"$GREETING\"]",
                "--change",   "WORKDIR /srv",
                "--change",   "LABEL a=b",
                "--change",   "EXPOSE 8080",
                "--change",   "USER 1000"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("imported example.com/team/app:1.2 sha256:"), std::string::npos) << r.out;

  auto image = oci::readOciLayout(layout, {.ref_name = "1.2"});
  ASSERT_TRUE(image.isOk()) << image.status().toString();
  const oci::ImageConfig& c = image->config;
  EXPECT_EQ(c.os, "linux");
  EXPECT_EQ(c.architecture, "arm64");
  EXPECT_EQ(c.variant, "v8");
  EXPECT_EQ(c.config.env, (std::vector<std::string>{"PATH=/bin", "GREETING=hi"}));
  // Exec-form CMD is not expanded, as in a Dockerfile.
  EXPECT_EQ(*c.config.cmd, (std::vector<std::string>{"/bin/hello", "$GREETING"}));
  EXPECT_EQ(c.config.working_dir, "/srv");
  EXPECT_EQ(c.config.labels.at("a"), "b");
  EXPECT_EQ(c.config.exposed_ports, std::set<std::string>{"8080/tcp"});
  EXPECT_EQ(c.config.user, "1000");
  ASSERT_EQ(c.history.size(), 1u);
  EXPECT_FALSE(c.history[0].empty_layer);
  ASSERT_EQ(image->manifest.layers.size(), 1u);
  EXPECT_EQ(image->manifest.layers[0].media_type, oci::kOciLayerTarGzip);
  EXPECT_EQ(image->manifest.config.media_type, oci::kOciConfig);

  fs::path unpacked = dir / "unpacked";
  unpackImage(layout, *image, unpacked);
  EXPECT_EQ(readFile(unpacked / "bin/hello"), "#!/bin/sh\necho hi\n");
  EXPECT_EQ(readFile(unpacked / "etc/motd"), "welcome\n");
  EXPECT_EQ(fs::read_symlink(unpacked / "bin/hi"), "hello");
  EXPECT_EQ(fs::status(unpacked / "bin/hello").permissions() & fs::perms::owner_exec,
            fs::perms::owner_exec);
}

TEST(ImportCommand, TarSourceAndReproducibleDigests) {
  TempDir dir;
  makeRootfs(dir);
  std::string tar = (dir / "rootfs.tar").string();
  ASSERT_EQ(std::system(("tar -C " + (dir / "rootfs").string() + " -cf " + tar + " .").c_str()), 0);
  ASSERT_EQ(::setenv("SOURCE_DATE_EPOCH", "1700000000", 1), 0);
  auto a = run({"import", tar, "-t", "app", "--output", "type=oci,dest=" + (dir / "a").string()});
  auto b = run({"import", (dir / "rootfs").string(), "-t", "app", "--output",
                "type=oci,dest=" + (dir / "b").string()});
  ::unsetenv("SOURCE_DATE_EPOCH");
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(b.code, 0) << b.err;
  auto ia = oci::readOciLayout(dir / "a", {.ref_name = "latest"});
  auto ib = oci::readOciLayout(dir / "b", {.ref_name = "latest"});
  ASSERT_TRUE(ia.isOk()) << ia.status().toString();
  ASSERT_TRUE(ib.isOk()) << ib.status().toString();
  EXPECT_EQ(ia->config.created, "2023-11-14T22:13:20Z");
  // The tar and the directory hold the same tree, so the layers are byte-identical (the
  // configs differ only in the history's source name).
  EXPECT_EQ(ia->manifest.layers, ib->manifest.layers);
  EXPECT_EQ(ia->config.rootfs, ib->config.rootfs);
  // The same import again gives the same image, byte for byte.
  ASSERT_EQ(::setenv("SOURCE_DATE_EPOCH", "1700000000", 1), 0);
  auto c = run({"import", tar, "-t", "app", "--output", "type=oci,dest=" + (dir / "c").string()});
  ::unsetenv("SOURCE_DATE_EPOCH");
  ASSERT_EQ(c.code, 0) << c.err;
  auto ic = oci::readOciLayout(dir / "c", {.ref_name = "latest"});
  ASSERT_TRUE(ic.isOk());
  EXPECT_EQ(ic->manifest_descriptor.digest, ia->manifest_descriptor.digest);
  fs::path unpacked = dir / "unpacked";
  unpackImage(dir / "a", *ia, unpacked);
  EXPECT_EQ(readFile(unpacked / "etc/motd"), "welcome\n");
}

TEST(ImportCommand, OciArchiveAndDockerArchive) {
  TempDir dir;
  makeRootfs(dir);
  fs::path oci_tar = dir / "image.tar";
  auto a = run({"import", (dir / "rootfs").string(), "-t", "app:v1", "--output",
                "type=oci,dest=" + oci_tar.string()});
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_TRUE(fs::is_regular_file(oci_tar));

  fs::path docker_tar = dir / "docker.tar";
  auto b = run({"import", (dir / "rootfs").string(), "-t", "app:v1", "--output",
                "type=docker,dest=" + docker_tar.string()});
  ASSERT_EQ(b.code, 0) << b.err;
  // manifest.json names the tag and files that exist in the archive.
  struct archive* ar = archive_read_new();
  archive_read_support_format_tar(ar);
  ASSERT_EQ(archive_read_open_filename(ar, docker_tar.c_str(), 65536), ARCHIVE_OK);
  std::map<std::string, std::string> files;
  struct archive_entry* e = nullptr;
  while (archive_read_next_header(ar, &e) == ARCHIVE_OK) {
    std::string data(static_cast<size_t>(archive_entry_size(e)), '\0');
    if (!data.empty()) {
      archive_read_data(ar, data.data(), data.size());
    }
    files[archive_entry_pathname(e)] = data;
  }
  archive_read_free(ar);
  auto manifest = nlohmann::json::parse(files.at("manifest.json"));
  EXPECT_EQ(manifest[0]["RepoTags"][0], "app:v1");
  EXPECT_TRUE(files.count(manifest[0]["Config"].get<std::string>()));
  EXPECT_TRUE(files.count(manifest[0]["Layers"][0].get<std::string>()));
}

TEST(ImportCommand, UsageErrorsAreClear) {
  TempDir dir;
  makeRootfs(dir);
  std::string src = (dir / "rootfs").string();
  std::string out = "type=oci,dest=" + (dir / "o").string();
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"import", src, "-t", "app", "--output", out, "--change", "RUN true"},
       "--change 1: instruction RUN is not allowed"},
      {{"import", src, "-t", "app", "--output", out, "--change", "ENV A=1", "--change",
        "EXPOSE 99999"},
       "--change 2"},
      {{"import", src, "-t", "app", "--output", "type=tarball,dest=x"},
       "type must be oci or docker"},
      {{"import", src, "-t", "app", "--output", "type=oci"}, "dest=PATH is required"},
      {{"import", src, "-t", "app", "--output", "type=oci,dest=x,push=true"}, "unknown key"},
      {{"import", src, "-t", "App:1", "--output", out}, "not allowed in an image name"},
      {{"import", src, "-t", "app:-bad", "--output", out}, "the tag must"},
      {{"import", src, "-t", "app", "--output", out, "--platform", "linux"}, "os/architecture"},
      {{"import", (dir / "missing").string(), "-t", "app", "--output", out}, "does not exist"},
      {{"import", src, "-t", "app", "--output", "type=docker,dest=x.tar", "--compression", "zstd"},
       "zstd"},
  };
  for (const auto& c : cases) {
    auto r = run(c.args);
    EXPECT_EQ(r.code, 1) << c.message;
    EXPECT_NE(r.err.find(c.message), std::string::npos)
        << "want: " << c.message << "\ngot: " << r.err;
  }
  EXPECT_FALSE(fs::exists(dir / "o"));
}

TEST(ImportCommand, HostileTarCannotEscape) {
  TempDir dir;
  fs::path tar = dir / "evil.tar";
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  ASSERT_EQ(archive_write_open_filename(a, tar.c_str()), ARCHIVE_OK);
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, "../../escaped");
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, 3);
  archive_write_header(a, e);
  archive_write_data(a, "bad", 3);
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);

  auto r = run({"import", tar.string(), "-t", "evil", "--output",
                "type=oci,dest=" + (dir / "out").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("escaped"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir.path().parent_path() / "escaped"));
  EXPECT_FALSE(fs::exists(dir / "out"));
}

}  // namespace
}  // namespace lf::cli
