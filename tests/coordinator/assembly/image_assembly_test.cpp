#include "coordinator/assembly/image_assembly.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/oci/manifest.h"
#include "common/oci/media_types.h"
#include "coordinator/assembly/image_history.h"
#include "tests/coordinator/assembly/assembly_test_util.h"
#include "tests/support/shell.h"

namespace lf::coordinator {
namespace {

using testing::AssemblyFixture;
using testing::kEpoch;

constexpr std::string_view kDockerfile = R"(FROM base:1
LABEL team=infra
RUN make
COPY app /app
ENV A=b
WORKDIR /x
RUN true
ENTRYPOINT ["/app/run", "--serve"]
EXPOSE 8080
)";

// The plan for kDockerfile over `base`, and layers for its three layer steps (2, 3, 6); step 6
// (RUN true) changed nothing, so its layer is an empty tar.
struct Scenario {
  BaseImageInfo base;
  std::unique_ptr<testing::Planned> planned;
  std::map<int, BuiltLayer> layers;

  AssemblyInput input() const {
    AssemblyInput in;
    in.stage = &planned->plan.stages.back();
    in.base = base;
    in.step_layers = layers;
    in.created_unix_seconds = kEpoch;
    return in;
  }
};

Scenario makeScenario(AssemblyFixture& f) {
  Scenario s;
  s.base = f.makeBase();
  s.planned = f.plan(kDockerfile, {{"app/run", "#!/bin/sh\necho hi\n"}}, &s.base);
  s.layers[2] = f.makeLayer({{"usr/bin/made", "binary"}});
  s.layers[3] = f.makeLayer({{"app/run", "#!/bin/sh\necho hi\n"}});
  s.layers[6] = f.makeLayer({});
  return s;
}

std::vector<std::string> createdBy(const oci::ImageConfig& c) {
  std::vector<std::string> out;
  for (const auto& h : c.history) out.push_back(h.created_by);
  return out;
}

std::vector<bool> emptyFlags(const oci::ImageConfig& c) {
  std::vector<bool> out;
  for (const auto& h : c.history) out.push_back(h.empty_layer);
  return out;
}

TEST(ImageAssembly, ConfigFieldsFollowTheStage) {
  AssemblyFixture f;
  Scenario s = makeScenario(f);
  ASSERT_NE(s.planned, nullptr);
  auto image = assembleImage(s.input(), f.store());
  ASSERT_TRUE(image.isOk()) << image.status().toString();

  // Read back what was stored, not the struct: the blob is what registries and runtimes see.
  auto json = f.store().getBytes(image->config_descriptor.digest);
  ASSERT_TRUE(json.isOk()) << json.status().toString();
  EXPECT_EQ(*json, image->config_json);
  auto j = nlohmann::json::parse(*json);
  EXPECT_EQ(j["architecture"], "amd64");
  EXPECT_EQ(j["os"], "linux");
  EXPECT_EQ(j["created"], "2023-11-14T22:13:20Z");
  const auto& c = j["config"];
  EXPECT_EQ(c["Env"],
            nlohmann::json::array(
                {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=b"}));
  EXPECT_EQ(c["WorkingDir"], "/x");
  EXPECT_EQ(c["Entrypoint"], nlohmann::json::array({"/app/run", "--serve"}));
  // The base's CMD ["sh"] is reset by ENTRYPOINT, as Docker does.
  EXPECT_FALSE(c.contains("Cmd")) << c.dump();
  EXPECT_EQ(c["Labels"], (nlohmann::json{{"base.label", "kept"}, {"team", "infra"}}));
  EXPECT_EQ(c["ExposedPorts"], (nlohmann::json{{"8080/tcp", nlohmann::json::object()}}));
  EXPECT_FALSE(c.contains("Shell"));
}

TEST(ImageAssembly, HistoryAndDiffIdsLikeBuildKit) {
  AssemblyFixture f;
  Scenario s = makeScenario(f);
  ASSERT_NE(s.planned, nullptr);
  // layer::writeLayer makes an empty tar of an unchanged tree: recognised without the flag.
  EXPECT_EQ(s.layers[6].diff_id, emptyLayerDiffId());
  auto image = assembleImage(s.input(), f.store());
  ASSERT_TRUE(image.isOk()) << image.status().toString();
  const oci::ImageConfig& c = image->config;

  EXPECT_EQ(createdBy(c), (std::vector<std::string>{
                              "ADD rootfs.tar / # buildkit",
                              "CMD [\"sh\"]",
                              "LABEL team=infra",
                              "RUN /bin/sh -c make # buildkit",
                              "COPY app /app # buildkit",
                              "ENV A=b",
                              "WORKDIR /x",
                              "RUN /bin/sh -c true # buildkit",
                              "ENTRYPOINT [\"/app/run\" \"--serve\"]",
                              "EXPOSE map[8080/tcp:{}]",
                          }));
  // RUN true changed nothing: no layer, history marks it empty (BuildKit's default).
  EXPECT_EQ(emptyFlags(c),
            (std::vector<bool>{false, true, true, false, false, true, true, true, true, true}));
  // The base's entries keep their own time and comment; ours carry the build's.
  EXPECT_EQ(c.history[0].created, "2024-01-01T00:00:00Z");
  EXPECT_EQ(c.history[0].comment, "base");
  for (size_t i = 2; i < c.history.size(); ++i) {
    EXPECT_EQ(c.history[i].created, "2023-11-14T22:13:20Z");
    EXPECT_EQ(c.history[i].comment, kHistoryComment);
  }
  EXPECT_EQ(c.rootfs.diff_ids, (std::vector<Digest>{s.base.config.rootfs.diff_ids[0],
                                                    s.layers[2].diff_id, s.layers[3].diff_id}));

  auto manifest_json = f.store().getBytes(image->manifest.digest);
  ASSERT_TRUE(manifest_json.isOk());
  auto m = oci::Manifest::fromJson(*manifest_json);
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_EQ(m->media_type, oci::kOciManifest);
  EXPECT_EQ(m->config, image->config_descriptor);
  EXPECT_EQ(m->layers, (std::vector<oci::Descriptor>{s.base.layers[0], s.layers[2].descriptor,
                                                     s.layers[3].descriptor}));
  EXPECT_EQ(image->layers, m->layers);
}

TEST(ImageAssembly, KeepingEmptyLayersLikeTheClassicBuilder) {
  AssemblyFixture f;
  Scenario s = makeScenario(f);
  ASSERT_NE(s.planned, nullptr);
  AssemblyInput in = s.input();
  in.omit_empty_layers = false;
  auto image = assembleImage(in, f.store());
  ASSERT_TRUE(image.isOk()) << image.status().toString();
  EXPECT_FALSE(image->config.history[7].empty_layer);
  ASSERT_EQ(image->layers.size(), 4u);
  EXPECT_EQ(image->layers[3], s.layers[6].descriptor);
  EXPECT_EQ(image->config.rootfs.diff_ids[3], emptyLayerDiffId());
}

TEST(ImageAssembly, ExplicitEmptyFlagDropsTheLayer) {
  AssemblyFixture f;
  Scenario s = makeScenario(f);
  ASSERT_NE(s.planned, nullptr);
  s.layers[3].empty = true;  // the caller knows COPY produced nothing
  auto image = assembleImage(s.input(), f.store());
  ASSERT_TRUE(image.isOk()) << image.status().toString();
  EXPECT_TRUE(image->config.history[4].empty_layer);
  EXPECT_EQ(image->layers.size(), 2u);
}

TEST(ImageAssembly, ManifestDigestIsStable) {
  AssemblyFixture f;
  Scenario s = makeScenario(f);
  ASSERT_NE(s.planned, nullptr);
  auto a = assembleImage(s.input(), f.store());
  auto b = assembleImage(s.input(), f.store());
  ASSERT_TRUE(a.isOk() && b.isOk());
  EXPECT_EQ(a->manifest, b->manifest);
  EXPECT_EQ(a->config_json, b->config_json);

  // A second plan of the same Dockerfile and context gives the same image.
  auto again = f.plan(kDockerfile, {{"app/run", "#!/bin/sh\necho hi\n"}}, &s.base);
  ASSERT_NE(again, nullptr);
  AssemblyInput in = s.input();
  in.stage = &again->plan.stages.back();
  auto c = assembleImage(in, f.store());
  ASSERT_TRUE(c.isOk());
  EXPECT_EQ(c->manifest.digest, a->manifest.digest);

  in.created_unix_seconds = kEpoch + 1;
  auto d = assembleImage(in, f.store());
  ASSERT_TRUE(d.isOk());
  EXPECT_NE(d->manifest.digest, a->manifest.digest);
}

TEST(ImageAssembly, MissingLayerIsAnError) {
  AssemblyFixture f;
  Scenario s = makeScenario(f);
  ASSERT_NE(s.planned, nullptr);
  AssemblyInput in = s.input();
  in.step_layers.erase(3);
  auto r = assembleImage(in, f.store());
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("step 3 (COPY app /app # buildkit)"), std::string::npos)
      << r.status().message();
}

TEST(ImageAssembly, LayerForAMetadataStepIsAnError) {
  AssemblyFixture f;
  Scenario s = makeScenario(f);
  ASSERT_NE(s.planned, nullptr);
  AssemblyInput in = s.input();
  in.step_layers[5] = s.layers[2];  // WORKDIR
  auto r = assembleImage(in, f.store());
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("metadata step"), std::string::npos) << r.status().message();
  in.step_layers.erase(5);
  in.step_layers[42] = s.layers[2];
  r = assembleImage(in, f.store());
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("step 42"), std::string::npos) << r.status().message();
}

TEST(ImageAssembly, BaseWhoseHistoryAndLayersDisagree) {
  AssemblyFixture f;
  Scenario s = makeScenario(f);
  ASSERT_NE(s.planned, nullptr);
  AssemblyInput in = s.input();
  in.base->config.history[1].empty_layer = false;  // two layer entries, one layer
  auto r = assembleImage(in, f.store());
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("config.history has 2 entries with a layer"),
            std::string::npos)
      << r.status().message();

