#include <gtest/gtest.h>

#include <string>

#include "common/oci/descriptor.h"
#include "common/oci/image_config.h"
#include "common/oci/manifest.h"
#include "common/oci/media_types.h"

namespace lf::oci {
namespace {

Digest digestOf(std::string_view s) { return Digest::sha256Of(s); }

ImageConfig fullConfig() {
  ImageConfig c;
  c.created = "2026-11-27T18:00:00Z";
  c.author = "layerfarm";
  c.architecture = "arm64";
  c.os = "linux";
  c.variant = "v8";
  c.config.user = "1000:1000";
  c.config.exposed_ports = {"80/tcp", "53/udp"};
  c.config.env = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8"};
  c.config.entrypoint = std::vector<std::string>{"/bin/sh", "-c"};
  c.config.cmd = std::vector<std::string>{};
  c.config.volumes = {"/data"};
  c.config.working_dir = "/srv";
  c.config.labels = {{"b", "2"}, {"a", "1"}};
  c.config.stop_signal = "SIGTERM";
  c.config.healthcheck = HealthConfig{{"CMD-SHELL", "true"}, 30000000000, 1000000000, 0, 0, 3};
  c.config.on_build = {"RUN echo hi"};
  c.config.shell = {"/bin/sh", "-c"};
  c.config.args_escaped = true;
  c.rootfs.diff_ids = {digestOf("layer1"), digestOf("layer2")};
  c.history = {{"2026-11-27T18:00:00Z", "ADD rootfs.tar /", "", "", false},
               {"2026-11-27T18:00:01Z", "ENV LANG=C.UTF-8", "", "note", true}};
  return c;
}

Manifest sampleManifest() {
  Manifest m;
  m.media_type = std::string(kOciManifest);
  m.config = {std::string(kOciConfig), digestOf("config"), 123};
  m.layers.push_back({std::string(kOciLayerTarGzip), digestOf("l1"), 1000});
  m.layers.push_back({std::string(kOciLayerTarZstd), digestOf("l2"), 2000});
  m.layers.back().annotations = {{"k", "v"}};
  m.annotations = {{std::string(kAnnotationCreated), "2026-11-27T18:00:00Z"}};
  return m;
}

TEST(ImageConfig, RoundTripsEveryField) {
  ImageConfig c = fullConfig();
  std::string json = c.toJson();
  auto back = ImageConfig::fromJson(json);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(*back, c);
  EXPECT_EQ(back->toJson(), json) << "canonical bytes must be stable";
}

TEST(ImageConfig, CanonicalBytes) {
  ImageConfig c;
  c.architecture = "amd64";
  c.os = "linux";
  c.config.cmd = std::vector<std::string>{"/bin/echo", "hi"};
  c.config.labels = {{"z", "1"}, {"a", "2"}};
  c.rootfs.diff_ids = {digestOf("x")};
  EXPECT_EQ(
      c.toJson(),
      R"({"architecture":"amd64","config":{"Cmd":["/bin/echo","hi"],"Labels":{"a":"2","z":"1"}},)"
      R"("os":"linux","rootfs":{"diff_ids":[")" +
          digestOf("x").toString() + R"("],"type":"layers"}})");
}

TEST(ImageConfig, ReadsDockerStyleConfigAndIgnoresUnknownFields) {
  std::string json = R"({
    "architecture": "amd64", "os": "linux", "docker_version": "24.0.0",
    "container_config": {"Hostname": "abc"},
    "config": {"Env": ["A=1"], "Cmd": null, "Entrypoint": ["/x"], "ExposedPorts": {"80/tcp": {}},
               "Hostname": "", "Labels": null},
    "rootfs": {"type": "layers", "diff_ids": []},
    "history": [{"created_by": "/bin/sh", "empty_layer": true}]
  })";
  auto c = ImageConfig::fromJson(json);
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->config.env, std::vector<std::string>{"A=1"});
  EXPECT_FALSE(c->config.cmd.has_value());
  EXPECT_EQ(*c->config.entrypoint, std::vector<std::string>{"/x"});
  EXPECT_EQ(c->config.exposed_ports, std::set<std::string>{"80/tcp"});
  ASSERT_EQ(c->history.size(), 1u);
  EXPECT_TRUE(c->history[0].empty_layer);
}

struct BadCase {
  std::string json;
  std::string expected_in_error;
};

