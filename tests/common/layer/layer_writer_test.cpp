#include "common/layer/layer_writer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>

#include "common/blob/directory_blob_store.h"
#include "common/layer/layer_reader.h"
#include "tests/common/layer/layer_test_util.h"
#include "tests/support/temp_dir.h"

namespace lf::layer {
namespace {

using testing::describeTree;
using testing::pythonBinary;
using testing::runCommand;
using testing::shellQuote;
using testing::slurp;

// Names the tar members in order, with python3's tarfile (an independent reader).
std::string listTar(const std::filesystem::path& blob) {
  auto r = runCommand(
      pythonBinary() +
      " -c "
      "'import tarfile,sys\n"
      "for m in tarfile.open(sys.argv[1]):\n"
      "  k = \"d\" if m.isdir() else \"l\" if m.issym() else \"h\" if m.islnk() else \"p\" if "
      "m.isfifo() else \"f\"\n"
      "  print(k, m.name, oct(m.mode), m.uid, m.gid, m.size, m.mtime, m.linkname,"
      " sorted(m.pax_headers.items()) if any(x.startswith(\"SCHILY\") for x in m.pax_headers)"
      " else \"\")' " +
      shellQuote(blob.string()));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return r.output;
}

struct Written {
  LayerInfo info;
  std::string blob;
};

Written writeToString(const std::filesystem::path& dir, const LayerOptions& options) {
  Written w;
  auto info = writeLayerTo(dir, options, [&](const void* d, size_t n) {
    w.blob.append(static_cast<const char*>(d), n);
    return Status::ok();
  });
  EXPECT_TRUE(info.isOk()) << info.status().toString();
  if (info.isOk()) {
    w.info = *info;
  }
  return w;
}

void setMtime(const std::filesystem::path& p, time_t t) {
  struct timespec times[2] = {{t, 0}, {t, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, p.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << p;
}

// A small tree with every entry kind writeLayer handles without privileges.
void makeSampleTree(const lf::testing::TempDir& t, const std::string& root) {
  t.write(root + "/etc/hostname", "layerfarm\n");
  t.write(root + "/usr/bin/tool", std::string(300000, 'x'));
  t.write(root + "/b", "b");
  t.write(root + "/a/z", "z");
  ASSERT_EQ(chmod((t / (root + "/usr/bin/tool")).c_str(), 04755), 0);
  std::filesystem::create_symlink("../etc/hostname", t / (root + "/usr/link"));
  std::filesystem::create_hard_link(t / (root + "/b"), t / (root + "/a/hard"));
  std::filesystem::create_directory(t / (root + "/empty"));
  ASSERT_EQ(mkfifo((t / (root + "/a/fifo")).c_str(), 0640), 0);
}

TEST(LayerWriter, EntriesAreSortedParentsFirstWithMetadata) {
  lf::testing::TempDir t;
  makeSampleTree(t, "root");
  setMtime(t / "root/b", 1000);
  auto w = writeToString(t / "root", LayerOptions{.compression = Compression::kNone});
  ASSERT_TRUE(lf::testing::writeFile(t / "layer.tar", w.blob));
  std::string list = listTar(t / "layer.tar");
  // Children sorted by byte value, each directory before its children; the second path of a
  // hardlinked pair (in walk order) is a link to the first.
  const std::vector<std::string> order = {"d a ",      "f a/hard",       "f a/z ",         "h b ",
                                          "d empty",   "d etc ",         "f etc/hostname", "d usr ",
                                          "d usr/bin", "f usr/bin/tool", "l usr/link"};
  size_t pos = 0;
  for (const auto& want : order) {
    size_t at = list.find("\n" + want, pos == 0 ? 0 : pos);
    if (pos == 0 && list.rfind(want, 0) == 0) {
      at = 0;
    }
    ASSERT_NE(at, std::string::npos) << want << " missing or out of order in\n" << list;
    pos = at + 1;
  }
  EXPECT_NE(list.find("h b 0o644 " + std::to_string(getuid()) + " " + std::to_string(getgid()) +
                      " 0 1000 a/hard"),
            std::string::npos)
      << list;
  EXPECT_NE(list.find("f usr/bin/tool 0o4755"), std::string::npos) << list;
  EXPECT_NE(list.find("l usr/link 0o777"), std::string::npos) << list;
  EXPECT_NE(list.find("../etc/hostname"), std::string::npos) << list;
  EXPECT_NE(list.find("f a/hard 0o644 " + std::to_string(getuid()) + " " +
                      std::to_string(getgid()) + " 1 1000"),
            std::string::npos)
      << list;
  EXPECT_NE(list.find("p a/fifo 0o640"), std::string::npos) << list;
}

TEST(LayerWriter, DigestsMatchIndependentTools) {
  lf::testing::TempDir t;
  makeSampleTree(t, "root");
  auto store = blob::DirectoryBlobStore::open(t / "store", {.fsync = false});
  ASSERT_TRUE(store.isOk()) << store.status().toString();
  auto info = writeLayer(t / "root", LayerOptions{}, **store);
  ASSERT_TRUE(info.isOk()) << info.status().toString();
  EXPECT_EQ(info->media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
  auto path = (*store)->blobPath(info->digest);
  EXPECT_EQ(std::filesystem::file_size(path), info->size);
  auto sum = runCommand("sha256sum < " + shellQuote(path.string()));
  EXPECT_EQ(sum.output.substr(0, 64), info->digest.hex());
  auto diff = runCommand("gzip -dc < " + shellQuote(path.string()) + " | sha256sum");
  EXPECT_EQ(diff.output.substr(0, 64), info->diff_id.hex());
  auto test = runCommand("gzip -t < " + shellQuote(path.string()));
  EXPECT_EQ(test.exit_code, 0) << test.output;
  auto tar = runCommand("tar -tzf " + shellQuote(path.string()) + " | sort | head -3");
  EXPECT_EQ(tar.exit_code, 0) << tar.output;
}

TEST(LayerWriter, ZstdAndNoneDigests) {
  lf::testing::TempDir t;
  makeSampleTree(t, "root");
  auto z = writeToString(t / "root", LayerOptions{.compression = Compression::kZstd});
  auto n = writeToString(t / "root", LayerOptions{.compression = Compression::kNone});
  EXPECT_EQ(z.info.media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
  EXPECT_EQ(z.info.digest, Digest::sha256Of(z.blob));
  EXPECT_EQ(z.info.size, z.blob.size());
  EXPECT_EQ(n.info.digest, Digest::sha256Of(n.blob));
  EXPECT_EQ(n.info.diff_id, n.info.digest) << "uncompressed: the blob is the tar";
  EXPECT_EQ(z.info.diff_id, n.info.diff_id) << "same tar whatever the compression";
  ASSERT_TRUE(lf::testing::writeFile(t / "l.zst", z.blob));
  auto dc = runCommand("zstd -dc " + shellQuote((t / "l.zst").string()) + " | sha256sum");
  EXPECT_EQ(dc.output.substr(0, 64), z.info.diff_id.hex());
}

TEST(LayerWriter, DeterministicAndSourceDateEpochClamps) {
  lf::testing::TempDir t;
  makeSampleTree(t, "root");
  LayerOptions options;
  options.source_date_epoch = 1700000000;
  auto first = writeToString(t / "root", options);
  auto again = writeToString(t / "root", options);
  EXPECT_EQ(first.info.digest, again.info.digest);
  EXPECT_EQ(first.blob, again.blob);
  // Touch everything (now > epoch): clamped mtimes keep the digest.
  for (const auto& e : std::filesystem::recursive_directory_iterator(t / "root")) {
    setMtime(e.path(), time(nullptr) + 5);
  }
  auto touched = writeToString(t / "root", options);
  EXPECT_EQ(first.info.digest, touched.info.digest);
  EXPECT_EQ(first.info.diff_id, touched.info.diff_id);
  // Without the epoch the touched mtimes do show.
  auto unclamped = writeToString(t / "root", LayerOptions{});
  EXPECT_NE(unclamped.info.diff_id, touched.info.diff_id);
  // Older mtimes are kept as they are.
  setMtime(t / "root/b", 12345);
  auto older = writeToString(t / "root", options);
  EXPECT_NE(older.info.diff_id, touched.info.diff_id);
  // Same tree, different thread count: same bytes.
  options.threads = 1;
  auto single = writeToString(t / "root", options);
  options.threads = 2;
  auto dual = writeToString(t / "root", options);
  EXPECT_EQ(single.blob, dual.blob);
}

TEST(LayerWriter, SourceDateEpochFromEnvironment) {
  setenv("SOURCE_DATE_EPOCH", "1234", 1);
  auto v = sourceDateEpochFromEnv();
  ASSERT_TRUE(v.isOk());
  EXPECT_EQ(*v, std::optional<int64_t>(1234));
  setenv("SOURCE_DATE_EPOCH", "12a", 1);
  EXPECT_FALSE(sourceDateEpochFromEnv().isOk());
  unsetenv("SOURCE_DATE_EPOCH");
  EXPECT_EQ(*sourceDateEpochFromEnv(), std::nullopt);
}

TEST(LayerWriter, LongNamesUsePax) {
  lf::testing::TempDir t;
  std::string deep;
  for (int i = 0; i < 6; ++i) {
    deep += std::string(50, static_cast<char>('a' + i)) + "/";
  }
  const std::string long_name = std::string(200, 'n');  // > 100-byte ustar name
  t.write("root/" + deep + long_name, "deep");          // path > 255 bytes
  auto w = writeToString(t / "root", LayerOptions{.compression = Compression::kNone});
  ASSERT_TRUE(lf::testing::writeFile(t / "l.tar", w.blob));
  std::string list = listTar(t / "l.tar");
  EXPECT_NE(list.find("f " + deep + long_name + " "), std::string::npos) << list;
  lf::testing::TempDir out;
  auto applied = applyLayerFile(t / "l.tar", out.path(), {});
  ASSERT_TRUE(applied.isOk()) << applied.status().toString();
  EXPECT_EQ(slurp(out / (deep + long_name)), "deep");
}

TEST(LayerWriter, XattrsKeptAndOverlayOnesDropped) {
  lf::testing::TempDir t;
  auto f = t.write("root/f", "data");
  if (!testing::supportsUserXattrs(t.path())) {
    GTEST_SKIP() << "filesystem of " << t.path() << " has no user xattrs";
  }
  ASSERT_EQ(setxattr(f.c_str(), "user.keep", "v1", 2, 0), 0);
  ASSERT_EQ(setxattr(f.c_str(), "user.overlay.origin", "x", 1, 0), 0);
  auto w = writeToString(t / "root", LayerOptions{.compression = Compression::kNone});
  ASSERT_TRUE(lf::testing::writeFile(t / "l.tar", w.blob));
  std::string list = listTar(t / "l.tar");
  EXPECT_NE(list.find("SCHILY.xattr.user.keep"), std::string::npos) << list;
  EXPECT_EQ(list.find("overlay"), std::string::npos) << list;
  lf::testing::TempDir out;
  ASSERT_TRUE(applyLayerFile(t / "l.tar", out.path(), {}).isOk());
  char value[8] = {};
  EXPECT_EQ(getxattr((out / "f").c_str(), "user.keep", value, sizeof(value)), 2);
  EXPECT_STREQ(value, "v1");
}

TEST(LayerWriter, SecurityCapabilityIsKept) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "setting security.capability needs root";
  }
  lf::testing::TempDir t;
  auto f = t.write("root/ping", "elf");
  auto set = runCommand("setcap cap_net_raw+ep " + shellQuote(f.string()));
  if (set.exit_code != 0) {
    // No setcap binary: write a v2 capability blob directly (cap_net_raw = bit 13, effective).
    const uint32_t caps[5] = {0x02000001, 1u << 13, 0, 0, 0};
    ASSERT_EQ(setxattr(f.c_str(), "security.capability", caps, sizeof(caps), 0), 0);
  }
  auto w = writeToString(t / "root", LayerOptions{.compression = Compression::kNone});
  ASSERT_TRUE(lf::testing::writeFile(t / "l.tar", w.blob));
  EXPECT_NE(listTar(t / "l.tar").find("SCHILY.xattr.security.capability"), std::string::npos);
  lf::testing::TempDir out;
  ASSERT_TRUE(applyLayerFile(t / "l.tar", out.path(), {}).isOk());
  EXPECT_GT(getxattr((out / "ping").c_str(), "security.capability", nullptr, 0), 0);
}

TEST(LayerWriter, OverlayUpperWhiteoutsAndOpaqueDirs) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "creating a 0:0 character device (overlay whiteout) needs root";
  }
  lf::testing::TempDir t;
  t.write("upper/keep", "k");
  t.write("upper/opaque/new", "n");
  ASSERT_EQ(mknod((t / "upper/gone").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
  ASSERT_EQ(setxattr((t / "upper/opaque").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
  std::filesystem::create_directories(t / "upper/uopq");
  bool user_xattrs = testing::supportsUserXattrs(t.path());
  if (user_xattrs) {
    ASSERT_EQ(setxattr((t / "upper/uopq").c_str(), "user.overlay.opaque", "y", 1, 0), 0);
  }
  auto w = writeToString(t / "upper",
                         LayerOptions{.compression = Compression::kNone, .overlay_upper = true});
  ASSERT_TRUE(lf::testing::writeFile(t / "l.tar", w.blob));
  std::string list = listTar(t / "l.tar");
  EXPECT_NE(list.find("f .wh.gone 0o600 0 0 0"), std::string::npos) << list;
  EXPECT_NE(list.find("d opaque 0o755"), std::string::npos) << list;
  EXPECT_NE(list.find("f opaque/.wh..wh..opq 0o600"), std::string::npos) << list;
  EXPECT_LT(list.find("opaque/.wh..wh..opq"), list.find("opaque/new"))
      << "the opaque marker comes before the directory's children";
  if (user_xattrs) {
    EXPECT_NE(list.find("f uopq/.wh..wh..opq"), std::string::npos) << list;
  }
  EXPECT_EQ(list.find("overlay"), std::string::npos) << "overlay xattrs never leak" << list;
  EXPECT_EQ(list.find(" gone "), std::string::npos) << list;

  // Without overlay_upper the device is a device and no marker appears.
  auto plain = writeToString(t / "upper", LayerOptions{.compression = Compression::kNone});
  ASSERT_TRUE(lf::testing::writeFile(t / "p.tar", plain.blob));
  EXPECT_EQ(listTar(t / "p.tar").find(".wh."), std::string::npos);
}

TEST(LayerWriter, RoundTripPreservesTree) {
  lf::testing::TempDir t;
  makeSampleTree(t, "root");
  auto w = writeToString(t / "root", LayerOptions{.compression = Compression::kGzip});
  ASSERT_TRUE(lf::testing::writeFile(t / "l.tgz", w.blob));
  lf::testing::TempDir out;
  auto stats = applyLayerFile(t / "l.tgz", out.path(), {.expected_diff_id = w.info.diff_id});
  ASSERT_TRUE(stats.isOk()) << stats.status().toString();
  EXPECT_EQ(stats->compression, Compression::kGzip);
  EXPECT_EQ(describeTree(t / "root"), describeTree(out.path()));
  // And writing the unpacked tree again gives the same layer.
  auto again = writeToString(out.path(), LayerOptions{.compression = Compression::kGzip});
  EXPECT_EQ(again.info.diff_id, w.info.diff_id);
}

TEST(LayerWriter, LargeSparseFileOver8GiB) {
  lf::testing::TempDir t;
  std::filesystem::create_directories(t / "root");
  const uint64_t size = (8ull << 30) + 4096 + 17;  // beyond the 8 GiB ustar size field
  {
    int fd = open((t / "root/big").c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "tail", 4, static_cast<off_t>(size - 4)), 4);
    close(fd);
  }
  struct stat st;
  ASSERT_EQ(stat((t / "root/big").c_str(), &st), 0);
  if (static_cast<uint64_t>(st.st_blocks) * 512 > (1u << 20)) {
    GTEST_SKIP() << "filesystem does not keep sparse files sparse";
  }
  // Stream it uncompressed and check the header with python's tarfile (reads only the header).
  std::string head;
  auto info = writeLayerTo(
      t / "root", LayerOptions{.compression = Compression::kNone}, [&](const void* d, size_t n) {
        if (head.size() < 8192) {
          head.append(static_cast<const char*>(d), std::min<size_t>(n, 8192 - head.size()));
        }
        return Status::ok();
      });
  ASSERT_TRUE(info.isOk()) << info.status().toString();
  EXPECT_EQ(info->diff_id, info->digest);
  EXPECT_GT(info->size, size);
  ASSERT_TRUE(lf::testing::writeFile(t / "head.tar", head));
  auto r = runCommand(pythonBinary() +
                      " -c "
                      "'import tarfile,sys\n"
                      "t = tarfile.open(sys.argv[1], \"r|\")\n"
                      "m = t.next(); print(m.name, m.size)' " +
                      shellQuote((t / "head.tar").string()));
  EXPECT_NE(r.output.find("big " + std::to_string(size)), std::string::npos) << r.output;
}

}  // namespace
}  // namespace lf::layer
