// Assembled images checked by the real peers: umoci unpacks an exported OCI layout into the
// union of the layers; skopeo reads the exported archives; the real registry (docker-registry)
// takes a push, and skopeo's view of the pushed config (history, diff_ids, config) is exactly
// what assembleImage built. Pushing from a registry-backed blob store mounts every blob.

#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/blob/blob_util.h"
#include "common/registry/registry_blob_store.h"
#include "coordinator/assembly/image_assembly.h"
#include "tests/coordinator/assembly/assembly_test_util.h"
#include "tests/support/registry_server.h"
#include "tests/support/shell.h"

namespace lf::coordinator {
namespace {

using testing::AssemblyFixture;
using testing::kEpoch;

lf::testing::ShellResult sh(const std::string& command) { return lf::testing::runShell(command); }

bool haveTool(const std::string& name) { return sh("command -v " + name).code == 0; }

constexpr std::string_view kDockerfile = R"(FROM base:1
LABEL team=infra
RUN make
COPY app /app
ENV A=b
WORKDIR /x
RUN true
ENTRYPOINT ["/app/run"]
EXPOSE 8080
)";

struct Built {
  BaseImageInfo base;
  std::unique_ptr<testing::Planned> planned;
  AssembledImage image;
};

// kDockerfile assembled over a synthetic base, with layers in `store`.
Built build(AssemblyFixture& f, blob::BlobStore& store) {
  Built b;
  b.base = f.makeBase();
  b.planned = f.plan(kDockerfile, {{"app/run", "#!/bin/sh\necho hi\n"}}, &b.base);
  EXPECT_NE(b.planned, nullptr);
  if (b.planned == nullptr) return b;
  AssemblyInput in;
  in.stage = &b.planned->plan.stages.back();
  in.base = b.base;
  in.step_layers[2] = f.makeLayer({{"usr/bin/made", "binary"}});
  in.step_layers[3] = f.makeLayer({{"app/run", "#!/bin/sh\necho hi\n"}});
  in.step_layers[6] = f.makeLayer({});
  in.created_unix_seconds = kEpoch;
  if (&store != &f.store()) {
    for (const auto& d : b.base.layers) {
      EXPECT_TRUE(blob::copyBlob(f.store(), store, d.digest).isOk());
    }
    for (const auto& [i, l] : in.step_layers) {
      EXPECT_TRUE(blob::copyBlob(f.store(), store, l.descriptor.digest).isOk());
    }
  }
  auto image = assembleImage(in, store);
  EXPECT_TRUE(image.isOk()) << image.status().toString();
  if (image.isOk()) b.image = std::move(*image);
  return b;
}

TEST(AssemblyIntegration, UmociUnpacksTheExportedLayout) {
  if (!haveTool("umoci")) GTEST_SKIP() << "umoci is not installed";
  AssemblyFixture f;
  Built b = build(f, f.store());
  ASSERT_FALSE(b.image.manifest.digest.empty());

  auto spec = parseExportSpec("type=oci,dest=" + (f.dir() / "layout").string() + ",tar=false",
                              {"registry.example/team/app:v1"});
  ASSERT_TRUE(spec.isOk()) << spec.status().toString();
  ASSERT_TRUE(exportImage(f.store(), b.image, *spec).isOk());

  auto bundle = f.dir() / "bundle";
  std::string rootless = ::geteuid() == 0 ? "" : "--rootless ";
  auto r = sh("umoci unpack " + rootless + "--image " + (f.dir() / "layout").string() + ":v1 " +
              bundle.string());
  ASSERT_EQ(r.code, 0) << r.text;
  EXPECT_EQ(lf::testing::readFile(bundle / "rootfs/etc/os-release"), "NAME=base\n");
  EXPECT_EQ(lf::testing::readFile(bundle / "rootfs/usr/bin/made"), "binary");
  EXPECT_EQ(lf::testing::readFile(bundle / "rootfs/app/run"), "#!/bin/sh\necho hi\n");

  // umoci turns the image config into the runtime spec: entrypoint, env and cwd arrive.
  auto runtime = nlohmann::json::parse(lf::testing::readFile(bundle / "config.json"));
  EXPECT_EQ(runtime["process"]["args"], nlohmann::json::array({"/app/run"}));
  EXPECT_EQ(runtime["process"]["cwd"], "/x");
  EXPECT_NE(runtime["process"]["env"].dump().find("A=b"), std::string::npos);
}

TEST(AssemblyIntegration, SkopeoReadsBothArchives) {
  if (!haveTool("skopeo")) GTEST_SKIP() << "skopeo is not installed";
  AssemblyFixture f;
  Built b = build(f, f.store());
  ASSERT_FALSE(b.image.manifest.digest.empty());
  auto oci_tar = f.dir() / "image.oci.tar";
  auto docker_tar = f.dir() / "image.docker.tar";
  auto oci = parseExportSpec("type=oci,dest=" + oci_tar.string(), {"team/app:v1"});
  auto docker = parseExportSpec("type=docker,dest=" + docker_tar.string(), {"team/app:v1"});
  ASSERT_TRUE(oci.isOk() && docker.isOk());
  ASSERT_TRUE(exportImage(f.store(), b.image, *oci).isOk());
  ASSERT_TRUE(exportImage(f.store(), b.image, *docker).isOk());

  auto r = sh("skopeo inspect --config oci-archive:" + oci_tar.string() + ":v1");
  ASSERT_EQ(r.code, 0) << r.text;
  EXPECT_EQ(nlohmann::json::parse(r.text), nlohmann::json::parse(b.image.config_json));
  // Docker's familiar name: docker.io/team/app:v1 is "team/app:v1" in RepoTags.
  r = sh("skopeo inspect --config docker-archive:" + docker_tar.string() + ":team/app:v1");
  ASSERT_EQ(r.code, 0) << r.text;
  EXPECT_EQ(nlohmann::json::parse(r.text), nlohmann::json::parse(b.image.config_json));
}

std::unique_ptr<registry::RegistryClient> clientFor(const lf::testing::RegistryServer& server) {
  registry::RegistryConfig config;
  config.insecure_registries = {server.host()};
  config.initial_backoff_ms = 10;
  auto client = registry::RegistryClient::create(std::move(config));
  EXPECT_TRUE(client.isOk()) << client.status().toString();
  return client.isOk() ? std::move(*client) : nullptr;
}

TEST(AssemblyIntegration, PushThenSkopeoSeesWhatWeAssembled) {
  if (!lf::testing::RegistryServer::available()) GTEST_SKIP() << "docker-registry missing";
  if (!haveTool("skopeo")) GTEST_SKIP() << "skopeo is not installed";
  auto server = lf::testing::RegistryServer::start();
  ASSERT_TRUE(server.isOk()) << server.status().toString();
  auto client = clientFor(**server);
  ASSERT_NE(client, nullptr);
  AssemblyFixture f;
  Built b = build(f, f.store());
  ASSERT_FALSE(b.image.manifest.digest.empty());

  const std::string host = (*server)->host();
  auto pushed =
      pushAssembledImage(*client, f.store(), b.image,
                         {host + "/team/app:1", host + "/team/app:latest", host + "/other/app:1"});
  ASSERT_TRUE(pushed.isOk()) << pushed.status().toString();
  ASSERT_EQ(pushed->size(), 2u);  // one per repository
  EXPECT_EQ((*pushed)[0].repository, host + "/team/app");
  EXPECT_EQ((*pushed)[0].blobs_uploaded, 4u);  // config + 3 layers
  EXPECT_EQ((*pushed)[1].manifest_digest, b.image.manifest.digest);

  for (const std::string ref : {"team/app:1", "team/app:latest", "other/app:1"}) {
    auto r = sh("skopeo inspect --tls-verify=false --config docker://" + host + "/" + ref);
    ASSERT_EQ(r.code, 0) << r.text;
    auto config = nlohmann::json::parse(r.text);
    EXPECT_EQ(config, nlohmann::json::parse(b.image.config_json)) << ref;
  }
  auto r = sh("skopeo inspect --tls-verify=false docker://" + host + "/team/app:1");
  ASSERT_EQ(r.code, 0) << r.text;
  auto inspect = nlohmann::json::parse(r.text);
  EXPECT_EQ(inspect["Digest"], b.image.manifest.digest.toString());
  EXPECT_EQ(inspect["Layers"].size(), 3u);
  // The history skopeo reports is ours: 10 entries, RUN true marked empty.
  auto config = nlohmann::json::parse(
      sh("skopeo inspect --tls-verify=false --config docker://" + host + "/team/app:1").text);
  ASSERT_EQ(config["history"].size(), 10u);
  EXPECT_EQ(config["history"][7]["created_by"], "RUN /bin/sh -c true # buildkit");
  EXPECT_EQ(config["history"][7]["empty_layer"], true);
  EXPECT_EQ(config["rootfs"]["diff_ids"].size(), 3u);
}

TEST(AssemblyIntegration, PushFromRegistryBlobStoreMountsEveryBlob) {
  if (!lf::testing::RegistryServer::available()) GTEST_SKIP() << "docker-registry missing";
  auto server = lf::testing::RegistryServer::start();
  ASSERT_TRUE(server.isOk()) << server.status().toString();
  std::shared_ptr<registry::RegistryClient> client = clientFor(**server);
  ASSERT_NE(client, nullptr);
  AssemblyFixture f;
  const std::string host = (*server)->host();
  auto spool = f.dir() / "spool";
  std::filesystem::create_directories(spool);
  auto cache = registry::RegistryBlobStore::open(client, {host, "farm/cache"}, spool);
  ASSERT_TRUE(cache.isOk()) << cache.status().toString();
  Built b = build(f, **cache);
  ASSERT_FALSE(b.image.manifest.digest.empty());

  auto pushed = pushAssembledImage(*client, **cache, b.image, {host + "/team/app:1"});
  ASSERT_TRUE(pushed.isOk()) << pushed.status().toString();
  ASSERT_EQ(pushed->size(), 1u);
  EXPECT_EQ((*pushed)[0].blobs_mounted, 4u);
  EXPECT_EQ((*pushed)[0].blobs_uploaded, 0u);
  auto got = client->getManifest({host, "team/app"}, "1");
  ASSERT_TRUE(got.isOk()) << got.status().toString();
  EXPECT_EQ(got->digest, b.image.manifest.digest);
}

TEST(AssemblyIntegration, PushRejectsADigestThatIsNotOurs) {
  AssemblyFixture f;
  Built b = build(f, f.store());
  auto client = registry::RegistryClient::create({});
  ASSERT_TRUE(client.isOk());
  auto r = pushAssembledImage(**client, f.store(), b.image,
                              {"127.0.0.1:1/team/app@" + Digest::sha256Of("x").toString()});
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  r = pushAssembledImage(**client, f.store(), b.image, {});
  ASSERT_FALSE(r.isOk());
}

}  // namespace
}  // namespace lf::coordinator