TEST(ImageConfig, RejectsMalformedWithFieldNames) {
  std::string rootfs = R"("rootfs":{"type":"layers","diff_ids":[]})";
  std::vector<BadCase> cases = {
      {"", "invalid JSON"},
      {"[]", "expected a JSON object"},
      {"{\"os\":\"linux\"," + rootfs + "}", "config.architecture: required field is missing"},
      {R"({"architecture":"amd64","os":"linux"})", "config.rootfs: required field is missing"},
      {R"({"architecture":1,"os":"linux",)" + rootfs + "}",
       "config.architecture: expected a string, got an integer"},
      {R"({"architecture":"amd64","os":"linux","rootfs":{"type":"zfs","diff_ids":[]}})",
       "config.rootfs.type: expected \"layers\""},
      {R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:ab"]}})",
       "config.rootfs.diff_ids[0]: invalid digest"},
      {R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":"x"}})",
       "config.rootfs.diff_ids: expected an array of strings"},
      {R"({"architecture":"amd64","os":"linux","config":{"Env":["A=1",2]},)" + rootfs + "}",
       "config.config.Env[1]: expected a string, got an integer"},
      {R"({"architecture":"amd64","os":"linux","config":{"Labels":{"a":true}},)" + rootfs + "}",
       "config.config.Labels.a: expected a string, got a boolean"},
      {R"({"architecture":"amd64","os":"linux","config":{"ExposedPorts":{"80/tcp":1}},)" + rootfs +
           "}",
       "config.config.ExposedPorts.80/tcp: expected {}"},
      {R"({"architecture":"amd64","os":"linux","config":{"Healthcheck":{"Interval":-1}},)" +
           rootfs + "}",
       "config.config.Healthcheck.Interval: expected an integer in [0, "},
      {R"({"architecture":"amd64","os":"linux","history":[{"empty_layer":"yes"}],)" + rootfs + "}",
       "config.history[0].empty_layer: expected a boolean, got a string"},
      {R"({"architecture":"amd64","os":"linux","history":{},)" + rootfs + "}",
       "config.history: expected an array"},
  };
  for (const auto& bad : cases) {
    auto c = ImageConfig::fromJson(bad.json);
    ASSERT_FALSE(c.isOk()) << bad.json;
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(c.status().message().find(bad.expected_in_error), std::string::npos)
        << "input: " << bad.json << "\nerror: " << c.status().message();
  }
}

TEST(ImageConfig, RejectsOversizedAndDeeplyNested) {
  std::string big(kMaxConfigBytes + 1, ' ');
  EXPECT_NE(ImageConfig::fromJson(big).status().message().find("more than the limit"),
            std::string::npos);
  std::string deep = std::string(10000, '[') + std::string(10000, ']');
  EXPECT_NE(ImageConfig::fromJson(deep).status().message().find("nested deeper"),
            std::string::npos);
}

TEST(Manifest, RoundTripsAndIsCanonical) {
  Manifest m = sampleManifest();
  m.subject = Descriptor{std::string(kOciManifest), digestOf("subject"), 10};
  std::string json = m.toJson();
  EXPECT_EQ(json.find(' '), std::string::npos);
  EXPECT_TRUE(json.starts_with(R"({"annotations":)")) << json;
  auto back = Manifest::fromJson(json);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(*back, m);
  EXPECT_EQ(back->toJson(), json);
  EXPECT_EQ(Manifest(m).toJson(), json);
}

TEST(Manifest, ReadsDockerSchema2) {
  std::string json = R"({"schemaVersion":2,
    "mediaType":"application/vnd.docker.distribution.manifest.v2+json",
    "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":7023,
              "digest":"sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7"},
    "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":32654,
               "digest":"sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f"}]})";
  auto m = Manifest::fromJson(json);
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_EQ(m->config.size, 7023u);
  ASSERT_EQ(m->layers.size(), 1u);
  EXPECT_EQ(m->layers[0].media_type, kDockerLayerTarGzip);
}

TEST(Manifest, RejectsMalformedWithFieldNames) {
  Manifest good = sampleManifest();
  std::string cfg = good.config.toJson().dump();
  std::string l0 = good.layers[0].toJson().dump();
  std::string hex(64, 'a');
  std::vector<BadCase> cases = {
      {R"({"schemaVersion":1,"config":)" + cfg + R"(,"layers":[]})",
       "manifest.schemaVersion: expected an integer in [2, 2], got 1"},
      {R"({"config":)" + cfg + R"(,"layers":[]})", "manifest.schemaVersion: required"},
      {R"({"schemaVersion":2,"layers":[]})", "manifest.config: required field is missing"},
      {R"({"schemaVersion":2,"config":)" + cfg + "}", "manifest.layers: required field"},
      {R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","config":)" +
           cfg + R"(,"layers":[]})",
       "this is an index, not a manifest"},
      {R"({"schemaVersion":2,"config":)" + cfg + R"(,"layers":[)" + l0 + "," + l0 +
           R"(,{"mediaType":"a/b","size":1,"digest":"sha256:XYZ"}]})",
       "manifest.layers[2].digest: invalid digest"},
      {R"({"schemaVersion":2,"config":)" + cfg +
           R"(,"layers":[{"mediaType":"a/b","size":-1,"digest":"sha256:)" + hex + R"("}]})",
       "manifest.layers[0].size: expected an integer in [0, "},
      {R"({"schemaVersion":2,"config":)" + cfg +
           R"(,"layers":[{"mediaType":"a/b","size":1.5,"digest":"sha256:)" + hex + R"("}]})",
       "manifest.layers[0].size: expected an integer"},
      {R"({"schemaVersion":2,"config":)" + cfg +
           R"(,"layers":[{"mediaType":"not a type","size":1,"digest":"sha256:)" + hex + R"("}]})",
       "manifest.layers[0].mediaType: \"not a type\" is not a media type"},
      {R"({"schemaVersion":2,"config":)" + cfg + R"(,"layers":[{"size":1,"digest":"sha256:)" + hex +
           R"("}]})",
       "manifest.layers[0].mediaType: required field is missing"},
      {R"({"schemaVersion":2,"config":)" + cfg + R"(,"layers":[],"annotations":{"a":1}})",
       "manifest.annotations.a: expected a string"},
      {R"({"schemaVersion":2,"config":)" + cfg + R"(,"layers":[],"subject":[]})",
       "manifest.subject: expected an object, got an array"},
      {R"({"schemaVersion":2,"config":)" + cfg + R"(,"layers":[)" +
           R"({"mediaType":"a/b","size":1,"digest":"sha512:)" + hex + R"("}]})",
       "manifest.layers[0].digest: unsupported digest algorithm \"sha512\""},
      {R"({"schemaVersion":2,"config":)" + cfg + R"(,"layers":[)" +
           R"({"mediaType":"a/b","size":18446744073709551615,"digest":"sha256:)" + hex + R"("}]})",
       "manifest.layers[0].size: expected an integer in [0, 9223372036854775807], got "},
  };
  for (const auto& bad : cases) {
    auto m = Manifest::fromJson(bad.json);
    ASSERT_FALSE(m.isOk()) << bad.json;
    EXPECT_NE(m.status().message().find(bad.expected_in_error), std::string::npos)
        << "input: " << bad.json << "\nerror: " << m.status().message();
  }
}

