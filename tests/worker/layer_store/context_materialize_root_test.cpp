// COPY from a build context given as a manifest, through the worker's real StepRunner
// (overlayfs, a private mount namespace): the copied files keep the manifest's modes (setuid
// included), mtimes, contents and symlink targets, and the context is materialized once for
// several steps. Root only.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/blob/directory_blob_store.h"
#include "common/layer/layer_writer.h"
#include "common/layer/unique_fd.h"
#include "tests/support/shell.h"
#include "tests/support/temp_dir.h"
#include "tests/worker/layer_store/context_manifest_fixture.h"
#include "worker/exec/step_runner.h"
#include "worker/exec/step_spec.h"
#include "worker/layer_store/context_materialize.h"
#include "worker/layer_store/layer_store.h"

namespace lf::worker::testing {
namespace {

namespace fs = std::filesystem;
namespace v1 = layerfarm::v1;
using lf::testing::readFile;

class ContextCopyRootTest : public ContextManifestTest {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root: overlayfs and mount namespaces";
    }
    ContextManifestTest::SetUp();
  }

  v1::StepSpec copySpec(const LayerRef& base, const LayerRef& context,
                        const std::vector<std::string>& sources, const std::string& dest) {
    v1::StepSpec spec;
    spec.set_step_id("copy" + std::to_string(next_step_++));
    spec.set_kind(v1::STEP_KIND_COPY);
    *spec.mutable_parent()->add_layers() = fromLayerRef(base);
    *spec.mutable_copy()->mutable_context() = fromLayerRef(context);
    for (const std::string& s : sources) {
      spec.mutable_copy()->add_sources(s);
    }
    spec.mutable_copy()->set_destination(dest);
    spec.set_compression(v1::COMPRESSION_NONE);
    return spec;
  }

  int next_step_ = 0;
};

