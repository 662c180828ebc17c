// An assembled image actually runs: a busybox base (tests/data/make-busybox-rootfs.sh) plus the
// layers of a small Dockerfile, assembled, exported as an OCI layout, unpacked by umoci and run
// by runc, which must print what the entrypoint, ENV and WORKDIR we put in the config make it
// print. Needs root (runc), umoci, runc and busybox-static; skips with the reason otherwise.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "coordinator/assembly/image_assembly.h"
#include "tests/coordinator/assembly/assembly_test_util.h"
#include "tests/support/shell.h"

namespace lf::coordinator {
namespace {

using testing::AssemblyFixture;
using testing::kEpoch;
namespace fs = std::filesystem;

lf::testing::ShellResult sh(const std::string& command) { return lf::testing::runShell(command); }

struct ContainerGuard {
  std::string id;
  // Best effort: the container may never have been created.
  ~ContainerGuard() { (void)sh("runc delete --force " + id); }
};

std::string preflight() {
  if (::geteuid() != 0) return "needs root to run runc";
  for (const char* tool : {"umoci", "runc"}) {
    if (sh(std::string("command -v ") + tool).code != 0) {
      return std::string(tool) + " is not installed";
    }
  }
  if (!fs::exists("/bin/busybox")) return "busybox-static is not installed (/bin/busybox)";
  if (sh("unshare --mount --pid --fork true").code != 0) {
    return "cannot create mount/pid namespaces here";
  }
  return "";
}

constexpr std::string_view kDockerfile = R"(FROM base:1
ENV GREETING=hello
COPY run.sh /app/run.sh
WORKDIR /app
RUN make
ENTRYPOINT ["/bin/sh", "/app/run.sh"]
)";

constexpr std::string_view kScript = "echo \"$GREETING from $(pwd): $(cat made)\"\n";

TEST(AssemblyRun, AssembledImageRunsUnderRunc) {
  if (std::string why = preflight(); !why.empty()) GTEST_SKIP() << why;
  const char* env = std::getenv("LF_TEST_DATA");
  std::string data = env != nullptr ? env : LF_TEST_DATA_DIR;
  AssemblyFixture f;
  fs::path rootfs = f.dir() / "busybox";
  auto made = sh(data + "/make-busybox-rootfs.sh " + rootfs.string());
  ASSERT_EQ(made.code, 0) << made.text;

  layer::LayerOptions opts;
  opts.source_date_epoch = kEpoch;
  auto base_layer = layer::writeLayer(rootfs, opts, f.store());
  ASSERT_TRUE(base_layer.isOk()) << base_layer.status().toString();
  BaseImageInfo base;
  base.config.architecture = "amd64";
  base.config.os = "linux";
  base.config.config.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  base.config.config.cmd = std::vector<std::string>{"sh"};
  base.config.rootfs.diff_ids = {base_layer->diff_id};
  base.config.history = {{"2024-01-01T00:00:00Z", "ADD busybox / # buildkit", "", "", false}};
  oci::Descriptor d;
  d.media_type = base_layer->media_type;
  d.digest = base_layer->digest;
  d.size = base_layer->size;
  base.layers = {d};

  auto planned = f.plan(kDockerfile, {{"run.sh", std::string(kScript)}}, &base);
  ASSERT_NE(planned, nullptr);
  AssemblyInput in;
  in.stage = &planned->plan.stages.back();
  in.base = base;
  in.step_layers[2] = f.makeLayer({{"app/run.sh", std::string(kScript)}});
  in.step_layers[4] = f.makeLayer({{"app/made", "built by make"}});
  in.created_unix_seconds = kEpoch;
  auto image = assembleImage(in, f.store());
  ASSERT_TRUE(image.isOk()) << image.status().toString();

  ExportOptions out;
  out.dest = f.dir() / "layout";
  out.tar = false;
  out.tags = {"team/app:1"};
  ASSERT_TRUE(exportImage(f.store(), *image, out).isOk());
  fs::path bundle = f.dir() / "bundle";
  auto r = sh("umoci unpack --image " + out.dest.string() + ":1 " + bundle.string());
  ASSERT_EQ(r.code, 0) << r.text;

  nlohmann::json spec;
  {
    std::ifstream in_spec(bundle / "config.json");
    spec = nlohmann::json::parse(in_spec);
  }
  spec["process"]["terminal"] = false;
  {
    std::ofstream out_spec(bundle / "config.json", std::ios::trunc);
    out_spec << spec.dump();
  }
  std::random_device rd;
  ContainerGuard guard{"lf-assembly-test-" + std::to_string(::getpid()) + "-" +
                       std::to_string(rd())};
  auto ran = sh("runc run --bundle " + bundle.string() + " " + guard.id + " </dev/null");
  EXPECT_EQ(ran.code, 0) << ran.text;
  EXPECT_EQ(ran.text, "hello from /app: built by make\n");
}

}  // namespace
}  // namespace lf::coordinator