TEST(Index, RoundTripsWithPlatforms) {
  Index index;
  index.media_type = std::string(kOciIndex);
  Descriptor amd{std::string(kOciManifest), digestOf("m1"), 500};
  amd.platform = Platform{"amd64", "linux", "", {}, ""};
  amd.annotations = {{std::string(kAnnotationRefName), "latest"}};
  Descriptor arm{std::string(kOciManifest), digestOf("m2"), 501};
  arm.platform = Platform{"arm64", "linux", "", {}, "v8"};
  index.manifests = {amd, arm};
  std::string json = index.toJson();
  auto back = Index::fromJson(json);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(*back, index);
  EXPECT_EQ(back->toJson(), json);
}

TEST(Index, RejectsMalformedWithFieldNames) {
  std::string hex(64, 'b');
  std::vector<BadCase> cases = {
      {R"({"schemaVersion":2})", "index.manifests: required field is missing"},
      {R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[]})",
       "this is a manifest, not an index"},
      {R"({"schemaVersion":2,"manifests":[{"mediaType":"a/b","size":1,"digest":"sha256:)" + hex +
           R"(","platform":{"os":"linux"}}]})",
       "index.manifests[0].platform.architecture: required field is missing"},
      {R"({"schemaVersion":2,"manifests":{}})", "index.manifests: expected an array"},
  };
  for (const auto& bad : cases) {
    auto i = Index::fromJson(bad.json);
    ASSERT_FALSE(i.isOk()) << bad.json;
    EXPECT_NE(i.status().message().find(bad.expected_in_error), std::string::npos)
        << "input: " << bad.json << "\nerror: " << i.status().message();
  }
}

TEST(Platform, Parse) {
  auto p = Platform::parse("linux/arm64/v8");
  ASSERT_TRUE(p.isOk());
  EXPECT_EQ(p->os, "linux");
  EXPECT_EQ(p->architecture, "arm64");
  EXPECT_EQ(p->variant, "v8");
  EXPECT_EQ(p->toString(), "linux/arm64/v8");
  EXPECT_FALSE(Platform::parse("linux").isOk());
  EXPECT_FALSE(Platform::parse("linux//v8").isOk());
  EXPECT_FALSE(Platform::parse("Linux/amd64").isOk());
  EXPECT_FALSE(Platform::parse("a/b/c/d").isOk());
}

TEST(MediaTypes, Predicates) {
  EXPECT_TRUE(isManifestMediaType(kDockerManifest));
  EXPECT_TRUE(isIndexMediaType(kDockerManifestList));
  EXPECT_TRUE(isConfigMediaType(kDockerConfig));
  EXPECT_TRUE(isLayerMediaType(kDockerLayerTarGzip));
  EXPECT_TRUE(isLayerMediaType(kOciLayerTarZstd));
  EXPECT_FALSE(isLayerMediaType(kOciConfig));
  EXPECT_TRUE(isWellFormedMediaType("application/vnd.oci.image.layer.v1.tar+gzip"));
  EXPECT_FALSE(isWellFormedMediaType("application"));
  EXPECT_FALSE(isWellFormedMediaType("application/json; charset=utf-8"));
  EXPECT_FALSE(isWellFormedMediaType("/json"));
}

TEST(ImageConfig, FormatRfc3339) {
  EXPECT_EQ(formatRfc3339(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(formatRfc3339(1700000000), "2023-11-14T22:13:20Z");
}

}  // namespace
}  // namespace lf::oci
