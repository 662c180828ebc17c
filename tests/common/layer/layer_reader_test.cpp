#include "common/layer/layer_reader.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>

#include "common/blob/directory_blob_store.h"
#include "common/layer/layer_writer.h"
#include "tests/common/layer/layer_test_util.h"
#include "tests/support/temp_dir.h"

namespace lf::layer {
namespace {

using testing::describeTree;
using testing::makeTarWithPython;
using testing::runCommand;
using testing::shellQuote;
using testing::slurp;

namespace fs = std::filesystem;

// A hostile-layer fixture: `target` is where layers go, `outside` a sibling that must stay
// untouched, with a marker file a successful escape would overwrite.
class HostileLayer : public ::testing::Test {
 protected:
  void SetUp() override {
    target_ = tmp_ / "target";
    outside_ = tmp_ / "outside";
    fs::create_directories(target_);
    tmp_.write("outside/marker", "original");
    before_ = describeTree(outside_);
  }
  // Applies the tar and returns the status; always checks that nothing outside changed.
  Status apply(const std::string& python_body, const std::string& mode = "w") {
    auto tar = tmp_ / "hostile.tar";
    if (!makeTarWithPython(tar, python_body, mode)) {
      return internalError("python failed");
    }
    return applyLayerFile(tar, target_, {}).status();
  }
  void TearDown() override {
    EXPECT_EQ(describeTree(outside_), before_) << "something was written outside the target";
    EXPECT_EQ(slurp(outside_ / "marker"), "original");
    EXPECT_FALSE(fs::exists(tmp_ / "escaped"));
    EXPECT_FALSE(fs::exists("/escaped-by-layerfarm-test"));
  }

  lf::testing::TempDir tmp_;
  fs::path target_;
  fs::path outside_;
  std::string before_;
};

TEST_F(HostileLayer, DotDotTraversalIsRejected) {
  Status s = apply("add('a/../../outside/marker', b'pwned')");
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("a/../../outside/marker"), std::string::npos) << s.toString();
  EXPECT_NE(s.message().find(".."), std::string::npos);
}

TEST_F(HostileLayer, AbsolutePathIsRejected) {
  Status s = apply("add('" + (outside_ / "marker").string() + "', b'pwned')");
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("absolute"), std::string::npos) << s.toString();
  EXPECT_NE(s.message().find((outside_ / "marker").string()), std::string::npos);
}

TEST_F(HostileLayer, SymlinkParentCannotLeadOutside) {
  // evil -> the real outside dir (absolute) and rel -> ../outside: under container semantics
  // both resolve inside the target, so the writes land inside (or fail), never outside.
  Status s = apply("add('evil', type=tarfile.SYMTYPE, linkname='" + outside_.string() +
                   "')\n"
                   "add('rel', type=tarfile.SYMTYPE, linkname='../../../outside')\n"
                   "add('evil/marker', b'pwned')\n"
                   "add('rel/marker', b'pwned2')\n");
  if (s.isOk()) {
    // Resolved inside: target/<outside path>/marker and target/outside/marker.
    EXPECT_EQ(slurp(target_ / outside_.relative_path() / "marker"), "pwned");
    EXPECT_EQ(slurp(target_ / "outside/marker"), "pwned2");
  } else {
    EXPECT_NE(s.message().find("marker"), std::string::npos) << s.toString();
  }
}

TEST_F(HostileLayer, SymlinkToRootThenWriteStaysInside) {
  Status s = apply(
      "add('up', type=tarfile.SYMTYPE, linkname='/')\n"
      "add('up/escaped-by-layerfarm-test', b'x')\n");
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(slurp(target_ / "escaped-by-layerfarm-test"), "x");
}

TEST_F(HostileLayer, SymlinkThenFileReplacesTheLinkNotItsTarget) {
  Status s = apply(
      "add('m', type=tarfile.SYMTYPE, linkname='../outside/marker')\n"
      "add('m', b'pwned')\n");
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(slurp(target_ / "m"), "pwned");
  EXPECT_FALSE(fs::is_symlink(target_ / "m"));
}