  in = s.input();
  in.base->config.rootfs.diff_ids.push_back(Digest::sha256Of("x"));
  r = assembleImage(in, f.store());
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("rootfs.diff_ids has 2 entries"), std::string::npos)
      << r.status().message();

  // A base without history (imported images) gets an entry per layer filled in.
  in = s.input();
  in.base->config.history.clear();
  auto ok = assembleImage(in, f.store());
  ASSERT_TRUE(ok.isOk()) << ok.status().toString();
  ASSERT_EQ(ok->config.history.size(), 9u);
  EXPECT_FALSE(ok->config.history[0].empty_layer);
  EXPECT_EQ(ok->config.history[0].created, "2024-01-01T00:00:00Z");
}

TEST(ImageAssembly, LayerBlobMustBeInTheStore) {
  AssemblyFixture f;
  Scenario s = makeScenario(f);
  ASSERT_NE(s.planned, nullptr);
  AssemblyInput in = s.input();
  in.step_layers[2].descriptor.digest = Digest::sha256Of("not stored");
  auto r = assembleImage(in, f.store());
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);

  in = s.input();
  in.step_layers[2].descriptor.size += 1;
  r = assembleImage(in, f.store());
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
}

constexpr std::string_view kMultiStage = R"(FROM base:1 AS build
RUN make
FROM build AS test
RUN make test
FROM scratch
COPY --from=build /out/app /app
CMD ["/app"]
)";

