#include "common/plan/build_plan.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/context/context_scanner.h"
#include "common/dockerfile/parser.h"
#include "tests/support/temp_dir.h"

namespace lf::plan {
namespace {

namespace fs = std::filesystem;
using lf::testing::TempDir;

const Digest kAlpine = Digest::sha256Of("alpine manifest");
const Digest kDebian = Digest::sha256Of("debian manifest");

// Parses, scans and plans; keeps the Dockerfile and snapshot alive for the plan's pointers.
struct Planned {
  dockerfile::Dockerfile df;
  context::ContextSnapshot ctx;
  Result<BuildPlan> plan = internalError("not planned");
};

std::unique_ptr<Planned> planIn(const TempDir& dir, std::string_view dockerfile,
                                std::map<std::string, std::string> build_args = {},
                                std::string target = "",
                                std::map<std::string, BaseImage> bases = {
                                    {"alpine:3.20", {kAlpine, std::nullopt, 1}},
                                    {"debian", {kDebian, std::nullopt, 1}}}) {
  auto out = std::make_unique<Planned>();
  auto df = dockerfile::parse(dockerfile);
  EXPECT_TRUE(df.isOk()) << df.status().toString();
  if (!df.isOk()) return out;
  out->df = std::move(*df);
  auto ctx = context::scanContext(dir.path(), {});
  EXPECT_TRUE(ctx.isOk()) << ctx.status().toString();
  if (!ctx.isOk()) return out;
  out->ctx = std::move(*ctx);
  PlanInput in;
  in.dockerfile = &out->df;
  in.context = &out->ctx;
  in.build_args = std::move(build_args);
  in.target = std::move(target);
  in.bases = std::move(bases);
  out->plan = makePlan(in);
  return out;
}

// The cache keys of every step of every stage, in order ("-" for unresolved).
std::vector<std::string> keys(const BuildPlan& p) {
  std::vector<std::string> out;
  for (const auto& s : p.stages) {
    for (const auto& st : s.steps) out.push_back(st.cache_key ? st.cache_key->hex() : "-");
  }
  return out;
}

constexpr std::string_view kMultiStage = R"(# syntax=docker/dockerfile:1
ARG VERSION=3.20
FROM alpine:${VERSION} AS build
RUN apk add gcc
WORKDIR /src
COPY hello.c .
RUN gcc -o /hello hello.c

FROM scratch
COPY --from=build /hello /hello
ENTRYPOINT ["/hello"]
)";

TEST(BuildPlan, MultiStageStructure) {
  TempDir dir;
  dir.write("hello.c", "int main(){return 0;}\n");
  auto r = planIn(dir, kMultiStage);
  ASSERT_TRUE(r->plan.isOk()) << r->plan.status().toString();
  const BuildPlan& p = *r->plan;
  ASSERT_EQ(p.stages.size(), 2u);
  EXPECT_EQ(p.stages[0].name, "build");
  EXPECT_EQ(p.stages[0].base_ref, "alpine:3.20");
  EXPECT_EQ(p.stages[1].base_ref, "scratch");
  EXPECT_EQ(p.stages[1].depends_on, std::set<int>{0});
  EXPECT_EQ(p.target_stage, 1);
  EXPECT_EQ(p.step_count, 6);
  EXPECT_EQ(p.layer_step_count, 4);
  EXPECT_TRUE(p.unresolved_images.empty());
  const Step& workdir = p.stages[0].steps[1];
  EXPECT_EQ(workdir.kind, StepKind::kConfig);
  EXPECT_FALSE(workdir.produces_layer);
  EXPECT_EQ(workdir.created_by, "WORKDIR /src");
  EXPECT_EQ(p.stages[0].steps[0].created_by, "RUN /bin/sh -c apk add gcc # buildkit");
  EXPECT_EQ(p.stages[1].steps[0].uses_stages, std::vector<int>{0});
  ASSERT_TRUE(p.stages[1].finalConfig().entrypoint);
  EXPECT_EQ(*p.stages[1].finalConfig().entrypoint, std::vector<std::string>{"/hello"});
  for (const auto& k : keys(p)) EXPECT_NE(k, "-");
}

TEST(BuildPlan, KeysAreDeterministicAndDistinct) {
  TempDir dir;
  dir.write("hello.c", "int main(){return 0;}\n");
  auto a = planIn(dir, kMultiStage);
  auto b = planIn(dir, kMultiStage);
  ASSERT_TRUE(a->plan.isOk() && b->plan.isOk());
  EXPECT_EQ(keys(*a->plan), keys(*b->plan));
  auto k = keys(*a->plan);
  std::set<std::string> unique(k.begin(), k.end());
  EXPECT_EQ(unique.size(), k.size());
}

// Index of the first step whose key differs, or -1.
int firstChanged(const BuildPlan& a, const BuildPlan& b) {
  auto ka = keys(a), kb = keys(b);
  for (size_t i = 0; i < std::min(ka.size(), kb.size()); ++i) {
    if (ka[i] != kb[i]) return static_cast<int>(i);
  }
  return -1;
}

TEST(BuildPlan, ContentChangeRebuildsFromTheCopy) {
  TempDir dir;
  dir.write("hello.c", "int main(){return 0;}\n");
  auto before = planIn(dir, kMultiStage);
  dir.write("hello.c", "int main(){return 1;}\n");
  auto after = planIn(dir, kMultiStage);
  ASSERT_TRUE(before->plan.isOk() && after->plan.isOk());
  EXPECT_EQ(firstChanged(*before->plan, *after->plan), 2);  // COPY hello.c .
  auto kb = keys(*before->plan), ka = keys(*after->plan);
  for (size_t i = 2; i < ka.size(); ++i) EXPECT_NE(ka[i], kb[i]) << "step " << i;
}

// RUN --mount=type=bind from the context keys on the content of what it binds: the source's
// subtree, with symlinks resolved inside the context as the worker resolves them.
TEST(BuildPlan, ContextBindMountKeysOnWhatItBinds) {
  auto runKey = [](const TempDir& dir, const std::string& source) {
    auto p = planIn(dir, "FROM alpine:3.20\nRUN --mount=type=bind,source=" + source +
                             ",target=/src/x cat /src/x\n");
    EXPECT_TRUE(p->plan.isOk()) << source << ": " << p->plan.status().toString();
    return p->plan.isOk() ? keys(*p->plan).back() : std::string("error");
  };
  TempDir dir;
  dir.write("go.mod", "module a\n");
  dir.write("other.txt", "x");
  dir.write("real/go.mod", "module r\n");
  fs::create_symlink("real", dir.path() / "dirlink");
  fs::create_symlink("/real/go.mod", dir.path() / "abslink");
  fs::create_symlink("../../../real/go.mod", dir.path() / "uplink");
  std::string go_mod = runKey(dir, "go.mod");
  std::string via_dir = runKey(dir, "dirlink/go.mod");
  std::string via_abs = runKey(dir, "abslink");
  std::string via_up = runKey(dir, "uplink");

  dir.write("other.txt", "y");  // not bound: no change
  EXPECT_EQ(runKey(dir, "go.mod"), go_mod);
  EXPECT_EQ(runKey(dir, "dirlink/go.mod"), via_dir);
  dir.write("go.mod", "module b\n");
  EXPECT_NE(runKey(dir, "go.mod"), go_mod);
  dir.write("real/go.mod", "module r2\n");  // what the links lead to
  EXPECT_NE(runKey(dir, "dirlink/go.mod"), via_dir);
  EXPECT_NE(runKey(dir, "abslink"), via_abs);
  EXPECT_NE(runKey(dir, "uplink"), via_up);
}

TEST(BuildPlan, ModeChangeChangesKey) {
  TempDir dir;
  auto f = dir.write("hello.c", "x\n");
  auto before = planIn(dir, kMultiStage);
  ASSERT_EQ(::chmod(f.c_str(), 0755), 0);
  auto after = planIn(dir, kMultiStage);
  EXPECT_EQ(firstChanged(*before->plan, *after->plan), 2);
}

TEST(BuildPlan, MtimeOwnerAndIgnoredFilesDoNotChangeKeys) {
  TempDir dir;
  auto f = dir.write("hello.c", "x\n");
  dir.write(".dockerignore", "*.log\n");
  dir.write("build.log", "one");
  auto before = planIn(dir, kMultiStage);
  fs::last_write_time(f, fs::last_write_time(f) - std::chrono::hours(48));
  dir.write("build.log", "two, and longer");
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown(f.c_str(), 1234, 5678), 0);
  }
  auto after = planIn(dir, kMultiStage);
  ASSERT_TRUE(before->plan.isOk() && after->plan.isOk());
  EXPECT_EQ(firstChanged(*before->plan, *after->plan), -1);
}