TEST_F(HostileLayer, HardlinkOutsideIsRejected) {
  Status s = apply("add('h', type=tarfile.LNKTYPE, linkname='../outside/marker')");
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("'h'"), std::string::npos) << s.toString();
  Status abs =
      apply("add('h2', type=tarfile.LNKTYPE, linkname='" + (outside_ / "marker").string() + "')");
  ASSERT_FALSE(abs.isOk());
  EXPECT_NE(abs.message().find("absolute"), std::string::npos) << abs.toString();
}

TEST_F(HostileLayer, HardlinkThroughSymlinkStaysInside) {
  // link -> /outside-dir: the hardlink target resolves inside the target, where it is missing.
  Status s = apply("add('l', type=tarfile.SYMTYPE, linkname='" + outside_.string() +
                   "')\n"
                   "add('h', type=tarfile.LNKTYPE, linkname='l/marker')\n");
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("does not exist"), std::string::npos) << s.toString();
}

TEST_F(HostileLayer, HardlinkToNotYetExtractedPathIsRejected) {
  Status s = apply("add('h', type=tarfile.LNKTYPE, linkname='later')\nadd('later', b'data')\n");
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("layer entry 'h'"), std::string::npos) << s.toString();
  EXPECT_NE(s.message().find("does not exist"), std::string::npos);
}

TEST_F(HostileLayer, TruncatedTarNamesTheEntry) {
  auto tar = tmp_ / "full.tar";
  ASSERT_TRUE(makeTarWithPython(tar, "add('ok', b'fine')\nadd('big', b'y' * 100000)"));
  std::string bytes = slurp(tar);
  ASSERT_TRUE(lf::testing::writeFile(tmp_ / "cut.tar", bytes.substr(0, 3000)));
  auto s = applyLayerFile(tmp_ / "cut.tar", target_, {});
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.status().message().find("'big'"), std::string::npos) << s.status().toString();
}

TEST_F(HostileLayer, TruncatedGzipIsDataLoss) {
  auto tar = tmp_ / "full.tar.gz";
  ASSERT_TRUE(makeTarWithPython(tar, "add('a', b'x' * 200000)\nadd('b', b'y')", "w:gz"));
  std::string bytes = slurp(tar);
  ASSERT_TRUE(lf::testing::writeFile(tmp_ / "cut.tgz", bytes.substr(0, bytes.size() - 20)));
  auto s = applyLayerFile(tmp_ / "cut.tgz", target_, {});
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.status().code(), StatusCode::kDataLoss) << s.status().toString();
}

TEST_F(HostileLayer, BadGzipIsRejected) {
  std::string junk = "\x1f\x8b\x08\x00garbage that is not deflate at all";
  ASSERT_TRUE(lf::testing::writeFile(tmp_ / "bad.tgz", junk));
  auto s = applyLayerFile(tmp_ / "bad.tgz", target_, {});
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.status().message().find("gzip"), std::string::npos) << s.status().toString();
}

TEST_F(HostileLayer, NotATarIsRejected) {
  ASSERT_TRUE(lf::testing::writeFile(tmp_ / "x.tar", std::string(3000, 'A')));
  auto s = applyLayerFile(tmp_ / "x.tar", target_, {});
  ASSERT_FALSE(s.isOk());
  EXPECT_FALSE(s.status().message().empty());
}