TEST(ImageAssembly, MultiStageScratchFinalStageAndStageBase) {
  AssemblyFixture f;
  BaseImageInfo base = f.makeBase();
  auto planned = f.plan(kMultiStage, {}, &base);
  ASSERT_NE(planned, nullptr);
  const auto& stages = planned->plan.stages;
  ASSERT_EQ(stages.size(), 3u);

  AssemblyInput build;
  build.stage = &stages[0];
  build.base = base;
  build.step_layers[1] = f.makeLayer({{"out/app", "app binary"}});
  build.created_unix_seconds = kEpoch;
  auto built = assembleImage(build, f.store());
  ASSERT_TRUE(built.isOk()) << built.status().toString();

  // FROM build: the earlier stage's image is the base; its history carries over.
  AssemblyInput test;
  test.stage = &stages[1];
  test.base = BaseImageInfo{built->config, built->layers};
  test.step_layers[1] = f.makeLayer({{"out/test.log", "ok"}});
  test.created_unix_seconds = kEpoch;
  auto tested = assembleImage(test, f.store());
  ASSERT_TRUE(tested.isOk()) << tested.status().toString();
  EXPECT_EQ(createdBy(tested->config),
            (std::vector<std::string>{"ADD rootfs.tar / # buildkit", "CMD [\"sh\"]",
                                      "RUN /bin/sh -c make # buildkit",
                                      "RUN /bin/sh -c make test # buildkit"}));
  EXPECT_EQ(tested->layers.size(), 3u);

  // FROM scratch + COPY --from: one layer, one history entry per step, nothing of the base.
  AssemblyInput final_stage;
  final_stage.stage = &stages[2];
  final_stage.step_layers[1] = f.makeLayer({{"app", "app binary"}});
  final_stage.created_unix_seconds = kEpoch;
  auto image = assembleImage(final_stage, f.store());
  ASSERT_TRUE(image.isOk()) << image.status().toString();
  const oci::ImageConfig& c = image->config;
  EXPECT_EQ(createdBy(c), (std::vector<std::string>{"COPY --from=build /out/app /app # buildkit",
                                                    "CMD [\"/app\"]"}));
  EXPECT_EQ(emptyFlags(c), (std::vector<bool>{false, true}));
  EXPECT_EQ(c.rootfs.diff_ids, std::vector<Digest>{final_stage.step_layers[1].diff_id});
  // Scratch images get BuildKit's default PATH and no base labels.
  EXPECT_EQ(c.config.env, std::vector<std::string>{
                              "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"});
  EXPECT_TRUE(c.config.labels.empty());
  EXPECT_EQ(c.config.cmd, std::vector<std::string>{"/app"});
}