TEST(BuildPlan, BaseDigestChangesEveryKeyOfItsStage) {
  TempDir dir;
  dir.write("hello.c", "x\n");
  auto a = planIn(dir, kMultiStage);
  auto b = planIn(dir, kMultiStage, {}, "",
                  {{"alpine:3.20", {Digest::sha256Of("other"), std::nullopt, 1}}});
  EXPECT_EQ(firstChanged(*a->plan, *b->plan), 0);
  auto ka = keys(*a->plan), kb = keys(*b->plan);
  for (size_t i = 0; i < ka.size(); ++i) EXPECT_NE(ka[i], kb[i]) << i;
}

TEST(BuildPlan, EarlierInstructionChangesLaterKeys) {
  TempDir dir;
  dir.write("hello.c", "x\n");
  auto a = planIn(dir, "FROM debian\nENV A=1\nRUN make\nRUN make install\n");
  auto b = planIn(dir, "FROM debian\nENV A=2\nRUN make\nRUN make install\n");
  EXPECT_EQ(firstChanged(*a->plan, *b->plan), 0);
  auto ka = keys(*a->plan), kb = keys(*b->plan);
  EXPECT_NE(ka[2], kb[2]);
}

TEST(BuildPlan, UsedBuildArgChangesKeyUnusedDoesNot) {
  TempDir dir;
  constexpr std::string_view df = "FROM debian\nRUN echo one\nARG LEVEL=1\nRUN make\n";
  auto a = planIn(dir, df);
  auto b = planIn(dir, df, {{"LEVEL", "2"}});
  auto c = planIn(dir, df, {{"OTHER", "x"}});
  ASSERT_TRUE(a->plan.isOk() && b->plan.isOk() && c->plan.isOk());
  // The ARG step's history shows the declaration (as BuildKit's does); the RUN after it is the
  // first step whose result can differ.
  EXPECT_EQ(firstChanged(*a->plan, *b->plan), 2);
  EXPECT_EQ(keys(*a->plan)[0], keys(*b->plan)[0]);
  EXPECT_EQ(firstChanged(*a->plan, *c->plan), -1);
  EXPECT_EQ(c->plan->unused_build_args, std::vector<std::string>{"OTHER"});
  EXPECT_EQ(b->plan->stages[0].steps[2].created_by, "RUN |1 LEVEL=2 /bin/sh -c make # buildkit");
  EXPECT_NE(std::find(b->plan->stages[0].steps[2].run_env.begin(),
                      b->plan->stages[0].steps[2].run_env.end(), "LEVEL=2"),
            b->plan->stages[0].steps[2].run_env.end());
}