TEST_F(HostileLayer, HugePaxHeaderIsRejected) {
  // A PAX record claiming an absurd length, then one with 4 MiB of padding in its value.
  Status s = apply(
      "info = tarfile.TarInfo('x')\n"
      "info.pax_headers = {'comment': 'c' * (4 << 20)}\n"
      "t.addfile(info)\n");
  // libarchive accepts long pax records up to its own limit; either way nothing escapes and a
  // failure names where it happened.
  if (!s.isOk()) {
    EXPECT_FALSE(s.message().empty());
  }
  // A real PAX tar whose extended header then claims 8 GiB of records.
  auto pax = tmp_ / "pax.tar";
  ASSERT_TRUE(makeTarWithPython(pax,
                                "info = tarfile.TarInfo('x')\n"
                                "info.pax_headers = {'comment': 'c'}\n"
                                "t.addfile(info)\n"));
  std::string header = slurp(pax);
  ASSERT_EQ(header[156], 'x');
  header.replace(124, 12, std::string("77777777777") + '\0');
  header.replace(148, 8, "        ");
  unsigned sum = 0;
  for (size_t i = 0; i < 512; ++i) {
    sum += static_cast<unsigned char>(header[i]);
  }
  char chk[8];
  snprintf(chk, sizeof(chk), "%06o", sum);
  header.replace(148, 7, std::string(chk, 6) + '\0');
  ASSERT_TRUE(lf::testing::writeFile(tmp_ / "huge.tar", header));
  auto huge = applyLayerFile(tmp_ / "huge.tar", target_, {});
  ASSERT_FALSE(huge.isOk());
  EXPECT_NE(huge.status().message().find("layer tar"), std::string::npos)
      << huge.status().toString();
}