TEST_F(ContextCopyRootTest, CopyFromAManifestContextKeepsModesMtimesAndLinks) {
  LayerRef base = makeLayer({{"srv/README", "base"}});
  std::string big(3 << 20, 'z');
  LayerRef context = storeManifest({
      file("Dockerfile", 0644, 1700000001, "FROM base\nCOPY app/ /srv/app/\n"),
      dir("app", 0755, 1700000002),
      file("app/run.sh", 04755, 1700000003, "#!/bin/sh\necho hi\n"),
      file("app/private", 0600, 1700000004, "secret"),
      file("app/empty", 0644, 1700000005, "", /*upload=*/false),
      file("app/data/big.bin", 0640, 1700000006, big),  // "app/data" is implicit
      symlink("app/link", "run.sh", 1700000007),
      symlink("app/dangling", "../missing", 1700000008),
  });

  LayerStoreOptions store_options;
  store_options.root = root();
  store_options.sync = false;
  auto layers = LayerStore::open(store_options, *blobs_);
  ASSERT_TRUE(layers.isOk()) << layers.status().toString();
  StepRunnerOptions runner_options;
  runner_options.state_root = tmp_ / "state";
  runner_options.use_cgroups = false;
  runner_options.compression_threads = 1;
  StepRunner runner(runner_options, *blobs_, **layers);
  auto noLog = [](const v1::StepLog&) {};

  v1::StepResult result = runner.run(copySpec(base, context, {"app/"}, "/srv/app/"), noLog);
  ASSERT_EQ(result.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << result.error();
  auto made = toLayerRef(result.layer(), "layer");
  ASSERT_TRUE(made.isOk()) << made.status().toString();
  auto lease = (*layers)->acquire({*made});
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  fs::path app = lease->dirs()[0] / "srv/app";

  struct Want {
    const char* path;
    mode_t type;
    mode_t mode;
    int64_t mtime;
  };
  for (const Want& w : std::vector<Want>{{"run.sh", S_IFREG, 04755, 1700000003},
                                         {"private", S_IFREG, 0600, 1700000004},
                                         {"empty", S_IFREG, 0644, 1700000005},
                                         {"data/big.bin", S_IFREG, 0640, 1700000006},
                                         {"link", S_IFLNK, 0777, 1700000007},
                                         {"dangling", S_IFLNK, 0777, 1700000008}}) {
    SCOPED_TRACE(w.path);
    struct stat st = lstatOf(app / w.path);
    EXPECT_EQ(st.st_mode & S_IFMT, w.type);
    EXPECT_EQ(st.st_mode & 07777, w.mode);
    EXPECT_EQ(st.st_mtim.tv_sec, w.mtime);
    EXPECT_EQ(st.st_uid, 0u);
    EXPECT_EQ(st.st_gid, 0u);
  }
  EXPECT_EQ(readFile(app / "run.sh"), "#!/bin/sh\necho hi\n");
  EXPECT_EQ(readFile(app / "private"), "secret");
  EXPECT_EQ(readFile(app / "empty"), "");
  EXPECT_EQ(readFile(app / "data/big.bin"), big);
  EXPECT_EQ(fs::read_symlink(app / "link"), "run.sh");
  EXPECT_EQ(fs::read_symlink(app / "dangling"), "../missing");
  EXPECT_FALSE(fs::exists(app / "Dockerfile"));
  lease->release();

  // A second step from the same context: the materialized tree is a hit.
  auto before = (*layers)->stats();
  v1::StepResult again = runner.run(copySpec(base, context, {"Dockerfile"}, "/df"), noLog);
  ASSERT_EQ(again.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << again.error();
  auto after = (*layers)->stats();
  EXPECT_EQ(after.misses, before.misses);
  EXPECT_TRUE((*layers)->contains(context.diff_id));

  // A context whose file blob is missing: the step is an error naming the file.
  LayerRef broken = storeManifest({file("lost", 0644, 1, "never uploaded", /*upload=*/false)});
  v1::StepResult failed = runner.run(copySpec(base, broken, {"lost"}, "/lost"), noLog);
  EXPECT_NE(failed.outcome(), v1::STEP_OUTCOME_SUCCEEDED);
  EXPECT_NE(failed.error().find("'lost'"), std::string::npos) << failed.error();
}

// On a filesystem that shares extents (XFS, made on a loop device) a file is reflinked from its
// blob, and the clone is still verified: a damaged blob is caught.
TEST_F(ContextCopyRootTest, ReflinksOnXfsAndStillVerifies) {
  if (lf::testing::runShell("command -v mkfs.xfs").code != 0) {
    GTEST_SKIP() << "mkfs.xfs (xfsprogs) is not installed";
  }
  fs::path image = tmp_ / "xfs.img";
  fs::path mnt = tmp_ / "xfs";
  fs::create_directories(mnt);
  auto made_fs = lf::testing::runShell("truncate -s 320M " + image.string() +
                                       " && mkfs.xfs -q -m reflink=1 " + image.string() +
                                       " && mount -o loop " + image.string() + " " + mnt.string());
  if (made_fs.code != 0) {
    GTEST_SKIP() << "cannot make and loop-mount an XFS filesystem: " << made_fs.text;
  }
  struct Unmount {
    fs::path mnt;
    ~Unmount() { umount2(mnt.c_str(), MNT_DETACH); }
  } unmount{mnt};

  blob::DirectoryBlobStoreOptions options;
  options.fsync = false;
  auto blobs = blob::DirectoryBlobStore::open(mnt / "blobs", options);
  ASSERT_TRUE(blobs.isOk()) << blobs.status().toString();
  std::string big(8 << 20, 'r');
  for (size_t i = 0; i < big.size(); i += 4096) {
    big[i] = static_cast<char>(i >> 12);
  }
  ASSERT_TRUE((*blobs)->putBytes(big).isOk());
  ASSERT_TRUE((*blobs)->putBytes("small").isOk());
  ContextManifest manifest{{file("big.bin", 0644, 7, big, /*upload=*/false),
                            file("small", 0600, 8, "small", /*upload=*/false)}};

  fs::create_directories(mnt / "target");
  layer::UniqueFd fd(::open((mnt / "target").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  auto made = materializeContext(manifest, **blobs, fd.get());
  ASSERT_TRUE(made.isOk()) << made.status().toString();
  EXPECT_EQ(made->reflinks, 2u);
  EXPECT_EQ(readFile(mnt / "target/big.bin"), big);
  EXPECT_EQ(readFile(mnt / "target/small"), "small");
  EXPECT_EQ(lstatOf(mnt / "target/big.bin").st_mtim.tv_sec, 7);

  // Damage the blob in place (same size): the clone carries the damage and its hash says so.
  fs::path blob = (*blobs)->blobPath(Digest::sha256Of(big));
  std::string damaged = big;
  damaged[5 << 20] ^= 0x20;
  fs::permissions(blob, fs::perms::owner_write, fs::perm_options::add);
  ASSERT_TRUE(lf::testing::writeFile(blob, damaged));
  fs::create_directories(mnt / "target2");
  layer::UniqueFd fd2(::open((mnt / "target2").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  auto failed = materializeContext(manifest, **blobs, fd2.get());
  ASSERT_FALSE(failed.isOk());
  EXPECT_EQ(failed.status().code(), StatusCode::kDataLoss) << failed.status().toString();
  EXPECT_NE(failed.status().message().find("'big.bin'"), std::string::npos);
}

}  // namespace
}  // namespace lf::worker::testing