// created_by as BuildKit's Go code formats it (compared against BuildKit by
// tests/e2e/compare_buildkit.sh): %q lists for CMD/ENTRYPOINT, %v lists for SHELL/VOLUME, the
// parsed port set for EXPOSE, RUN's build args in declaration order.
TEST(BuildPlan, HistoryTextLikeBuildKit) {
  TempDir dir;
  auto r = planIn(dir, R"(FROM debian
ARG VERSION=1.0
ARG FLAVOUR
SHELL ["/bin/sh", "-e", "-c"]
RUN echo "$VERSION"
EXPOSE 8080 53/udp 80
VOLUME /data /cache
ENTRYPOINT ["/bin/app", "--say", "a \"quoted\" word\there"]
CMD echo hi
)",
                  {{"FLAVOUR", "mint"}});
  ASSERT_TRUE(r->plan.isOk()) << r->plan.status().toString();
  std::vector<std::string> texts;
  for (const auto& st : r->plan->stages[0].steps) texts.push_back(st.created_by);
  EXPECT_EQ(texts, (std::vector<std::string>{
                       "ARG VERSION=1.0",
                       "ARG FLAVOUR",
                       "SHELL [/bin/sh -e -c]",
                       "RUN |2 VERSION=1.0 FLAVOUR=mint /bin/sh -e -c echo \"$VERSION\" # buildkit",
                       "EXPOSE map[53/udp:{} 80/tcp:{} 8080/tcp:{}]",
                       "VOLUME [/data /cache]",
                       R"(ENTRYPOINT ["/bin/app" "--say" "a \"quoted\" word\there"])",
                       R"(CMD ["/bin/sh" "-e" "-c" "echo hi"])",
                   }));
  const RuntimeConfig& c = r->plan->stages[0].finalConfig();
  EXPECT_TRUE(c.args_escaped);  // CMD sets ArgsEscaped, as BuildKit does
  EXPECT_EQ(c.entrypoint,
            (std::vector<std::string>{"/bin/app", "--say", "a \"quoted\" word\there"}));
}