TEST_F(HostileLayer, DeviceNodesOnlyWhenAllowed) {
  auto tar = tmp_ / "dev.tar";
  ASSERT_TRUE(makeTarWithPython(
      tar, "add('null', type=tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)"));
  ASSERT_TRUE(applyLayerFile(tar, target_, {}).isOk());
  EXPECT_FALSE(fs::exists(fs::symlink_status(target_ / "null"))) << "skipped by default";
  auto rejected = applyLayerFile(tar, target_, {.devices = DevicePolicy::kReject});
  ASSERT_FALSE(rejected.isOk());
  EXPECT_NE(rejected.status().message().find("'null'"), std::string::npos);
  if (geteuid() == 0) {
    ASSERT_TRUE(applyLayerFile(tar, target_, {.devices = DevicePolicy::kCreate}).isOk());
    struct stat st;
    ASSERT_EQ(lstat((target_ / "null").c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    EXPECT_EQ(st.st_rdev, makedev(1, 3));
  }
}

TEST_F(HostileLayer, OverlayXattrsFromTheLayerAreIgnored) {
  if (!testing::supportsUserXattrs(tmp_.path())) {
    GTEST_SKIP() << "no user xattrs here";
  }
  Status s = apply(
      "info = tarfile.TarInfo('d'); info.type = tarfile.DIRTYPE\n"
      "info.pax_headers = {'SCHILY.xattr.user.overlay.opaque': 'y',"
      " 'SCHILY.xattr.trusted.overlay.opaque': 'y', 'SCHILY.xattr.user.ok': 'v'}\n"
      "t.addfile(info)\n");
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_LT(getxattr((target_ / "d").c_str(), "user.overlay.opaque", nullptr, 0), 0);
  EXPECT_LT(getxattr((target_ / "d").c_str(), "trusted.overlay.opaque", nullptr, 0), 0);
  EXPECT_EQ(getxattr((target_ / "d").c_str(), "user.ok", nullptr, 0), 1);
}

// Two layers through the public API: whiteouts, opaque dirs, hardlinks, modes, mtimes.
TEST(LayerApply, WhiteoutsAndOpaqueAcrossLayers) {
  lf::testing::TempDir t;
  auto base = t / "base.tar";
  ASSERT_TRUE(makeTarWithPython(base,
                                "add('etc', type=tarfile.DIRTYPE, mode=0o755, mtime=111)\n"
                                "add('etc/passwd', b'root', mode=0o644, mtime=222)\n"
                                "add('etc/shadow', b'secret', mode=0o600)\n"
                                "add('opt', type=tarfile.DIRTYPE, mode=0o755)\n"
                                "add('opt/old1', b'1')\n"
                                "add('opt/sub', type=tarfile.DIRTYPE)\n"
                                "add('opt/sub/old2', b'2')\n"
                                "add('bin', type=tarfile.DIRTYPE, mode=0o755)\n"
                                "add('bin/sh', b'elf', mode=0o755)\n"
                                "add('bin/ash', type=tarfile.LNKTYPE, linkname='bin/sh')\n"
                                "add('bin/link', type=tarfile.SYMTYPE, linkname='sh')\n"
                                "add('srv', type=tarfile.DIRTYPE, mode=0o750, mtime=111)\n"
                                "add('srv/www', b'w', mtime=5)\n"));
  auto top = t / "top.tar";
  ASSERT_TRUE(makeTarWithPython(top,
                                "add('etc/.wh.shadow')\n"
                                "add('opt/new', b'new')\n"
                                "add('opt/.wh..wh..opq')\n"
                                "add('bin/.wh.link')\n"
                                "add('bin/.wh..wh.plnk')\n"
                                "add('etc/passwd', b'root2', mode=0o640, mtime=333)\n"));
  auto rootfs = t / "rootfs";
  Status s = unpackLayerFiles({base, top}, rootfs, {});
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_FALSE(fs::exists(rootfs / "etc/shadow"));
  EXPECT_FALSE(fs::exists(fs::symlink_status(rootfs / "bin/link")));
  EXPECT_FALSE(fs::exists(rootfs / "opt/old1"));
  EXPECT_FALSE(fs::exists(rootfs / "opt/sub"));
  EXPECT_EQ(slurp(rootfs / "opt/new"), "new") << "same-layer entries survive the opaque marker";
  EXPECT_EQ(slurp(rootfs / "etc/passwd"), "root2");
  struct stat st;
  ASSERT_EQ(stat((rootfs / "etc/passwd").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_mtim.tv_sec, 333);
  ASSERT_EQ(stat((rootfs / "srv").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 111) << "directory mtimes are set after their children";
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  struct stat a, b;
  ASSERT_EQ(stat((rootfs / "bin/sh").c_str(), &a), 0);
  ASSERT_EQ(stat((rootfs / "bin/ash").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_FALSE(fs::exists(rootfs / "bin/.wh..wh.plnk"));
  for (const auto& e : fs::recursive_directory_iterator(rootfs)) {
    EXPECT_EQ(e.path().filename().string().rfind(".wh.", 0), std::string::npos) << e.path();
  }
}

TEST(LayerApply, FailedUnpackLeavesNoTarget) {
  lf::testing::TempDir t;
  auto good = t / "good.tar";
  auto bad = t / "bad.tar";
  ASSERT_TRUE(makeTarWithPython(good, "add('a', b'x')"));
  ASSERT_TRUE(makeTarWithPython(bad, "add('b', b'y')\nadd('../c', b'z')"));
  Status s = unpackLayerFiles({good, bad}, t / "rootfs", {});
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("unpack layer 2/2"), std::string::npos) << s.toString();
  EXPECT_NE(s.message().find("'../c'"), std::string::npos) << s.toString();
  EXPECT_FALSE(fs::exists(t / "rootfs"));
  for (const auto& e : fs::directory_iterator(t.path())) {
    EXPECT_EQ(e.path().filename().string().find("partial"), std::string::npos) << e.path();
  }
  ASSERT_TRUE(unpackLayerFiles({good}, t / "rootfs", {}).isOk());
  EXPECT_EQ(unpackLayerFiles({good}, t / "rootfs", {}).code(), StatusCode::kAlreadyExists);
}

TEST(LayerApply, DiffIdIsCheckedAndBlobsAreReadFromTheStore) {
  lf::testing::TempDir t;
  t.write("src/f", "content");
  auto store = blob::DirectoryBlobStore::open(t / "store", {.fsync = false});
  ASSERT_TRUE(store.isOk());
  auto info = writeLayer(t / "src", {.compression = Compression::kZstd}, **store);
  ASSERT_TRUE(info.isOk()) << info.status().toString();
  ASSERT_TRUE(unpackLayers(**store, {info->digest}, t / "ok", {}, {info->diff_id}).isOk());
  EXPECT_EQ(slurp(t / "ok/f"), "content");
  Status wrong = unpackLayers(**store, {info->digest}, t / "bad", {}, {info->digest});
  ASSERT_FALSE(wrong.isOk());
  EXPECT_EQ(wrong.code(), StatusCode::kDataLoss);
  EXPECT_FALSE(fs::exists(t / "bad"));
  auto reader = (*store)->openReader(info->digest);
  ASSERT_TRUE(reader.isOk());
  auto inspected = inspectLayer([&](void* d, size_t n) { return (*reader)->read(d, n); });
  ASSERT_TRUE(inspected.isOk());
  EXPECT_EQ(inspected->diff_id, info->diff_id);
  EXPECT_EQ(inspected->compression, Compression::kZstd);
}

TEST(LayerApply, OverlayModeWritesOverlayMarkers) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "0:0 character devices and trusted.* xattrs need root";
  }
  lf::testing::TempDir t;
  auto tar = t / "l.tar";
  ASSERT_TRUE(makeTarWithPython(tar,
                                "add('d', type=tarfile.DIRTYPE)\nadd('d/.wh..wh..opq')\n"
                                "add('.wh.gone')\nadd('d/kept', b'k')"));
  fs::create_directories(t / "lower");
  auto s = applyLayerFile(tar, t / "lower", {.whiteouts = WhiteoutMode::kOverlay});
  ASSERT_TRUE(s.isOk()) << s.status().toString();
  struct stat st;
  ASSERT_EQ(lstat((t / "lower/gone").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  char v[2] = {};
  EXPECT_EQ(getxattr((t / "lower/d").c_str(), "trusted.overlay.opaque", v, 1), 1);
  EXPECT_EQ(v[0], 'y');
  EXPECT_EQ(slurp(t / "lower/d/kept"), "k");
}

TEST(LayerApply, OwnershipAndSetuidWhenRoot) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "chown needs root";
  }
  lf::testing::TempDir t;
  auto tar = t / "l.tar";
  ASSERT_TRUE(makeTarWithPython(tar,
                                "add('su', b'x', uid=1234, gid=567, mode=0o4755)\n"
                                "add('l', type=tarfile.SYMTYPE, linkname='su', uid=42)"));
  fs::create_directories(t / "out");
  ASSERT_TRUE(applyLayerFile(tar, t / "out", {}).isOk());
  struct stat st;
  ASSERT_EQ(lstat((t / "out/su").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 567u);
  EXPECT_EQ(st.st_mode & 07777, 04755u) << "setuid survives chown";
  ASSERT_EQ(lstat((t / "out/l").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 42u);
}

TEST(LayerApply, SparseEntriesKeepHoles) {
  lf::testing::TempDir t;
  auto tar = t / "sparse.tar";
  // GNU tar makes a real sparse entry; skip if it cannot.
  auto mk = runCommand("cd " + shellQuote(t.path().string()) +
                       " && truncate -s 64M sp && printf end >> sp && tar --sparse -cf " +
                       shellQuote(tar.string()) + " sp");
  if (mk.exit_code != 0) {
    GTEST_SKIP() << mk.output;
  }
  fs::create_directories(t / "out");
  ASSERT_TRUE(applyLayerFile(tar, t / "out", {}).isOk());
  EXPECT_EQ(fs::file_size(t / "out/sp"), (64u << 20) + 3);
  struct stat st;
  ASSERT_EQ(stat((t / "out/sp").c_str(), &st), 0);
  EXPECT_LT(st.st_blocks * 512, 1 << 20);
}

}  // namespace
}  // namespace lf::layer
