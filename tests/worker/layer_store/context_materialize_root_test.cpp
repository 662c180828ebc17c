// COPY from a build context given as a manifest, through the worker's real StepRunner
// (overlayfs, a private mount namespace): the copied files keep the manifest's modes (setuid
// included), mtimes, contents and symlink targets, and the context is materialized once for
// several steps. Root only.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/layer/layer_writer.h"
#include "tests/support/temp_dir.h"
#include "tests/worker/layer_store/context_manifest_fixture.h"
#include "worker/exec/step_runner.h"
#include "worker/exec/step_spec.h"
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

}  // namespace
}  // namespace lf::worker::testing
