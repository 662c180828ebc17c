// Layer store tests that need root: overlay whiteout markers (0:0 character devices and
// trusted.* xattrs), ownership, and mounting a lease's dirs as overlayfs lowerdirs.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "tests/support/temp_dir.h"
#include "tests/worker/layer_store/layer_store_fixture.h"
#include "worker/layer_store/layer_store.h"

namespace lf::worker::testing {
namespace {

namespace fs = std::filesystem;
using lf::testing::readFile;

class LayerStoreRootTest : public LayerStoreTest {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root: whiteout devices, trusted.* xattrs and chown";
    }
    LayerStoreTest::SetUp();
  }
};

std::string xattr(const fs::path& path, const char* name) {
  char buf[64];
  ssize_t n = lgetxattr(path.c_str(), name, buf, sizeof buf);
  return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

bool isWhiteout(const fs::path& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

// Mounts `lowerdirs` (relative to `cwd`) read-only on `merged` in a child with its own mount
// namespace and returns its exit status after `check` ran there: 0 ok, 10 overlay unavailable,
// 11 mount failed otherwise, 12 check failed.
template <typename Check>
int mountAndCheck(const fs::path& cwd, const std::vector<std::string>& lowerdirs,
                  const fs::path& merged, Check check) {
  std::string options = "lowerdir=";
  for (size_t i = 0; i < lowerdirs.size(); ++i) {
    options += (i > 0 ? ":" : "") + lowerdirs[i];
  }
  pid_t pid = fork();
  if (pid == 0) {
    if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr)) {
      _exit(10);
    }
    if (chdir(cwd.c_str()) != 0) {
      _exit(11);
    }
    if (mount("overlay", merged.c_str(), "overlay", MS_RDONLY, options.c_str()) != 0) {
      _exit(errno == ENODEV || errno == EPERM ? 10 : 11);
    }
    _exit(check() ? 0 : 12);
  }
  int wstatus = 0;
  if (pid < 0 || waitpid(pid, &wstatus, 0) != pid || !WIFEXITED(wstatus)) {
    return -1;
  }
  return WEXITSTATUS(wstatus);
}

