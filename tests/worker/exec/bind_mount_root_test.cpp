// RUN --mount=type=bind through the worker's real StepRunner: a busybox base layer, real mount
// namespaces and overlayfs, the build context given as a manifest (as the coordinator sends it)
// or a stage's layer chain. Asserts what the command sees, what it may write, and that nothing of
// the mount ends up in the step's layer. Root only.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/shell.h"
#include "tests/support/temp_dir.h"
#include "tests/worker/layer_store/context_manifest_fixture.h"
#include "worker/exec/step_runner.h"
#include "worker/exec/step_spec.h"

namespace lf::worker::testing {
namespace {

namespace fs = std::filesystem;
namespace v1 = layerfarm::v1;
using lf::testing::readFile;
using lf::testing::runShell;

class BindMountRootTest : public ContextManifestTest {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0) {
      return;
    }
    rootfs_dir_ = new lf::testing::TempDir();
    auto made = runShell(std::string(LF_TEST_DATA_DIR) + "/make-busybox-rootfs.sh " +
                         (*rootfs_dir_ / "rootfs").string());
    ASSERT_EQ(made.code, 0) << made.text;
  }
  static void TearDownTestSuite() {
    delete rootfs_dir_;
    rootfs_dir_ = nullptr;
  }

  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "needs root: mount namespaces and overlayfs";
    }
    ContextManifestTest::SetUp();
    ASSERT_NE(rootfs_dir_, nullptr);
    base_ = layerOf(*rootfs_dir_ / "rootfs");
    store_ = openStore();
    ASSERT_NE(store_, nullptr);
    StepRunnerOptions options;
    options.state_root = tmp_ / "state";
    options.use_cgroups = false;
    options.compression_threads = 1;
    runner_ = std::make_unique<StepRunner>(options, *blobs_, *store_);
  }

  v1::StepSpec runSpec(const std::string& command) {
    v1::StepSpec spec;
    spec.set_step_id("bind" + std::to_string(next_step_++));
    spec.set_kind(v1::STEP_KIND_RUN);
    *spec.mutable_parent()->add_layers() = fromLayerRef(base_);
    spec.mutable_config()->add_env("PATH=/bin");
    spec.mutable_run()->add_command(command);
    spec.mutable_run()->set_shell_form(true);
    spec.mutable_limits()->set_timeout_ms(60'000);
    spec.set_compression(v1::COMPRESSION_NONE);
    return spec;
  }

  static void addBind(v1::StepSpec* spec, const std::vector<LayerRef>& from,
                      const std::string& source, const std::string& target, bool readonly = true) {
    v1::RunMount* m = spec->mutable_run()->add_mounts();
    m->set_type(v1::RunMount::TYPE_BIND);
    m->set_source(source);
    m->set_target(target);
    m->set_readonly(readonly);
    for (const LayerRef& layer : from) {
      *m->mutable_from()->add_layers() = fromLayerRef(layer);
    }
  }

  v1::StepResult run(const v1::StepSpec& spec) {
    std::string log;
    v1::StepResult result =
        runner_->run(spec, [&log](const v1::StepLog& line) { log += line.line() + "\n"; });
    last_log_ = log;
    return result;
  }

  // The entries of a result layer's blob as an independent reader (tar) lists them.
  std::set<std::string> layerEntries(const v1::StepResult& result) {
    auto digest = Digest::parse(result.layer().blob().digest());
    EXPECT_TRUE(digest.isOk());
    auto listed = runShell("tar -tf " + blobs_->blobPath(*digest).string());
    EXPECT_EQ(listed.code, 0) << listed.text;
    std::set<std::string> names;
    std::istringstream in(listed.text);
    for (std::string line; std::getline(in, line);) {
      while (!line.empty() && line.back() == '/') {
        line.pop_back();
      }
      if (line.rfind("./", 0) == 0) {
        line = line.substr(2);
      }
      if (!line.empty() && line != ".") {
        names.insert(line);
      }
    }
    return names;
  }

  // A file of a result layer, read from the unpacked copy the layer store keeps.
  std::string layerFile(const v1::StepResult& result, const std::string& rel) {
    auto made = toLayerRef(result.layer(), "layer");
    EXPECT_TRUE(made.isOk()) << made.status().toString();
    auto lease = store_->acquire({*made});
    EXPECT_TRUE(lease.isOk()) << lease.status().toString();
    return lease.isOk() ? readFile(lease->dirs()[0] / rel) : "";
  }

  LayerRef appContext() {
    return storeManifest({
        file("go.mod", 0644, 1700000001, "module example.com/app\n"),
        dir("src", 0755, 1700000002),
        file("src/main.go", 0644, 1700000003, "package main\n"),
        file("src/sub/a.txt", 0600, 1700000004, "a\n"),
        symlink("inside", "/src", 1700000005),
    });
  }

  static lf::testing::TempDir* rootfs_dir_;
  LayerRef base_;
  std::unique_ptr<LayerStore> store_;
  std::unique_ptr<StepRunner> runner_;
  std::string last_log_;
  int next_step_ = 0;
};

