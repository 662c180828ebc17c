// makeStepSpec over real plans: a Dockerfile parsed and planned (with a fake base digest and a
// real scanned context), each layer step turned into a StepSpec, which the worker's own validator
// (worker/exec/step_spec.h) must accept.

#include "coordinator/builds/step_specs.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "common/context/context_scanner.h"
#include "common/dockerfile/parser.h"
#include "common/oci/media_types.h"
#include "tests/support/temp_dir.h"
#include "worker/exec/step_spec.h"

namespace lf::coordinator {
namespace {

namespace v1 = layerfarm::v1;
using lf::testing::TempDir;

const Digest kBusybox = Digest::sha256Of("busybox manifest");

BuiltLayer fakeLayer(std::string_view name) {
  BuiltLayer l;
  l.descriptor.media_type = std::string(oci::kOciLayerTarGzip);
  l.descriptor.digest = Digest::sha256Of(std::string("blob ") + std::string(name));
  l.descriptor.size = 1000 + name.size();
  l.diff_id = Digest::sha256Of(std::string("diff ") + std::string(name));
  return l;
}

BuiltLayer emptyLayer() {
  BuiltLayer l = fakeLayer("empty");
  l.diff_id = emptyLayerDiffId();
  return l;
}

// Keeps the Dockerfile and context snapshot alive for the plan's pointers.
struct Planned {
  dockerfile::Dockerfile df;
  context::ContextSnapshot ctx;
  plan::BuildPlan plan;
};

std::unique_ptr<Planned> planOf(const TempDir& dir, std::string_view text) {
  auto out = std::make_unique<Planned>();
  auto df = dockerfile::parse(text);
  EXPECT_TRUE(df.isOk()) << df.status().toString();
  if (!df.isOk()) return nullptr;
  out->df = std::move(*df);
  auto ctx = context::scanContext(dir.path(), {});
  EXPECT_TRUE(ctx.isOk()) << ctx.status().toString();
  if (!ctx.isOk()) return nullptr;
  out->ctx = std::move(*ctx);
  plan::PlanInput in;
  in.dockerfile = &out->df;
  in.context = &out->ctx;
  in.build_args = {{"B", "from-cli"}};
  plan::RuntimeConfig base_config;
  base_config.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  base_config.cmd = std::vector<std::string>{"sh"};
  in.bases = {{"busybox", {kBusybox, base_config, 1}},
              {"alpine:3.20", {Digest::sha256Of("alpine"), std::nullopt, 1}}};
  auto p = plan::makePlan(in);
  EXPECT_TRUE(p.isOk()) << p.status().toString();
  if (!p.isOk()) return nullptr;
  out->plan = std::move(*p);
  return out;
}

// The n-th layer step (0-based) of a stage.
const plan::Step* layerStep(const plan::Stage& stage, int n) {
  for (const auto& s : stage.steps) {
    if (s.produces_layer && n-- == 0) return &s;
  }
  ADD_FAILURE() << "stage " << stage.index << " has no layer step " << n;
  return nullptr;
}

StepSpecInput inputFor(const Planned& p, int stage, int n) {
  StepSpecInput in;
  in.stage = &p.plan.stages.at(stage);
  in.step = layerStep(*in.stage, n);
  in.parent = {fakeLayer("base")};
  in.context = fakeLayer("context");
  in.context->descriptor.media_type = std::string(oci::kOciLayerTar);
  return in;
}

// Makes the spec and checks the worker would take it (also through its JSON form).
v1::StepSpec specOf(const StepSpecInput& in) {
  auto spec = makeStepSpec(in);
  EXPECT_TRUE(spec.isOk()) << spec.status().toString();
  if (!spec.isOk()) return {};
  Status valid = worker::validateStepSpec(*spec);
  EXPECT_TRUE(valid.isOk()) << valid.toString() << "\n" << worker::stepSpecToJson(*spec);
  auto reparsed = worker::parseStepSpecJson(worker::stepSpecToJson(*spec), "spec.json");
  EXPECT_TRUE(reparsed.isOk()) << reparsed.status().toString();
  return *spec;
}

std::vector<std::string> list(const google::protobuf::RepeatedPtrField<std::string>& field) {
  return {field.begin(), field.end()};
}

bool contains(const std::vector<std::string>& v, const std::string& item) {
  return std::find(v.begin(), v.end(), item) != v.end();
}

TEST(StepSpecs, RunShellFormWithEnvArgsUserWorkdir) {
  TempDir dir;
  auto p = planOf(dir, R"(FROM busybox
ENV A=1
ARG B=default
USER app:staff
WORKDIR /src
WORKDIR sub
RUN echo "$A $B" > out
)");
  ASSERT_TRUE(p);
  StepSpecInput in = inputFor(*p, 0, 0);
  in.source_date_epoch = 1700000000;
  in.compression = v1::COMPRESSION_ZSTD;
  v1::StepSpec spec = specOf(in);
  EXPECT_EQ(spec.kind(), v1::STEP_KIND_RUN);
  EXPECT_EQ(list(spec.run().command()), std::vector<std::string>{"echo \"$A $B\" > out"});
  EXPECT_TRUE(spec.run().shell_form());
  EXPECT_EQ(list(spec.config().shell()), (std::vector<std::string>{"/bin/sh", "-c"}));
  auto env = list(spec.config().env());
  EXPECT_TRUE(contains(env, "A=1")) << ::testing::PrintToString(env);
  EXPECT_TRUE(contains(env, "B=from-cli")) << ::testing::PrintToString(env);
  EXPECT_TRUE(contains(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
  EXPECT_EQ(spec.config().user(), "app:staff");
  EXPECT_EQ(spec.config().working_dir(), "/src/sub");
  EXPECT_EQ(spec.config().hostname(), "buildkitsandbox");
  EXPECT_EQ(spec.run().network(), v1::NETWORK_MODE_DEFAULT);
  ASSERT_EQ(spec.parent().layers_size(), 1);
  EXPECT_EQ(spec.parent().layers(0).blob().digest(), in.parent[0].descriptor.digest.toString());
  EXPECT_EQ(spec.parent().layers(0).diff_id(), in.parent[0].diff_id.toString());
  EXPECT_EQ(spec.compression(), v1::COMPRESSION_ZSTD);
  ASSERT_TRUE(spec.has_source_date_epoch());
  EXPECT_EQ(spec.source_date_epoch(), 1700000000);
}

TEST(StepSpecs, RunExecFormAndShell) {
  TempDir dir;
  auto p = planOf(dir, R"(FROM busybox
RUN ["ls", "-l", "/"]
SHELL ["/bin/bash", "-eu", "-o", "pipefail", "-c"]
RUN make | tee log
)");
  ASSERT_TRUE(p);
  v1::StepSpec exec = specOf(inputFor(*p, 0, 0));
  EXPECT_FALSE(exec.run().shell_form());
  EXPECT_EQ(list(exec.run().command()), (std::vector<std::string>{"ls", "-l", "/"}));
  v1::StepSpec shell = specOf(inputFor(*p, 0, 1));
  EXPECT_TRUE(shell.run().shell_form());
  EXPECT_EQ(list(shell.config().shell()),
            (std::vector<std::string>{"/bin/bash", "-eu", "-o", "pipefail", "-c"}));
  EXPECT_EQ(list(shell.run().command()), std::vector<std::string>{"make | tee log"});
}

TEST(StepSpecs, RunNetworkModes) {
  TempDir dir;
  auto p = planOf(dir, R"(FROM busybox
RUN --network=none true
RUN --network=host true
RUN --network=default true
)");
  ASSERT_TRUE(p);
  EXPECT_EQ(specOf(inputFor(*p, 0, 0)).run().network(), v1::NETWORK_MODE_NONE);
  EXPECT_EQ(specOf(inputFor(*p, 0, 1)).run().network(), v1::NETWORK_MODE_HOST);
  EXPECT_EQ(specOf(inputFor(*p, 0, 2)).run().network(), v1::NETWORK_MODE_DEFAULT);
}

TEST(StepSpecs, CacheAndTmpfsMountsResolvedAgainstWorkdir) {
  TempDir dir;
  auto p = planOf(dir, R"(FROM busybox
WORKDIR /app
RUN --mount=type=cache,target=.cache/go,id=gocache,sharing=locked,mode=0700,uid=1000,gid=100 \
    --mount=type=cache,target=../var/cache/apk \
    --mount=type=tmpfs,target=/tmp/scratch,size=64m \
    go build
)");
  ASSERT_TRUE(p);
  v1::StepSpec spec = specOf(inputFor(*p, 0, 0));
  ASSERT_EQ(spec.run().mounts_size(), 3);
  const auto& go = spec.run().mounts(0);
  EXPECT_EQ(go.type(), v1::RunMount::TYPE_CACHE);
  EXPECT_EQ(go.target(), "/app/.cache/go");
  EXPECT_EQ(go.id(), "gocache");
  EXPECT_EQ(go.sharing(), "locked");
  EXPECT_EQ(go.mode(), 0700u);
  EXPECT_EQ(go.uid(), 1000u);
  EXPECT_EQ(go.gid(), 100u);
  EXPECT_FALSE(go.readonly());
  const auto& apk = spec.run().mounts(1);
  EXPECT_EQ(apk.target(), "/var/cache/apk");
  EXPECT_EQ(apk.id(), "../var/cache/apk");  // BuildKit's default id: the target as written
  EXPECT_EQ(apk.sharing(), "shared");
  EXPECT_EQ(apk.mode(), 0755u);
  const auto& tmp = spec.run().mounts(2);
  EXPECT_EQ(tmp.type(), v1::RunMount::TYPE_TMPFS);
  EXPECT_EQ(tmp.target(), "/tmp/scratch");
  EXPECT_EQ(tmp.size_bytes(), 64 << 20);
}

TEST(StepSpecs, BindMountsFromStageAndContext) {
  TempDir dir;
  dir.write("go.mod", "module x\n");
  auto p = planOf(dir, R"(FROM busybox AS tools
RUN make tools

FROM busybox
RUN --mount=type=bind,from=tools,source=/usr/bin/tool,target=/usr/local/bin/tool \
    --mount=type=bind,source=go.mod,target=go.mod tool go.mod
)");
  ASSERT_TRUE(p);
  StepSpecInput in = inputFor(*p, 1, 0);
  in.stage_chains[0] = {fakeLayer("base"), fakeLayer("tools"), emptyLayer()};
  auto spec = makeStepSpec(in);
  ASSERT_TRUE(spec.isOk()) << spec.status().toString();
  ASSERT_EQ(spec->run().mounts_size(), 2);
  const auto& tool = spec->run().mounts(0);
  EXPECT_EQ(tool.type(), v1::RunMount::TYPE_BIND);
  EXPECT_EQ(tool.source(), "/usr/bin/tool");
  EXPECT_TRUE(tool.readonly());
  ASSERT_EQ(tool.from().layers_size(), 2);  // the empty layer is not part of the filesystem
  EXPECT_EQ(tool.from().layers(1).diff_id(), fakeLayer("tools").diff_id.toString());
  const auto& ctx = spec->run().mounts(1);
  EXPECT_EQ(ctx.target(), "/go.mod");
  ASSERT_EQ(ctx.from().layers_size(), 1);
  EXPECT_EQ(ctx.from().layers(0).blob().digest(), in.context->descriptor.digest.toString());
}

// Stage refs are matched to Step::uses_stages in order, image refs by name, however they mix.
TEST(StepSpecs, BindMountsFromSeveralStagesAndAnImage) {
  TempDir dir;
  auto p = planOf(dir, R"(FROM busybox AS a
RUN make a
FROM busybox AS b
RUN make b
FROM busybox
RUN --mount=type=bind,from=b,target=/b \
    --mount=type=bind,from=alpine:3.20,target=/alpine \
    --mount=type=bind,from=a,target=/a,rw \
    --mount=type=bind,from=1,target=/b1 ls /a /b /b1 /alpine
)");
  ASSERT_TRUE(p);
  StepSpecInput in = inputFor(*p, 2, 0);
  in.stage_chains[0] = {fakeLayer("a")};
  in.stage_chains[1] = {fakeLayer("b")};
  in.image_chains["alpine:3.20"] = {fakeLayer("alpine")};
  auto spec = makeStepSpec(in);
  ASSERT_TRUE(spec.isOk()) << spec.status().toString();
  ASSERT_EQ(spec->run().mounts_size(), 4);
  auto only = [](const v1::RunMount& m) {
    EXPECT_EQ(m.from().layers_size(), 1) << m.target();
    return m.from().layers_size() == 1 ? m.from().layers(0).diff_id() : std::string();
  };
  EXPECT_EQ(only(spec->run().mounts(0)), fakeLayer("b").diff_id.toString());
  EXPECT_EQ(only(spec->run().mounts(1)), fakeLayer("alpine").diff_id.toString());
  EXPECT_EQ(only(spec->run().mounts(2)), fakeLayer("a").diff_id.toString());
  EXPECT_FALSE(spec->run().mounts(2).readonly());
  EXPECT_EQ(only(spec->run().mounts(3)), fakeLayer("b").diff_id.toString());
}

TEST(StepSpecs, SecretAndSshMountsRefusedWithPosition) {
  TempDir dir;
  auto p = planOf(dir, R"(FROM busybox
RUN true

RUN --mount=type=secret,id=token cat /run/secrets/token
RUN --mount=type=ssh git clone git@example.com:x/y
)");
  ASSERT_TRUE(p);
  auto secret = makeStepSpec(inputFor(*p, 0, 1));
  ASSERT_FALSE(secret.isOk());
  EXPECT_EQ(secret.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(secret.status().message().rfind("Dockerfile:4:1: RUN --mount=type=secret", 0), 0u)
      << secret.status().message();
  auto ssh = makeStepSpec(inputFor(*p, 0, 2));
  ASSERT_FALSE(ssh.isOk());
  EXPECT_EQ(ssh.status().message().rfind("Dockerfile:5:1: RUN --mount=type=ssh", 0), 0u)
      << ssh.status().message();
}

TEST(StepSpecs, RunHereDocuments) {
  TempDir dir;
  auto p = planOf(dir,
                  "FROM busybox\nRUN <<EOF\necho one\necho two\nEOF\n"
                  "RUN cat <<'EOF' > /greeting\nhello $USER\nEOF\n"
                  "RUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n");
  ASSERT_TRUE(p);
  v1::StepSpec simple = specOf(inputFor(*p, 0, 0));
  EXPECT_EQ(list(simple.run().command()), std::vector<std::string>{"echo one\necho two\n"});
  v1::StepSpec redirect = specOf(inputFor(*p, 0, 1));
  EXPECT_EQ(list(redirect.run().command()),
            std::vector<std::string>{"cat <<'EOF' > /greeting\nhello $USER\nEOF"});
  auto script = makeStepSpec(inputFor(*p, 0, 2));
  ASSERT_FALSE(script.isOk());
  EXPECT_EQ(script.status().message().rfind("Dockerfile:9:1: ", 0), 0u)
      << script.status().message();
}

TEST(StepSpecs, CopyFromContext) {
  TempDir dir;
  dir.write("app/main.py", "print('hi')\n");
  dir.write("requirements.txt", "flask\n");
  auto p = planOf(dir, R"(FROM busybox
WORKDIR /srv
COPY --chown=1000:1000 --chmod=0644 --link app/ requirements.* ./
)");
  ASSERT_TRUE(p);
  StepSpecInput in = inputFor(*p, 0, 0);
  v1::StepSpec spec = specOf(in);
  EXPECT_EQ(spec.kind(), v1::STEP_KIND_COPY);
  ASSERT_EQ(spec.copy().source_case(), v1::CopyStep::kContext);
  EXPECT_EQ(spec.copy().context().blob().digest(), in.context->descriptor.digest.toString());
  EXPECT_EQ(spec.copy().context().blob().media_type(), oci::kOciLayerTar);
  EXPECT_EQ(list(spec.copy().sources()), (std::vector<std::string>{"app/", "requirements.*"}));
  EXPECT_EQ(spec.copy().destination(), "./");
  EXPECT_EQ(spec.config().working_dir(), "/srv");  // the worker resolves "./" against it
  EXPECT_EQ(spec.copy().chown(), "1000:1000");
  EXPECT_EQ(spec.copy().chmod(), "644");
  EXPECT_TRUE(spec.copy().link());
  EXPECT_EQ(spec.config().env_size(), 0);  // COPY runs no process
}

TEST(StepSpecs, CopyFromStageUsesItsChain) {
  TempDir dir;
  auto p = planOf(dir, R"(FROM busybox AS build
RUN make /out/app

FROM busybox AS other
RUN true

FROM scratch
COPY --from=other /etc/x /x
COPY --from=build /out/app /app
COPY --from=0 /out/app /app0
)");
  ASSERT_TRUE(p);
  const int last = static_cast<int>(p->plan.stages.size()) - 1;
  StepSpecInput in = inputFor(*p, last, 1);
  in.parent = {fakeLayer("x")};
  in.stage_chains[0] = {fakeLayer("busybox"), emptyLayer(), fakeLayer("app")};
  in.stage_chains[1] = {fakeLayer("busybox"), fakeLayer("other")};
  v1::StepSpec spec = specOf(in);
  ASSERT_EQ(spec.copy().source_case(), v1::CopyStep::kFrom);
  ASSERT_EQ(spec.copy().from().layers_size(), 2);
  EXPECT_EQ(spec.copy().from().layers(1).blob().digest(),
            fakeLayer("app").descriptor.digest.toString());
  EXPECT_EQ(list(spec.copy().sources()), std::vector<std::string>{"/out/app"});
  EXPECT_EQ(spec.copy().chown(), "");

  StepSpecInput by_index_in = inputFor(*p, last, 2);
  by_index_in.stage_chains = in.stage_chains;
  v1::StepSpec by_index = specOf(by_index_in);
  EXPECT_EQ(by_index.copy().from().layers(1).diff_id(), fakeLayer("app").diff_id.toString());

  StepSpecInput missing = inputFor(*p, last, 0);
  auto r = makeStepSpec(missing);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("stage 1 has not been built"), std::string::npos)
      << r.status().message();
}

TEST(StepSpecs, CopyFromImage) {
  TempDir dir;
  auto p = planOf(dir, R"(FROM busybox
COPY --from=alpine:3.20 /etc/os-release /etc/alpine-release
)");
  ASSERT_TRUE(p);
  StepSpecInput in = inputFor(*p, 0, 0);
  auto missing = makeStepSpec(in);
  ASSERT_FALSE(missing.isOk());
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(missing.status().message().rfind("Dockerfile:2:1: COPY --from=alpine:3.20", 0), 0u)
      << missing.status().message();
  in.image_chains["alpine:3.20"] = {fakeLayer("alpine")};
  v1::StepSpec spec = specOf(in);
  ASSERT_EQ(spec.copy().from().layers_size(), 1);
  EXPECT_EQ(spec.copy().from().layers(0).diff_id(), fakeLayer("alpine").diff_id.toString());
}

TEST(StepSpecs, AddWithChownChmodAndRefusals) {
  TempDir dir;
  dir.write("tool.tar.gz", "not really a tarball");
  auto p = planOf(dir, R"(FROM busybox
ADD --chown=app:app --chmod=755 tool.tar.gz /opt/
ADD https://example.com/x.tar.gz /opt/
COPY --chmod=u+x tool.tar.gz /bin/tool
)");
  ASSERT_TRUE(p);
  v1::StepSpec add = specOf(inputFor(*p, 0, 0));
  EXPECT_EQ(add.kind(), v1::STEP_KIND_ADD);
  EXPECT_EQ(add.copy().chown(), "app:app");
  EXPECT_EQ(add.copy().chmod(), "755");
  EXPECT_EQ(list(add.copy().sources()), std::vector<std::string>{"tool.tar.gz"});
  EXPECT_EQ(add.copy().destination(), "/opt/");

  auto url = makeStepSpec(inputFor(*p, 0, 1));
  ASSERT_FALSE(url.isOk());
  EXPECT_EQ(url.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(url.status().message().rfind("Dockerfile:3:1: ADD https://example.com/x.tar.gz", 0), 0u)
      << url.status().message();

  auto symbolic = makeStepSpec(inputFor(*p, 0, 2));
  ASSERT_FALSE(symbolic.isOk());
  EXPECT_EQ(symbolic.status().message().rfind("Dockerfile:4:1: COPY --chmod=u+x", 0), 0u)
      << symbolic.status().message();
}

TEST(StepSpecs, ToLayerChainDropsEmptyLayers) {
  BuiltLayer flagged = fakeLayer("flagged");
  flagged.empty = true;
  v1::LayerChain chain = toLayerChain({fakeLayer("a"), emptyLayer(), flagged, fakeLayer("b")});
  ASSERT_EQ(chain.layers_size(), 2);
  EXPECT_EQ(chain.layers(0).diff_id(), fakeLayer("a").diff_id.toString());
  EXPECT_EQ(chain.layers(1).blob().digest(), fakeLayer("b").descriptor.digest.toString());
  EXPECT_EQ(chain.layers(1).blob().size(), static_cast<int64_t>(fakeLayer("b").descriptor.size));
  EXPECT_EQ(chain.layers(1).blob().media_type(), oci::kOciLayerTarGzip);
}

TEST(StepSpecs, BadInputs) {
  TempDir dir;
  auto p = planOf(dir, "FROM busybox\nENV A=1\nRUN true\n");
  ASSERT_TRUE(p);
  StepSpecInput in;
  EXPECT_EQ(makeStepSpec(in).status().code(), StatusCode::kInvalidArgument);
  in.stage = &p->plan.stages[0];
  in.step = &p->plan.stages[0].steps[0];  // ENV: no layer
  EXPECT_EQ(makeStepSpec(in).status().code(), StatusCode::kInvalidArgument);
  in.step = layerStep(p->plan.stages[0], 0);
  BuiltLayer no_diff = fakeLayer("x");
  no_diff.diff_id = Digest();
  in.parent = {no_diff};
  auto r = makeStepSpec(in);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("parent[0]"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace lf::coordinator
