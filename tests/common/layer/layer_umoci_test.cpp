// Integration: a two-layer image whose second layer comes from an overlayfs-upper-style
// directory (a 0:0 character device deleting a file, an opaque directory replacing a directory)
// is exported as an OCI layout and unpacked by umoci, an independent implementation; the rootfs
// must be exactly the expected tree.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>

#include "common/blob/directory_blob_store.h"
#include "common/layer/layer_reader.h"
#include "common/layer/layer_writer.h"
#include "common/oci/layout.h"
#include "common/oci/media_types.h"
#include "tests/common/layer/layer_test_util.h"
#include "tests/support/temp_dir.h"

namespace lf::layer {
namespace {

namespace fs = std::filesystem;
using testing::describeTree;
using testing::runCommand;
using testing::shellQuote;

void setMtime(const fs::path& p, time_t t) {
  struct timespec times[2] = {{t, 0}, {t, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, p.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << p;
}

// The lower layer's tree, written into `root` (used for the layer and for the expectation).
void makeBase(const lf::testing::TempDir& t, const std::string& root) {
  t.write(root + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
  t.write(root + "/etc/shadow", "root:*:19000::::::\n");
  t.write(root + "/opt/app/old.conf", "old");
  t.write(root + "/opt/app/lib/libold.so", "elf-old");
  t.write(root + "/bin/busybox", "busybox-binary");
  fs::create_hard_link(t / (root + "/bin/busybox"), t / (root + "/bin/sh"));
  fs::create_symlink("busybox", t / (root + "/bin/ls"));
  ASSERT_EQ(chmod((t / (root + "/bin/busybox")).c_str(), 0755), 0);
  ASSERT_EQ(chown((t / (root + "/etc/shadow")).c_str(), 0, 42), 0);
  ASSERT_EQ(chmod((t / (root + "/etc/shadow")).c_str(), 0640), 0);
}

TEST(LayerUmoci, TwoLayerImageUnpacksIdentically) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "needs root: 0:0 character devices and trusted.overlay.* xattrs";
  }
  if (runCommand("command -v umoci").exit_code != 0) {
    GTEST_SKIP() << "umoci is not installed";
  }
  lf::testing::TempDir t;
  makeBase(t, "base");

  // Layer 2 as an overlay upper dir after: rm /etc/shadow; rm -rf /opt/app && mkdir -p
  // /opt/app && echo new > /opt/app/new.conf; echo hi > /etc/motd; chmod 4755 /bin/busybox.
  fs::create_directories(t / "upper/etc");
  ASSERT_EQ(mknod((t / "upper/etc/shadow").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
  t.write("upper/opt/app/new.conf", "new");
  ASSERT_EQ(setxattr((t / "upper/opt/app").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
  t.write("upper/etc/motd", "hi\n");
  t.write("upper/bin/busybox", "busybox-binary");
  ASSERT_EQ(chmod((t / "upper/bin/busybox").c_str(), 04755), 0);

  // The expected result, built by hand from the base.
  makeBase(t, "expected");
  fs::remove(t / "expected/etc/shadow");
  fs::remove_all(t / "expected/opt/app");
  t.write("expected/opt/app/new.conf", "new");
  t.write("expected/etc/motd", "hi\n");
  fs::remove(t / "expected/bin/busybox");  // copied up: the hardlink to bin/sh is broken
  t.write("expected/bin/busybox", "busybox-binary");
  ASSERT_EQ(chmod((t / "expected/bin/busybox").c_str(), 04755), 0);
  const time_t kEpoch = 1700000000;
  for (const char* root : {"base", "upper", "expected"}) {
    for (const auto& e : fs::recursive_directory_iterator(t / root)) {
      setMtime(e.path(), kEpoch + 100);
    }
  }

  auto store = blob::DirectoryBlobStore::open(t / "store", {.fsync = false});
  ASSERT_TRUE(store.isOk()) << store.status().toString();
  LayerOptions options;
  options.source_date_epoch = kEpoch;
  auto l1 = writeLayer(t / "base", options, **store);
  ASSERT_TRUE(l1.isOk()) << l1.status().toString();
  options.overlay_upper = true;
  auto l2 = writeLayer(t / "upper", options, **store);
  ASSERT_TRUE(l2.isOk()) << l2.status().toString();

  oci::ImageConfig config;
  config.created = "2023-11-14T22:13:20Z";
  config.architecture = "amd64";
  config.os = "linux";
  config.rootfs.diff_ids = {l1->diff_id, l2->diff_id};
  std::vector<oci::Descriptor> layers;
  for (const LayerInfo& l : {*l1, *l2}) {
    oci::Descriptor d;
    d.media_type = l.media_type;
    d.digest = l.digest;
    d.size = l.size;
    layers.push_back(d);
  }
  auto manifest = oci::storeImage(**store, config, layers);
  ASSERT_TRUE(manifest.isOk()) << manifest.status().toString();
  ASSERT_TRUE(oci::writeOciLayout(**store, *manifest, "test", t / "layout").isOk());

  auto unpack = runCommand("umoci unpack --image " + shellQuote((t / "layout").string()) +
                           ":test " + shellQuote((t / "bundle").string()));
  ASSERT_EQ(unpack.exit_code, 0) << unpack.output;

  for (const auto& e : fs::recursive_directory_iterator(t / "expected")) {
    // The clamp: every mtime was after the epoch, so the layers carry the epoch.
    setMtime(e.path(), kEpoch);
  }
  const std::string expected = describeTree(t / "expected");
  ASSERT_NE(expected.find("opt/app/new.conf file 0644"), std::string::npos) << expected;
  ASSERT_EQ(expected.find("shadow"), std::string::npos) << expected;
  ASSERT_EQ(expected.find("old"), std::string::npos) << expected;
  EXPECT_EQ(describeTree(t / "bundle/rootfs"), expected);

  // Our own unpack of the same blobs agrees with umoci.
  ASSERT_TRUE(
      unpackLayers(**store, {l1->digest, l2->digest}, t / "ours", {}, {l1->diff_id, l2->diff_id})
          .isOk());
  EXPECT_EQ(describeTree(t / "ours"), expected);
}

}  // namespace
}  // namespace lf::layer
