// ADD of local archives: extraction by content for every compression, plain files copied.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "tests/support/shell.h"
#include "tests/support/temp_dir.h"
#include "tests/worker/copy/copy_test_util.h"
#include "tests/worker/copy/tar_builder.h"
#include "worker/copy/copy_executor.h"

namespace lf::worker {
namespace {

using lf::testing::readFile;
using lf::testing::TarEntry;
using lf::testing::writeTar;

class AddArchiveTest : public CopyTest {
 protected:
  CopyRequest add(std::vector<std::string> sources, std::string destination) const {
    CopyRequest r = request(std::move(sources), std::move(destination));
    r.add = true;
    return r;
  }

  std::vector<TarEntry> sampleEntries() const {
    return {{.name = "pkg/", .type = 'd', .content = "", .mode = 0750, .mtime = 1'300'000'000},
            {.name = "pkg/bin/tool", .content = "#!/bin/sh\n", .mode = 0755},
            {.name = "pkg/README", .content = "read me", .mode = 0640, .mtime = 1'200'000'000},
            {.name = "pkg/link", .type = 'l', .content = "README"},
            {.name = ".wh.looks-like-a-whiteout", .content = "plain"}};
  }
};

TEST_F(AddArchiveTest, ExtractsEveryCompressionDetectedByContent) {
  for (const char* filter : {"", "gzip", "bzip2", "xz", "zstd"}) {
    SCOPED_TRACE(filter);
    std::string name = std::string("archive-") + filter + ".bin";  // the name says nothing
    ASSERT_TRUE(writeTar(ctx() / name, sampleEntries(), filter));
    std::string dest = std::string("/out-") + filter;
    auto stats = copy(add({name}, dest));
    ASSERT_TRUE(stats.isOk()) << stats.status().toString();
    fs::path out = root() / dest.substr(1);
    EXPECT_EQ(readFile(out / "pkg/bin/tool"), "#!/bin/sh\n");
    EXPECT_EQ(readFile(out / "pkg/README"), "read me");
    EXPECT_EQ(fs::read_symlink(out / "pkg/link"), "README");
    EXPECT_EQ(readFile(out / ".wh.looks-like-a-whiteout"), "plain");
    EXPECT_EQ(modeOf(out / "pkg/bin/tool"), 0755u);
    EXPECT_EQ(modeOf(out / "pkg/README"), 0640u);
    EXPECT_EQ(modeOf(out / "pkg"), 0750u);
    EXPECT_EQ(lstatOf(out / "pkg/README").st_mtim.tv_sec, 1'200'000'000);
    EXPECT_EQ(lstatOf(out / "pkg").st_mtim.tv_sec, 1'300'000'000);
    EXPECT_EQ(stats->files, 3u);
    EXPECT_EQ(stats->symlinks, 1u);
  }
}

TEST_F(AddArchiveTest, TarGzMadeByGnuTarExtractsOverExistingContent) {
  writeCtx("src/app/main.py", "print('hi')");
  writeCtx("src/app/data/x.json", "{}");
  auto made = lf::testing::runShell("tar -C '" + (ctx() / "src").string() + "' -czf '" +
                                    (ctx() / "app.tar.gz").string() + "' app");
  ASSERT_EQ(made.code, 0) << made.text;
  tmp().write("root/opt/keep.txt", "kept");
  tmp().write("root/opt/app/main.py", "old");
  ASSERT_TRUE(copy(add({"app.tar.gz"}, "/opt")).isOk());
  EXPECT_EQ(readFile(root() / "opt/app/main.py"), "print('hi')");
  EXPECT_EQ(readFile(root() / "opt/app/data/x.json"), "{}");
  EXPECT_EQ(readFile(root() / "opt/keep.txt"), "kept");
  EXPECT_FALSE(fs::exists(root() / "opt/app.tar.gz"));
}

TEST_F(AddArchiveTest, PlainFilesAndCompressedNonTarsAreCopied) {
  writeCtx("notes.txt", "just text");
  auto gz =
      lf::testing::runShell("printf 'not a tar' | gzip > '" + (ctx() / "data.gz").string() + "'");
  ASSERT_EQ(gz.code, 0) << gz.text;
  ASSERT_TRUE(copy(add({"notes.txt", "data.gz"}, "/d/")).isOk());
  EXPECT_EQ(readFile(root() / "d/notes.txt"), "just text");
  EXPECT_EQ(readFile(root() / "d/data.gz"), readFile(ctx() / "data.gz"));

  // A name that looks like an archive does not make one; archives inside a directory source
  // are not extracted either (only a named source is).
  writeCtx("fake.tar.gz", "plain text");
  fs::create_directories(ctx() / "dir");
  ASSERT_TRUE(writeTar(ctx() / "dir/inner.tar", {{.name = "inside", .content = "x"}}));
  ASSERT_TRUE(copy(add({"fake.tar.gz", "dir"}, "/e/")).isOk());
  EXPECT_EQ(readFile(root() / "e/fake.tar.gz"), "plain text");
  EXPECT_EQ(readFile(root() / "e/inner.tar"), readFile(ctx() / "dir/inner.tar"));
  EXPECT_FALSE(fs::exists(root() / "e/inside"));

  // COPY never extracts.
  ASSERT_TRUE(writeTar(ctx() / "a.tar", {{.name = "inside", .content = "x"}}));
  ASSERT_TRUE(copy(request({"a.tar"}, "/c/")).isOk());
  EXPECT_EQ(readFile(root() / "c/a.tar"), readFile(ctx() / "a.tar"));
  EXPECT_FALSE(fs::exists(root() / "c/inside"));
}

TEST_F(AddArchiveTest, DotEntryGivesTheDestinationItsMetadata) {
  ASSERT_TRUE(writeTar(ctx() / "rootfs.tar",
                       {{.name = "./", .type = 'd', .content = "", .mode = 0751, .mtime = 1'234},
                        {.name = "./etc/os-release", .content = "ID=test"}}));
  ASSERT_TRUE(copy(add({"rootfs.tar"}, "/r")).isOk());
  EXPECT_EQ(readFile(root() / "r/etc/os-release"), "ID=test");
  EXPECT_EQ(modeOf(root() / "r"), 0751u);
  EXPECT_EQ(lstatOf(root() / "r").st_mtim.tv_sec, 1'234);
}

TEST_F(AddArchiveTest, KeepsUserXattrsFromTheArchive) {
  ASSERT_TRUE(writeTar(
      ctx() / "x.tar",
      {{.name = "f", .content = "data", .xattr_name = "user.origin", .xattr_value = "tar"}}));
  ASSERT_TRUE(copy(add({"x.tar"}, "/x/")).isOk());
  char value[16] = {};
  ssize_t n = getxattr((root() / "x/f").c_str(), "user.origin", value, sizeof(value));
  if (n < 0 && (errno == ENOTSUP || errno == EOPNOTSUPP)) {
    GTEST_SKIP() << "the test filesystem has no user xattrs";
  }
  EXPECT_EQ(n, 3);
  EXPECT_STREQ(value, "tar");
}

TEST_F(AddArchiveTest, ArchiveEntryReplacesAnImageDirectoryLikeTar) {
  fs::create_directories(root() / "x/thing/sub");
  ASSERT_TRUE(writeTar(ctx() / "t.tar", {{.name = "thing", .content = "now a file"}}));
  ASSERT_TRUE(copy(add({"t.tar"}, "/x/")).isOk());
  EXPECT_EQ(readFile(root() / "x/thing"), "now a file");
}

TEST_F(AddArchiveTest, DamagedArchiveIsAnErrorNamingIt) {
  ASSERT_TRUE(writeTar(ctx() / "big.tar.gz",
                       {{.name = "a", .content = std::string(200000, 'a')},
                        {.name = "b", .content = std::string(200000, 'b')}},
                       "gzip"));
  fs::resize_file(ctx() / "big.tar.gz", fs::file_size(ctx() / "big.tar.gz") / 2);
  auto r = copy(add({"big.tar.gz"}, "/d/"));
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("big.tar.gz"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace lf::worker
