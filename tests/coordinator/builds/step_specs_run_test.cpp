// The specs makeStepSpec produces, run by the worker's real StepRunner (namespaces, overlayfs) on
// a busybox base layer made offline: a two-stage build driven step by step the way the build
// manager does (each layer step's spec from the plan, its parent the chain so far). The
// Dockerfile checks its own results with `test`, so a wrong spec fails a step. Root only.

#include <gtest/gtest.h>
#include <unistd.h>

#include "common/blob/directory_blob_store.h"
#include "common/context/context_scanner.h"
#include "common/dockerfile/parser.h"
#include "common/layer/layer_writer.h"
#include "coordinator/builds/step_specs.h"
#include "tests/support/shell.h"
#include "tests/support/temp_dir.h"
#include "worker/exec/step_runner.h"
#include "worker/layer_store/layer_store.h"

namespace lf::coordinator {
namespace {

namespace fs = std::filesystem;
namespace v1 = layerfarm::v1;

constexpr std::string_view kDockerfile = R"DF(FROM busybox AS build
ENV GREETING=hello
ARG WHO=world
WORKDIR /work
RUN echo "$GREETING $WHO" > msg && mkdir -p /out && cp msg /out/msg
RUN --mount=type=cache,target=cache,id=c1 echo cached > cache/x && test "$(pwd)" = /work
RUN ["/bin/sh", "-c", "test -f /work/msg && test ! -e /work/cache/x"]
RUN true
RUN <<EOF
echo heredoc > /out/heredoc
EOF

FROM busybox
WORKDIR /srv
COPY --chmod=0600 --chown=1:2 app/ ./app/
COPY --from=build /out/ /data/
SHELL ["/bin/sh", "-e", "-c"]
RUN test "$(cat /data/msg)" = "hello world"; \
    test "$(cat /data/heredoc)" = heredoc; \
    test "$(cat app/main.txt)" = main; \
    test "$(stat -c %a app/main.txt)" = 600; \
    test "$(stat -c %u:%g app/main.txt)" = 1:2; \
    test "$(pwd)" = /srv
)DF";

BuiltLayer builtLayer(const layer::LayerInfo& info) {
  BuiltLayer out;
  out.descriptor.media_type = info.media_type;
  out.descriptor.digest = info.digest;
  out.descriptor.size = info.size;
  out.diff_id = info.diff_id;
  return out;
}

Result<BuiltLayer> builtLayer(const v1::StepResult& result) {
  BuiltLayer out;
  out.descriptor.media_type = result.layer().blob().media_type();
  LF_ASSIGN_OR_RETURN(out.descriptor.digest, Digest::parse(result.layer().blob().digest()));
  out.descriptor.size = static_cast<uint64_t>(result.layer().blob().size());
  LF_ASSIGN_OR_RETURN(out.diff_id, Digest::parse(result.layer().diff_id()));
  out.empty = result.empty_layer();
  return out;
}

TEST(StepSpecsRun, TwoStageBuildRunsOnTheWorker) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, overlayfs)";
  lf::testing::TempDir dir;
  fs::path rootfs = dir / "rootfs";
  auto made = lf::testing::runShell(std::string(LF_TEST_DATA_DIR) + "/make-busybox-rootfs.sh " +
                                    rootfs.string());
  ASSERT_EQ(made.code, 0) << made.text;
  auto blobs = blob::DirectoryBlobStore::open(dir / "blobs");
  ASSERT_TRUE(blobs.isOk()) << blobs.status().toString();
  layer::LayerOptions layer_options;
  layer_options.source_date_epoch = 1704067200;
  auto base = layer::writeLayer(rootfs, layer_options, **blobs);
  ASSERT_TRUE(base.isOk()) << base.status().toString();

  fs::path ctx_dir = dir / "context";
  dir.write("context/app/main.txt", "main");
  layer::LayerOptions ctx_options;
  ctx_options.compression = layer::Compression::kNone;
  auto ctx_layer = layer::writeLayer(ctx_dir, ctx_options, **blobs);
  ASSERT_TRUE(ctx_layer.isOk()) << ctx_layer.status().toString();

  auto df = dockerfile::parse(kDockerfile);
  ASSERT_TRUE(df.isOk()) << df.status().toString();
  auto snapshot = context::scanContext(ctx_dir, {});
  ASSERT_TRUE(snapshot.isOk()) << snapshot.status().toString();
  plan::PlanInput in;
  in.dockerfile = &*df;
  in.context = &*snapshot;
  plan::RuntimeConfig base_config;
  base_config.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  in.bases = {{"busybox", {Digest::sha256Of("busybox"), base_config, 1}}};
  auto plan = plan::makePlan(in);
  ASSERT_TRUE(plan.isOk()) << plan.status().toString();

  worker::LayerStoreOptions store_options;
  store_options.root = dir / "state" / "layers";
  store_options.sync = false;
  auto layers = worker::LayerStore::open(store_options, **blobs);
  ASSERT_TRUE(layers.isOk()) << layers.status().toString();
  worker::StepRunnerOptions runner_options;
  runner_options.state_root = dir / "state";
  runner_options.use_cgroups = false;
  runner_options.compression_threads = 1;
  worker::StepRunner runner(runner_options, **blobs, **layers);

  std::map<int, LayerChainInfo> stage_chains;
  int empty_layers = 0;
  for (const plan::Stage& stage : plan->stages) {
    LayerChainInfo chain = {builtLayer(*base)};
    for (const plan::Step& step : stage.steps) {
      if (!step.produces_layer) continue;
      StepSpecInput spec_in;
      spec_in.stage = &stage;
      spec_in.step = &step;
      spec_in.parent = chain;
      spec_in.context = builtLayer(*ctx_layer);
      spec_in.stage_chains = stage_chains;
      spec_in.source_date_epoch = 1704067200;
      auto spec = makeStepSpec(spec_in);
      ASSERT_TRUE(spec.isOk()) << spec.status().toString();
      spec->set_step_id("s" + std::to_string(stage.index) + "-" + std::to_string(step.index));
      std::string log;
      v1::StepResult result =
          runner.run(*spec, [&](const v1::StepLog& line) { log += line.line() + "\n"; });
      ASSERT_EQ(result.outcome(), v1::STEP_OUTCOME_SUCCEEDED)
          << step.created_by << ": " << result.error() << "\n"
          << log;
      auto layer = builtLayer(result);
      ASSERT_TRUE(layer.isOk()) << layer.status().toString();
      if (layer->empty) ++empty_layers;
      chain.push_back(*layer);
    }
    stage_chains[stage.index] = chain;
  }
  // The cache step (its file lands in the cache, not the layer), the exec-form check, RUN true
  // and the final checks change nothing.
  EXPECT_EQ(empty_layers, 4);
}

}  // namespace
}  // namespace lf::coordinator
