// COPY and ADD cannot read outside the build context or write outside the image root: "..",
// absolute and relative symlinks in the context, symlinks in the image, hostile archives.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/temp_dir.h"
#include "tests/worker/copy/copy_test_util.h"
#include "tests/worker/copy/tar_builder.h"
#include "worker/copy/copy_executor.h"

namespace lf::worker {
namespace {

using lf::testing::readFile;
using lf::testing::TarEntry;
using lf::testing::writeTar;

constexpr const char* kHostSecret = "HOST-SECRET-CONTENT";

class CopyEscapeTest : public CopyTest {
 protected:
  void SetUp() override {
    CopyTest::SetUp();
    host_file_ = tmp().write("host/secret.txt", kHostSecret);
    fs::create_directories(tmp() / "hostdir");
  }

  // No file anywhere under the image root holds the host's secret.
  void expectNoHostContentInRoot() const {
    for (const auto& entry : fs::recursive_directory_iterator(root())) {
      if (entry.is_regular_file() && !entry.is_symlink()) {
        EXPECT_EQ(readFile(entry.path()).find(kHostSecret), std::string::npos) << entry.path();
      }
    }
  }

  void expectHostDirUntouched() const {
    EXPECT_TRUE(fs::is_empty(tmp() / "hostdir"));
    EXPECT_EQ(readFile(host_file_), kHostSecret);
  }

  fs::path host_file_;
};

TEST_F(CopyEscapeTest, DotDotSourceIsForbidden) {
  for (const char* src : {"../host/secret.txt", "a/../../host/secret.txt", "../*"}) {
    auto r = copy(request({src}, "/out"));
    ASSERT_FALSE(r.isOk()) << src;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(
        r.status().message().find("forbidden path outside the build context: " + std::string(src)),
        std::string::npos)
        << r.status().message();
  }
  // ".." that stays inside is fine.
  writeCtx("a/x", "x");
  ASSERT_TRUE(copy(request({"a/../a/x"}, "/ok")).isOk());
  EXPECT_EQ(readFile(root() / "ok"), "x");
}

TEST_F(CopyEscapeTest, AbsoluteSymlinkInContextResolvesInsideIt) {
  fs::create_symlink(host_file_, ctx() / "abs");
  auto missing = copy(request({"abs"}, "/out1"));  // the same path inside the context: none
  EXPECT_FALSE(missing.isOk());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);

  // Through the host's /proc magic links: resolved inside the context too, so nothing there.
  fs::create_symlink("/proc/self/root" + host_file_.string(), ctx() / "magic");
  EXPECT_FALSE(copy(request({"magic"}, "/out0")).isOk());
  fs::create_symlink("/proc/self/cwd", ctx() / "cwd");
  EXPECT_FALSE(copy(request({"cwd"}, "/out0")).isOk());