TEST(BuildPlan, ArgScoping) {
  TempDir dir;
  constexpr std::string_view df = R"(ARG TAG=3.20
ARG GLOBAL_ONLY=g
FROM alpine:${TAG}
LABEL seen="${GLOBAL_ONLY}"
ARG TAG
LABEL tag=$TAG
ARG X=from-arg
ENV X=from-env
LABEL x=$X
ARG TARGETARCH
LABEL arch=$TARGETARCH
)";
  auto r = planIn(dir, df);
  ASSERT_TRUE(r->plan.isOk()) << r->plan.status().toString();
  const auto& labels = r->plan->stages[0].finalConfig().labels;
  EXPECT_EQ(labels.at("seen"), "");       // global ARGs are not visible inside a stage
  EXPECT_EQ(labels.at("tag"), "3.20");    // ... unless re-declared
  EXPECT_EQ(labels.at("x"), "from-env");  // ENV wins over ARG
  EXPECT_EQ(labels.at("arch"), "amd64");
  auto over = planIn(dir, df, {{"TAG", "3.19"}}, "", {{"alpine:3.19", {kAlpine, std::nullopt, 1}}});
  ASSERT_TRUE(over->plan.isOk()) << over->plan.status().toString();
  EXPECT_EQ(over->plan->stages[0].base_ref, "alpine:3.19");
  EXPECT_EQ(over->plan->stages[0].finalConfig().labels.at("tag"), "3.19");
}

TEST(BuildPlan, ProxyArgsReachRunButNotTheKey) {
  TempDir dir;
  constexpr std::string_view df = "FROM debian\nRUN curl example.org\n";
  auto a = planIn(dir, df);
  auto b = planIn(dir, df, {{"HTTP_PROXY", "http://proxy:3128"}});
  EXPECT_EQ(firstChanged(*a->plan, *b->plan), -1);
  EXPECT_TRUE(b->plan->unused_build_args.empty());
  const auto& env = b->plan->stages[0].steps[0].run_env;
  EXPECT_NE(std::find(env.begin(), env.end(), "HTTP_PROXY=http://proxy:3128"), env.end());
}