lf::testing::TempDir* BindMountRootTest::rootfs_dir_ = nullptr;

TEST_F(BindMountRootTest, ContextFileAndDirAreBoundReadOnlyAndStayOutOfTheLayer) {
  LayerRef context = appContext();
  v1::StepSpec spec = runSpec(
      "cat /work/go.mod > /gomod; cat /code/main.go > /main; ls /code/sub > /sub; "
      "test -f /work/go.mod && test -d /code && echo types-ok > /types; "
      "( echo x > /code/new ) 2>/dev/null && echo dir-writable >> /writes; "
      "( echo y >> /work/go.mod ) 2>/dev/null && echo file-writable >> /writes; "
      "touch /writes; grep ' /code ' /proc/self/mountinfo | cut -d' ' -f6 > /opts");
  addBind(&spec, {context}, "go.mod", "/work/go.mod");
  addBind(&spec, {context}, "src", "/code");
  v1::StepResult result = run(spec);
  ASSERT_EQ(result.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << result.error() << last_log_;
  // Neither the mount points (/work, /work/go.mod, /code) nor anything bound is in the layer.
  EXPECT_EQ(layerEntries(result),
            (std::set<std::string>{"gomod", "main", "sub", "types", "writes", "opts"}));
  EXPECT_EQ(layerFile(result, "opts"), "ro,nosuid,nodev,relatime\n");
  EXPECT_EQ(layerFile(result, "gomod"), "module example.com/app\n");
  EXPECT_EQ(layerFile(result, "main"), "package main\n");
  EXPECT_EQ(layerFile(result, "sub"), "a.txt\n");
  EXPECT_EQ(layerFile(result, "types"), "types-ok\n");
  EXPECT_EQ(layerFile(result, "writes"), "");  // read-only: both writes were refused
}

TEST_F(BindMountRootTest, ReadWriteBindTakesWritesThatVanishWithTheStep) {
  LayerRef context = appContext();
  v1::StepSpec spec = runSpec(
      "echo changed > /code/main.go && echo new > /code/new && rm /code/sub/a.txt && "
      "cat /code/main.go /code/new > /seen && ls /code/sub | wc -l > /count");
  addBind(&spec, {context}, "src", "/code", /*readonly=*/false);
  v1::StepResult result = run(spec);
  ASSERT_EQ(result.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << result.error() << last_log_;
  EXPECT_EQ(layerEntries(result), (std::set<std::string>{"seen", "count"}));
  EXPECT_EQ(layerFile(result, "seen"), "changed\nnew\n");

  // The next step sees the context as it was: the writes went to a throwaway upper dir.
  v1::StepSpec again = runSpec("cat /code/main.go /code/sub/a.txt > /again; ls /code > /list");
  addBind(&again, {context}, "src", "/code");
  v1::StepResult second = run(again);
  ASSERT_EQ(second.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << second.error() << last_log_;
  EXPECT_EQ(layerFile(second, "again"), "package main\na\n");
  EXPECT_EQ(layerFile(second, "list"), "main.go\nsub\n");
  // Each step's scratch dir (with the throwaway upper) is gone.
  EXPECT_TRUE(fs::is_empty(tmp_ / "state/steps"));
}

TEST_F(BindMountRootTest, BindFromATwoLayerChainSeesTheMergedTree) {
  LayerRef lower = makeLayer({{"out/a", "one"}, {"out/b", "old"}, {"etc-c", "c-file"}});
  fs::path upper_dir = makeDir({{"out/b", "new"}, {"out/c", "three"}});
  // A deletion of out/a, in overlay form (a 0:0 character device) as a step's upper dir has it.
  ASSERT_EQ(::mknod((upper_dir / "out/a").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
  LayerRef upper = layerOf(upper_dir, /*overlay_upper=*/true);

  v1::StepSpec spec = runSpec("ls /in > /list; cat /in/b > /b; cat /etc/c.txt > /c");
  addBind(&spec, {lower, upper}, "/out", "/in");
  addBind(&spec, {lower, upper}, "etc-c", "/etc/c.txt");
  v1::StepResult result = run(spec);
  ASSERT_EQ(result.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << result.error() << last_log_;
  EXPECT_EQ(layerFile(result, "list"), "b\nc\n");
  EXPECT_EQ(layerFile(result, "b"), "new");
  EXPECT_EQ(layerFile(result, "c"), "c-file");
  // /etc is in the image; the file mount point in it is not in the layer.
  EXPECT_EQ(layerEntries(result), (std::set<std::string>{"list", "b", "c"}));

  // Read-write over the chain: writable, and the layers stay as they were.
  v1::StepSpec rw = runSpec("echo more >> /in/b && cat /in/b > /b2");
  addBind(&rw, {lower, upper}, "out", "/in", /*readonly=*/false);
  v1::StepResult written = run(rw);
  ASSERT_EQ(written.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << written.error() << last_log_;
  EXPECT_EQ(layerFile(written, "b2"), "newmore\n");
  auto lease = store_->acquire({upper});
  ASSERT_TRUE(lease.isOk());
  EXPECT_EQ(readFile(lease->dirs()[0] / "out/b"), "new");
}

TEST_F(BindMountRootTest, SymlinksInTheSourceResolveInsideTheTree) {
  lf::testing::TempDir host;
  fs::path secret = host.write("secret", "host-secret");
  LayerRef context = storeManifest({
      file("src/main.go", 0644, 1, "package main\n"),
      symlink("inside", "/src", 2),
      symlink("abs-escape", secret.string(), 3),
      symlink("rel-escape", "../../../../../../../../../../" + secret.string(), 4),
      symlink("up", "../../../..", 5),
  });

  // An absolute link to a dir of the context is the context's dir, not the host's /src.
  v1::StepSpec inside = runSpec("cat /code/main.go > /main; ls /ctx > /ctx-list");
  addBind(&inside, {context}, "inside", "/code");
  // ".." and a link climbing out stop at the context's root.
  addBind(&inside, {context}, "up/../..", "/ctx");
  v1::StepResult ok = run(inside);
  ASSERT_EQ(ok.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << ok.error() << last_log_;
  EXPECT_EQ(layerFile(ok, "main"), "package main\n");
  EXPECT_EQ(layerFile(ok, "ctx-list"), "abs-escape\ninside\nrel-escape\nsrc\nup\n");

  // Links that point at a host file resolve inside the context, where there is no such file.
  for (const char* link : {"abs-escape", "rel-escape"}) {
    SCOPED_TRACE(link);
    v1::StepSpec spec = runSpec("cat /s > /leaked");
    addBind(&spec, {context}, link, "/s");
    v1::StepResult result = run(spec);
    EXPECT_EQ(result.outcome(), v1::STEP_OUTCOME_FAILED) << result.error();
    EXPECT_NE(result.error().find("no such file or directory in the build context"),
              std::string::npos)
        << result.error();
    EXPECT_FALSE(result.has_layer());
  }
}

TEST_F(BindMountRootTest, AUserOtherThanRootReadsTheBoundTrees) {
  LayerRef context = appContext();
  LayerRef lower = makeLayer({{"out/a", "one"}});
  LayerRef upper = makeLayer({{"out/b", "two"}});
  v1::StepSpec spec = runSpec("cat /ro/go.mod /rw/go.mod /chain/a /chain/b; ls /ctx /empty");
  spec.mutable_config()->set_user("nobody");
  addBind(&spec, {context}, "", "/ro");
  addBind(&spec, {context}, "", "/rw", /*readonly=*/false);
  addBind(&spec, {lower, upper}, "out", "/chain");
  addBind(&spec, {context}, ".", "/ctx");
  addBind(&spec, {}, "", "/empty");  // FROM scratch: an empty tree
  v1::StepResult result = run(spec);
  ASSERT_EQ(result.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << result.error() << last_log_;
  EXPECT_NE(last_log_.find("module example.com/app\nmodule example.com/app\nonetwo"),
            std::string::npos)
      << last_log_;
  EXPECT_NE(last_log_.find("go.mod\ninside\nsrc"), std::string::npos) << last_log_;
  EXPECT_TRUE(result.empty_layer());
}

TEST_F(BindMountRootTest, MissingSourceFailsTheStepNamingSourceAndContext) {
  LayerRef context = appContext();
  v1::StepSpec spec = runSpec("true");
  addBind(&spec, {context}, "go.sum", "/src/go.sum");
  v1::StepResult result = run(spec);
  EXPECT_EQ(result.outcome(), v1::STEP_OUTCOME_FAILED);
  EXPECT_NE(
      result.error().find("RUN --mount=type=bind,source=go.sum,target=/src/go.sum: no such file or "
                          "directory in the build context"),
      std::string::npos)
      << result.error();

  // From a stage's layers: named as such.
  LayerRef stage = makeLayer({{"out/bin", "x"}});
  v1::StepSpec from_stage = runSpec("true");
  addBind(&from_stage, {stage}, "out/missing", "/in");
  v1::StepResult failed = run(from_stage);
  EXPECT_EQ(failed.outcome(), v1::STEP_OUTCOME_FAILED);
  EXPECT_NE(failed.error().find("source=out/missing,target=/in: no such file or directory in "
                                "the mount's from filesystem"),
            std::string::npos)
      << failed.error();
}

TEST_F(BindMountRootTest, UnsupportedMountTypesAreFailedStepsNotErrors) {
  for (auto type : {v1::RunMount::TYPE_SECRET, v1::RunMount::TYPE_SSH}) {
    v1::StepSpec spec = runSpec("true");
    v1::RunMount* m = spec.mutable_run()->add_mounts();
    m->set_type(type);
    m->set_target("/run/secrets/token");
    v1::StepResult result = run(spec);
    EXPECT_EQ(result.outcome(), v1::STEP_OUTCOME_FAILED) << result.error();
    EXPECT_NE(result.error().find("is not supported by the worker"), std::string::npos)
        << result.error();
  }
  // A bad mount field is the spec's fault too.
  v1::StepSpec spec = runSpec("true");
  addBind(&spec, {}, "", "/proc/x");
  v1::StepResult result = run(spec);
  EXPECT_EQ(result.outcome(), v1::STEP_OUTCOME_FAILED) << result.error();
  EXPECT_NE(result.error().find("run.mounts[0].target"), std::string::npos) << result.error();
}

}  // namespace
}  // namespace lf::worker::testing