  fs::create_symlink("/etc/passwd", ctx() / "pw");
  writeCtx("etc/passwd", "context passwd");
  ASSERT_TRUE(copy(request({"pw"}, "/out2")).isOk());
  EXPECT_EQ(readFile(root() / "out2"), "context passwd");
  expectNoHostContentInRoot();
}

TEST_F(CopyEscapeTest, RelativeSymlinkCannotClimbOutOfTheContext) {
  fs::create_symlink("../../../../../../host/secret.txt", ctx() / "rel");
  EXPECT_FALSE(copy(request({"rel"}, "/out1")).isOk());

  writeCtx("host/secret.txt", "in-context file");
  ASSERT_TRUE(copy(request({"rel"}, "/out2")).isOk());
  EXPECT_EQ(readFile(root() / "out2"), "in-context file");

  // A directory symlink used as a parent of the source, and under a wildcard.
  fs::create_symlink("../..", ctx() / "up");
  ASSERT_TRUE(copy(request({"up/host/secret.txt"}, "/out3")).isOk());
  EXPECT_EQ(readFile(root() / "out3"), "in-context file");
  ASSERT_TRUE(copy(request({"up/ho*/*"}, "/out4/")).isOk());
  EXPECT_EQ(readFile(root() / "out4/secret.txt"), "in-context file");
  expectNoHostContentInRoot();
}

TEST_F(CopyEscapeTest, SymlinksInsideACopiedDirectoryAreNotFollowed) {
  fs::create_directories(ctx() / "tree");
  fs::create_symlink(host_file_, ctx() / "tree/abs");
  fs::create_symlink(tmp() / "host", ctx() / "tree/dir");
  ASSERT_TRUE(copy(request({"tree"}, "/t")).isOk());
  EXPECT_TRUE(fs::is_symlink(root() / "t/abs"));
  EXPECT_TRUE(fs::is_symlink(root() / "t/dir"));
  expectNoHostContentInRoot();
}

TEST_F(CopyEscapeTest, DestinationSymlinksInTheImageStayInsideTheRoot) {
  writeCtx("a.txt", "payload");
  writeCtx("d/b.txt", "payload-b");
  fs::create_directories(root() / (tmp() / "hostdir").relative_path());
  fs::create_symlink(tmp() / "hostdir", root() / "app");            // absolute, to a host path
  fs::create_symlink("../../../../../../../../..", root() / "up");  // relative, climbing
  fs::create_symlink(host_file_, root() / "victim");                // a file link to a host file

  ASSERT_TRUE(copy(request({"a.txt"}, "/app/")).isOk());
  EXPECT_EQ(readFile(root() / (tmp() / "hostdir/a.txt").relative_path()), "payload");
  ASSERT_TRUE(copy(request({"d"}, "/app/sub")).isOk());
  EXPECT_EQ(readFile(root() / (tmp() / "hostdir/sub/b.txt").relative_path()), "payload-b");

  ASSERT_TRUE(copy(request({"a.txt"}, "/up/tmp/x.txt")).isOk());
  EXPECT_EQ(readFile(root() / "tmp/x.txt"), "payload");

  ASSERT_TRUE(copy(request({"a.txt"}, "/victim")).isOk());
  EXPECT_FALSE(fs::is_symlink(root() / "victim"));
  EXPECT_EQ(readFile(root() / "victim"), "payload");
  expectHostDirUntouched();
}

TEST_F(CopyEscapeTest, AddArchiveWithDotDotEntryIsRejected) {
  ASSERT_TRUE(writeTar(ctx() / "evil.tar", {{.name = "ok.txt", .content = "ok"},
                                            {.name = "../../../escaped.txt", .content = "bad"}}));
  CopyRequest r = request({"evil.tar"}, "/x/");
  r.add = true;
  auto result = copy(r);
  ASSERT_FALSE(result.isOk());
  EXPECT_NE(result.status().message().find("../../../escaped.txt"), std::string::npos)
      << result.status().message();
  EXPECT_FALSE(fs::exists(tmp() / "escaped.txt"));
  EXPECT_FALSE(fs::exists(root() / "escaped.txt"));
}

TEST_F(CopyEscapeTest, AddArchiveSymlinkTricksStayInTheDestination) {
  fs::path host = tmp() / "hostdir";
  ASSERT_TRUE(writeTar(ctx() / "trick.tar",
                       {{.name = "abs", .type = 'l', .content = host.string()},
                        {.name = "abs/owned.txt", .content = "via absolute link"},
                        {.name = "rel", .type = 'l', .content = "../../../../../../.."},
                        {.name = "rel" + host.string() + "/owned2.txt", .content = "via .."},
                        {.name = "/absolute-name.txt", .content = "abs name"}}));
  // The same path inside the destination exists, so following the links succeeds there (a link
  // to a missing directory is an error, as with Docker).
  fs::create_directories(root() / "x" / host.relative_path());
  CopyRequest r = request({"trick.tar"}, "/x");
  r.add = true;
  auto result = copy(r);
  ASSERT_TRUE(result.isOk()) << result.status().toString();
  // Links resolve with the destination as their root, the way Docker scopes its untar.
  EXPECT_EQ(readFile(root() / "x" / host.relative_path() / "owned.txt"), "via absolute link");
  EXPECT_EQ(readFile(root() / "x" / host.relative_path() / "owned2.txt"), "via ..");
  EXPECT_EQ(readFile(root() / "x/absolute-name.txt"), "abs name");
  expectHostDirUntouched();
}

TEST_F(CopyEscapeTest, AddArchiveHardlinkMustPointAtAnEarlierEntry) {
  tmp().write("root/etc/shadow", "image shadow");
  ASSERT_TRUE(
      writeTar(ctx() / "hl.tar", {{.name = "grab", .type = 'h', .content = "/etc/shadow"}}));
  CopyRequest r = request({"hl.tar"}, "/x/");
  r.add = true;
  auto result = copy(r);
  ASSERT_FALSE(result.isOk());
  EXPECT_NE(result.status().message().find("hardlink"), std::string::npos);
  EXPECT_FALSE(fs::exists(root() / "x/grab"));

  ASSERT_TRUE(writeTar(ctx() / "ok.tar", {{.name = "a", .content = "data"},
                                          {.name = "b", .type = 'h', .content = "a"}}));
  CopyRequest ok = request({"ok.tar"}, "/y/");
  ok.add = true;
  ASSERT_TRUE(copy(ok).isOk());
  EXPECT_EQ(lstatOf(root() / "y/a").st_ino, lstatOf(root() / "y/b").st_ino);
}

}  // namespace
}  // namespace lf::worker