TEST(BuildPlan, ImageConfig) {
  TempDir dir;
  RuntimeConfig base;
  base.cmd = std::vector<std::string>{"bash"};
  base.env = {"PATH=/bin", "LANG=C"};
  auto r = planIn(dir, R"(FROM debian
ENV LANG=C.UTF-8 APP=/app
WORKDIR app
WORKDIR ../srv/./data
USER 1000:1000
SHELL ["/bin/bash", "-eu", "-c"]
RUN echo hi
EXPOSE 80 53/udp 8000-8002
VOLUME ["/data"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s CMD curl -f localhost
ENTRYPOINT ["/entry"]
ONBUILD RUN echo child
)",
                  {}, "", {{"debian", {kDebian, base, 1}}});
  ASSERT_TRUE(r->plan.isOk()) << r->plan.status().toString();
  const RuntimeConfig& c = r->plan->stages[0].finalConfig();
  EXPECT_EQ(c.env, (std::vector<std::string>{"PATH=/bin", "LANG=C.UTF-8", "APP=/app"}));
  EXPECT_EQ(c.workdir, "/srv/data");
  EXPECT_EQ(c.user, "1000:1000");
  EXPECT_FALSE(c.cmd.has_value());  // ENTRYPOINT resets a CMD inherited from the base
  EXPECT_EQ(c.exposed_ports,
            (std::set<std::string>{"53/udp", "80/tcp", "8000/tcp", "8001/tcp", "8002/tcp"}));
  EXPECT_EQ(c.volumes, std::set<std::string>{"/data"});
  EXPECT_EQ(c.stop_signal, "SIGINT");
  ASSERT_TRUE(c.healthcheck);
  EXPECT_EQ(c.healthcheck->test, (std::vector<std::string>{"CMD-SHELL", "curl -f localhost"}));
  EXPECT_EQ(c.healthcheck->interval_ns, 30'000'000'000);
  EXPECT_EQ(c.onbuild, std::vector<std::string>{"RUN echo child"});
  EXPECT_EQ(r->plan->stages[0].steps[5].created_by, "RUN /bin/bash -eu -c echo hi # buildkit");
}

TEST(BuildPlan, ScratchGetsDefaultPath) {
  TempDir dir;
  auto r = planIn(dir, "FROM scratch\nCMD [\"/x\"]\n");
  ASSERT_TRUE(r->plan.isOk());
  EXPECT_EQ(r->plan->stages[0].finalConfig().getEnv("PATH"),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  EXPECT_TRUE(r->plan->stages[0].steps[0].cache_key.has_value());
}

TEST(BuildPlan, OnbuildTriggersRunInChild) {
  TempDir dir;
  RuntimeConfig base;
  base.onbuild = {"RUN echo from-trigger", "ENV T=1"};
  auto r = planIn(dir, "FROM debian\nRUN echo own\n", {}, "", {{"debian", {kDebian, base, 1}}});
  ASSERT_TRUE(r->plan.isOk()) << r->plan.status().toString();
  const auto& steps = r->plan->stages[0].steps;
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_TRUE(steps[0].from_onbuild);
  EXPECT_EQ(steps[0].created_by, "RUN /bin/sh -c echo from-trigger # buildkit");
  EXPECT_EQ(steps[2].config->getEnv("T"), "1");
  EXPECT_TRUE(steps[2].config->onbuild.empty());
}

TEST(BuildPlan, UnresolvedBaseHasNoKeys) {
  TempDir dir;
  auto r = planIn(dir, "FROM ubuntu:24.04\nRUN true\nFROM scratch\nRUN true\n", {}, "", {});
  ASSERT_TRUE(r->plan.isOk());
  EXPECT_FALSE(r->plan->stages[0].steps[0].cache_key);
  EXPECT_TRUE(r->plan->stages[1].steps[0].cache_key);
  EXPECT_FALSE(r->plan->stages[0].needed);          // the last stage does not use it...
  EXPECT_TRUE(r->plan->unresolved_images.empty());  // ...so its image needs no digest
  auto first = planIn(dir, "FROM ubuntu:24.04\nRUN true\nFROM scratch\nRUN true\n", {}, "0", {});
  ASSERT_TRUE(first->plan.isOk()) << first->plan.status().toString();
  EXPECT_EQ(first->plan->unresolved_images, std::vector<std::string>{"ubuntu:24.04"});
}

TEST(BuildPlan, TargetPrunesUnreachableStages) {
  TempDir dir;
  constexpr std::string_view df = R"(FROM debian AS base
RUN true
FROM base AS test
RUN make test
FROM debian AS docs
RUN make docs
FROM base AS release
COPY --from=docs /docs /docs
)";
  auto r = planIn(dir, df, {}, "TEST");
  ASSERT_TRUE(r->plan.isOk()) << r->plan.status().toString();
  const auto& s = r->plan->stages;
  EXPECT_EQ(r->plan->target_stage, 1);
  EXPECT_TRUE(s[0].needed);
  EXPECT_TRUE(s[1].needed);
  EXPECT_FALSE(s[2].needed);
  EXPECT_FALSE(s[3].needed);
  auto all = planIn(dir, df);
  EXPECT_EQ(all->plan->target_stage, 3);
  EXPECT_TRUE(all->plan->stages[2].needed);
  EXPECT_FALSE(all->plan->stages[1].needed);
  EXPECT_EQ(all->plan->stages[3].depends_on, (std::set<int>{0, 2}));
}

TEST(BuildPlan, CopyFromIndexAndImage) {
  TempDir dir;
  auto r = planIn(dir, R"(FROM debian
RUN make
FROM scratch
COPY --from=0 /a /a
COPY --from=alpine:3.20 /etc/os-release /
COPY --from=nginx:latest /etc/nginx /etc/nginx
)");
  ASSERT_TRUE(r->plan.isOk()) << r->plan.status().toString();
  const auto& steps = r->plan->stages[1].steps;
  EXPECT_EQ(steps[0].uses_stages, std::vector<int>{0});
  EXPECT_EQ(steps[1].uses_images, std::vector<std::string>{"alpine:3.20"});
  EXPECT_TRUE(steps[1].cache_key);
  EXPECT_FALSE(steps[2].cache_key);
  EXPECT_EQ(r->plan->unresolved_images, std::vector<std::string>{"nginx:latest"});
}

void expectError(const TempDir& dir, std::string_view df, std::string_view fragment,
                 std::string target = "") {
  auto r = planIn(dir, df, {}, std::move(target));
  ASSERT_FALSE(r->plan.isOk()) << df;
  EXPECT_NE(r->plan.status().message().find(fragment), std::string::npos)
      << r->plan.status().message();
}

TEST(BuildPlan, Errors) {
  TempDir dir;
  dir.write("a.txt", "a");
  expectError(dir, "FROM debian\nCOPY missing.txt /\n",
              "Dockerfile:2:1: \"missing.txt\": not found in the build context");
  expectError(dir, "FROM debian\nCOPY ../etc/passwd /\n", "outside the build context");
  expectError(dir, "FROM debian\nCOPY --from=1 /a /a\nFROM debian\n", "stage index 1");
  expectError(dir, "FROM debian AS a\nCOPY --from=b /x /x\nFROM debian AS b\n",
              "stage \"b\" is defined later");
  expectError(dir, "FROM debian AS a\nFROM debian AS A\n", "duplicate stage name \"a\"");
  expectError(dir, "FROM debian AS a\n", "target stage \"nope\" could not be found (stages: a)",
              "nope");
  expectError(dir, "FROM debian\nFROM --platform=Linux/AMD64 debian\n",
              "Dockerfile:2:1: FROM --platform");
}

TEST(BuildPlan, CopyWildcardsDirectoriesAndExcludes) {
  TempDir dir;
  dir.write("src/a.c", "a");
  dir.write("src/b.c", "b");
  dir.write("src/sub/c.h", "c");
  dir.write("README", "r");
  auto a =
      planIn(dir, "FROM debian\nCOPY src/*.c /out/\nCOPY src /src\nCOPY --exclude=*.h src /x\n");
  ASSERT_TRUE(a->plan.isOk()) << a->plan.status().toString();
  dir.write("src/sub/c.h", "changed");
  auto b =
      planIn(dir, "FROM debian\nCOPY src/*.c /out/\nCOPY src /src\nCOPY --exclude=*.h src /x\n");
  auto ka = keys(*a->plan), kb = keys(*b->plan);
  EXPECT_EQ(ka[0], kb[0]);  // the wildcard does not select the header
  EXPECT_NE(ka[1], kb[1]);  // the directory copy does
  dir.write("README", "changed");
  auto c =
      planIn(dir, "FROM debian\nCOPY src/*.c /out/\nCOPY src /src\nCOPY --exclude=*.h src /x\n");
  EXPECT_EQ(keys(*b->plan), keys(*c->plan));  // nothing copies README
}

}  // namespace
}  // namespace lf::plan