TEST(ImageAssembly, PlatformVariantAndShell) {
  AssemblyFixture f;
  auto planned = f.plan(
      "FROM scratch\nSHELL [\"/bin/bash\", \"-c\"]\nSTOPSIGNAL SIGINT\n"
      "HEALTHCHECK --interval=5s CMD check\nVOLUME /data\nUSER 1000\n",
      {}, nullptr);
  ASSERT_NE(planned, nullptr);
  AssemblyInput in;
  in.stage = &planned->plan.stages.back();
  in.platform = {"linux", "arm64", "v8"};
  in.created_unix_seconds = kEpoch;
  auto image = assembleImage(in, f.store());
  ASSERT_TRUE(image.isOk()) << image.status().toString();
  const oci::ImageConfig& c = image->config;
  EXPECT_EQ(c.architecture, "arm64");
  EXPECT_EQ(c.variant, "v8");
  EXPECT_EQ(c.config.shell, (std::vector<std::string>{"/bin/bash", "-c"}));
  EXPECT_EQ(c.config.stop_signal, "SIGINT");
  ASSERT_TRUE(c.config.healthcheck.has_value());
  EXPECT_EQ(c.config.healthcheck->test, (std::vector<std::string>{"CMD-SHELL", "check"}));
  EXPECT_EQ(c.config.healthcheck->interval_ns, 5'000'000'000);
  EXPECT_EQ(c.config.volumes, std::set<std::string>{"/data"});
  EXPECT_EQ(c.config.user, "1000");
  EXPECT_TRUE(c.rootfs.diff_ids.empty());
  EXPECT_EQ(c.history.size(), 5u);
  for (const auto& h : c.history) EXPECT_TRUE(h.empty_layer);
}

// As BuildKit: ONBUILD adds a trigger but no history entry; CMD sets ArgsEscaped.
TEST(ImageAssembly, OnbuildHasNoHistoryCmdSetsArgsEscaped) {
  AssemblyFixture f;
  auto planned = f.plan("FROM scratch\nONBUILD RUN echo child\nCMD [\"/app\"]\n", {}, nullptr);
  ASSERT_NE(planned, nullptr);
  AssemblyInput in;
  in.stage = &planned->plan.stages.back();
  in.created_unix_seconds = kEpoch;
  auto image = assembleImage(in, f.store());
  ASSERT_TRUE(image.isOk()) << image.status().toString();
  EXPECT_EQ(createdBy(image->config), std::vector<std::string>{"CMD [\"/app\"]"});
  EXPECT_EQ(image->config.config.on_build, std::vector<std::string>{"RUN echo child"});
  EXPECT_TRUE(image->config.config.args_escaped);
  EXPECT_NE(image->config_json.find("\"ArgsEscaped\":true"), std::string::npos);
}

TEST(ImageAssembly, RuntimeConfigRoundTrip) {
  AssemblyFixture f;
  BaseImageInfo base = f.makeBase();
  base.config.config.healthcheck = oci::HealthConfig{{"CMD", "true"}, 1, 2, 3, 4, 5};
  base.config.config.on_build = {"RUN echo child"};
  base.config.author = "someone";
  base.config.config.args_escaped = true;
  oci::ContainerConfig back = containerConfigOf(runtimeConfigOf(base.config));
  EXPECT_EQ(back, base.config.config);
}

TEST(ImageAssembly, ImageRecordForHistory) {
  AssemblyFixture f;
  Scenario s = makeScenario(f);
  ASSERT_NE(s.planned, nullptr);
  auto image = assembleImage(s.input(), f.store());
  ASSERT_TRUE(image.isOk()) << image.status().toString();
  auto record = imageRecordOf(*image, {"registry.example/team/app:1"}, "b-1");
  ASSERT_TRUE(record.isOk()) << record.status().toString();
  EXPECT_EQ(record->manifest_digest, image->manifest.digest);
  EXPECT_EQ(record->config_digest, image->config_descriptor.digest);
  EXPECT_EQ(record->media_type, oci::kOciManifest);
  EXPECT_EQ(record->platform, "linux/amd64");
  EXPECT_EQ(record->created_unix_ms, kEpoch * 1000);
  ASSERT_EQ(record->history.size(), 10u);
  EXPECT_EQ(record->history[3].created_by, "RUN /bin/sh -c make # buildkit");
  EXPECT_EQ(record->history[3].layer_size, s.layers[2].descriptor.size);
  EXPECT_EQ(record->history[7].layer_size, 0u);  // RUN true: no layer

  HistoryOptions opts;
  opts.now_unix_ms = kEpoch * 1000 + 3 * 60'000;
  opts.image_id = record->config_digest.toString();
  auto rows = historyRows(record->history, opts);
  ASSERT_EQ(rows.size(), 10u);
  EXPECT_EQ(rows[0].created_by, "EXPOSE map[8080/tcp:{}]");
  EXPECT_EQ(rows[0].created, "3 minutes ago");
  EXPECT_EQ(rows[0].image, record->config_digest.shortHex());
  EXPECT_EQ(rows[6].created_by, "RUN /bin/sh -c make # buildkit");
}

TEST(ImageExport, ParsesOutputSpecs) {
  auto oci = parseExportSpec("type=oci,dest=/tmp/x.tar", {"team/app:1"});
  ASSERT_TRUE(oci.isOk()) << oci.status().toString();
  EXPECT_EQ(oci->type, ExportOptions::Type::kOci);
  EXPECT_EQ(oci->dest, "/tmp/x.tar");
  EXPECT_TRUE(oci->tar);
  EXPECT_EQ(oci->tags, std::vector<std::string>{"team/app:1"});
  auto dir = parseExportSpec("type=oci,dest=out,tar=false,name=reg:5000/a/b:2");
  ASSERT_TRUE(dir.isOk()) << dir.status().toString();
  EXPECT_FALSE(dir->tar);
  EXPECT_EQ(dir->tags, std::vector<std::string>{"reg:5000/a/b:2"});
  auto docker = parseExportSpec("type=docker,dest=x.tar");
  ASSERT_TRUE(docker.isOk());
  EXPECT_EQ(docker->type, ExportOptions::Type::kDocker);

  for (std::string_view bad : {"dest=x", "type=oci", "type=local,dest=x", "type=oci,dest=x,tar=1",
                               "type=oci,dest=x,color=red", "type=oci,dest",
                               "type=docker,dest=x,"
                               "tar=false"}) {
    EXPECT_FALSE(parseExportSpec(bad).isOk()) << bad;
  }
  EXPECT_FALSE(parseExportSpec("type=oci,dest=x", {"Not A Ref"}).isOk());
}

TEST(ImageExport, OciLayoutReadsBackAsAssembled) {
  AssemblyFixture f;
  Scenario s = makeScenario(f);
  ASSERT_NE(s.planned, nullptr);
  auto image = assembleImage(s.input(), f.store());
  ASSERT_TRUE(image.isOk()) << image.status().toString();
  ExportOptions opts;
  opts.dest = f.dir() / "layout";
  opts.tar = false;
  opts.tags = {"registry.example:5000/team/app:v1"};
  ASSERT_TRUE(exportImage(f.store(), *image, opts).isOk());
  oci::ReadLayoutOptions read;
  read.ref_name = "v1";  // the tag alone, as BuildKit's OCI exporter names it
  auto back = oci::readOciLayout(opts.dest, read);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(back->manifest_descriptor.digest, image->manifest.digest);
  EXPECT_EQ(back->config_json, image->config_json);

  // docker-archive: RepoTags in Docker's familiar form.
  opts.type = ExportOptions::Type::kDocker;
  opts.dest = f.dir() / "docker.tar";
  opts.tags = {"docker.io/library/app:1", "team/app", "registry.example:5000/team/app:v1"};
  ASSERT_TRUE(exportImage(f.store(), *image, opts).isOk());
  auto r = lf::testing::runShell("tar -xOf " + opts.dest.string() + " manifest.json");
  ASSERT_EQ(r.code, 0) << r.text;
  auto manifest = nlohmann::json::parse(r.text);
  EXPECT_EQ(manifest[0]["RepoTags"], nlohmann::json::array({"app:1", "team/app:latest",
                                                            "registry.example:5000/team/app:v1"}));
}

}  // namespace
}  // namespace lf::coordinator