TEST_F(LayerStoreRootTest, WhiteoutsBecomeOverlayMarkersAndOwnersAreKept) {
  LayerRef base = makeLayer({{"keep", "k"}, {"gone", "g"}, {"dir/old", "o"}});
  fs::path mid_dir = makeDir({{"owned", "o"}, {"dir/mid", "m"}});
  ASSERT_EQ(lchown((mid_dir / "owned").c_str(), 1234, 5678), 0);
  LayerRef mid = layerOf(mid_dir);
  LayerRef top = makeLayer({{".wh.gone", ""}, {"dir/.wh..wh..opq", ""}, {"dir/new", "n"}});
  auto store = openStore();
  ASSERT_TRUE(store);
  auto lease = store->acquire({base, mid, top});
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  ASSERT_EQ(lease->dirs().size(), 3u);
  // Bottom-first, each dir holding exactly its own layer.
  EXPECT_EQ(readFile(lease->dirs()[0] / "gone"), "g");
  EXPECT_EQ(readFile(lease->dirs()[0] / "dir" / "old"), "o");
  EXPECT_EQ(readFile(lease->dirs()[1] / "dir" / "mid"), "m");
  EXPECT_FALSE(fs::exists(lease->dirs()[1] / "keep"));
  struct stat st;
  ASSERT_EQ(lstat((lease->dirs()[1] / "owned").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  const fs::path& upper = lease->dirs()[2];
  EXPECT_TRUE(isWhiteout(upper / "gone"));
  EXPECT_FALSE(fs::exists(upper / ".wh.gone"));
  EXPECT_EQ(xattr(upper / "dir", "trusted.overlay.opaque"), "y");
  EXPECT_EQ(xattr(lease->dirs()[1] / "dir", "trusted.overlay.opaque"), "");
  EXPECT_FALSE(fs::exists(upper / "dir" / ".wh..wh..opq"));
  EXPECT_EQ(readFile(upper / "dir" / "new"), "n");
}

// Mounts the lease's dirs as overlay lowerdirs (in a child with its own mount namespace, so
// nothing stays mounted if the test dies) and checks the merged view.
TEST_F(LayerStoreRootTest, LeaseDirsWorkAsOverlayLowerDirs) {
  LayerRef base = makeLayer({{"keep", "k"}, {"gone", "g"}, {"dir/old", "o"}});
  LayerRef top = makeLayer({{".wh.gone", ""}, {"dir/.wh..wh..opq", ""}, {"dir/new", "n"}});
  auto store = openStore();
  ASSERT_TRUE(store);
  auto lease = store->acquire({base, top});
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  fs::path merged = tmp_ / "merged";
  fs::create_directories(merged);
  // Overlay lists lowerdirs top-first; short relative names keep the option string small.
  auto rel = lease->relativeDirs();
  EXPECT_EQ(lease->overlayLowerDirs(), (std::vector<std::string>{rel[1], rel[0]}));
  int rc = mountAndCheck(store->layersDir(), lease->overlayLowerDirs(), merged, [&] {
    return readFile(merged / "keep") == "k" && !fs::exists(merged / "gone") &&
           !fs::exists(merged / "dir" / "old") && readFile(merged / "dir" / "new") == "n";
  });
  if (rc == 10) {
    GTEST_SKIP() << "overlayfs mount not available here";
  }
  EXPECT_EQ(rc, 0);
}

TEST_F(LayerStoreRootTest, ARepeatedLayerMountsThroughOverlayLowerDirs) {
  LayerRef a = makeLayer({{"f", "a"}, {"only_a", "a"}});
  LayerRef b = makeLayer({{"f", "b"}, {".wh.only_a", ""}});
  auto store = openStore();
  ASSERT_TRUE(store);
  auto lease = store->acquire({a, b, a});  // a, then b over it, then a again on top
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  fs::path merged = tmp_ / "merged";
  fs::create_directories(merged);
  int rc = mountAndCheck(store->layersDir(), lease->overlayLowerDirs(), merged, [&] {
    return readFile(merged / "f") == "a" && readFile(merged / "only_a") == "a";
  });
  if (rc == 10) {
    GTEST_SKIP() << "overlayfs mount not available here";
  }
  EXPECT_EQ(rc, 0);
  // All three dirs as given would be refused by overlayfs (the same dir twice).
  auto rel = lease->relativeDirs();
  EXPECT_EQ(
      mountAndCheck(store->layersDir(), {rel[2], rel[1], rel[0]}, merged, [] { return true; }), 11);
}

TEST_F(LayerStoreRootTest, AdoptsAnOverlayUpperDir) {
  fs::path upper = makeDir({{"dir/new", "n"}});
  ASSERT_EQ(mknod((upper / "gone").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
  ASSERT_EQ(lsetxattr((upper / "dir").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
  LayerRef ref = layerOf(upper, /*overlay_upper=*/true);
  auto store = openStore();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->adopt(ref, upper).isOk());
  EXPECT_EQ(store->stats().bytes, 1u);
  auto lease = store->acquire({ref});
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  EXPECT_TRUE(isWhiteout(lease->dirs()[0] / "gone"));
  EXPECT_EQ(xattr(lease->dirs()[0] / "dir", "trusted.overlay.opaque"), "y");
  EXPECT_EQ(store->stats().misses, 0u);
  // The adopted layer is byte-identical to what unpacking its blob gives: same diff ID.
  lease->release();
  auto zero = openStore(0);  // evicts it
  ASSERT_TRUE(zero);
  ASSERT_FALSE(fs::exists(root() / "l" / LayerStore::layerName(ref.diff_id)));
  auto again = zero->acquire({ref});
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_TRUE(isWhiteout(again->dirs()[0] / "gone"));
  EXPECT_EQ(xattr(again->dirs()[0] / "dir", "trusted.overlay.opaque"), "y");
}

// Sets or clears the immutable flag (chattr +i); false where the filesystem has no such flag.
bool setImmutable(const fs::path& path, bool on) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return false;
  }
  int flags = 0;
  bool ok = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
  flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
  ok = ok && ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
  close(fd);
  return ok;
}

TEST_F(LayerStoreRootTest, OpenGoesOnPastALeftoverItCannotDelete) {
  fs::path stuck = root() / "tmp" / "unpack-stuck1" / "fs" / "f";
  ASSERT_TRUE(lf::testing::writeFile(stuck, "x"));
  ASSERT_TRUE(lf::testing::writeFile(root() / "tmp" / "unpack-dead01" / "fs" / "f", "x"));
  if (!setImmutable(stuck, true)) {
    GTEST_SKIP() << "no immutable flag on this filesystem";
  }
  LayerRef a = makeLayer({{"f", "a"}});
  auto store = openStore();
  EXPECT_TRUE(store);
  EXPECT_TRUE(fs::exists(stuck));
  EXPECT_FALSE(fs::exists(root() / "tmp" / "unpack-dead01"));
  if (store) {
    EXPECT_TRUE(store->acquire({a}).isOk());
  }
  ASSERT_TRUE(setImmutable(stuck, false));  // so that the temp dir can go
}

}  // namespace
}  // namespace lf::worker::testing
