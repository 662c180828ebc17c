// The whole path a base image takes in tests: the offline busybox rootfs
// (tests/data/make-busybox-rootfs.sh) imported with `layerfarm import`, unpacked by umoci and run
// by runc, which must print what the image's CMD says.

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "cli/app.h"
#include "tests/support/registry_server.h"
#include "tests/support/shell.h"
#include "tests/support/temp_dir.h"

namespace lf::cli {
namespace {

namespace fs = std::filesystem;
using lf::testing::TempDir;

using Output = lf::testing::ShellResult;

Output sh(const std::string& command) { return lf::testing::runShell(command); }

int runLayerfarm(std::vector<std::string> args, std::string* err) {
  args.insert(args.begin(), "layerfarm");
  std::vector<const char*> argv;
  for (const auto& a : args) {
    argv.push_back(a.c_str());
  }
  std::ostringstream out;
  std::ostringstream errs;
  int code = runCli(static_cast<int>(argv.size()), argv.data(), Io{&out, &errs});
  *err = errs.str();
  return code;
}

// Deletes the container whatever happened to the test.
struct ContainerGuard {
  std::string id;
  ~ContainerGuard() { sh("runc delete --force " + id); }
};

std::string preflight() {
  if (::geteuid() != 0) {
    return "needs root to run runc";
  }
  for (const char* tool : {"umoci", "runc"}) {
    if (sh(std::string("command -v ") + tool).code != 0) {
      return std::string(tool) + " is not installed";
    }
  }
  if (!fs::exists("/bin/busybox")) {
    return "busybox-static is not installed (/bin/busybox)";
  }
  if (sh("unshare --mount --pid --fork true").code != 0) {
    return "cannot create mount/pid namespaces here";
  }
  return "";
}

TEST(ImportIntegration, BusyboxImageRunsWithRunc) {
  if (std::string why = preflight(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  // ctest sets LF_TEST_DATA; when run by hand, fall back to the source tree.
  const char* env = std::getenv("LF_TEST_DATA");
  std::string data = env != nullptr ? env : LF_TEST_DATA_DIR;
  TempDir dir;
  fs::path rootfs = dir / "rootfs";
  auto made = sh(data + "/make-busybox-rootfs.sh " + rootfs.string());
  ASSERT_EQ(made.code, 0) << made.text;

  fs::path layout = dir / "layout";
  std::string err;
  ASSERT_EQ(
      runLayerfarm({"import", rootfs.string(), "-t", "busybox:test", "--output",
                    "type=oci,dest=" + layout.string(), "--change",
                    R"(CMD ["/bin/echo","hello from layerfarm"])", "--change", "ENV PATH=/bin"},
                   &err),
      0)
      << err;

  fs::path bundle = dir / "bundle";
  auto unpacked = sh("umoci unpack --image " + layout.string() + ":test " + bundle.string());
  ASSERT_EQ(unpacked.code, 0) << unpacked.text;
  // umoci writes a spec for an interactive terminal; there is none under ctest.
  nlohmann::json spec;
  {
    std::ifstream in(bundle / "config.json");
    spec = nlohmann::json::parse(in);
  }
  EXPECT_EQ(spec["process"]["args"], nlohmann::json::array({"/bin/echo", "hello from layerfarm"}));
  spec["process"]["terminal"] = false;
  {
    std::ofstream out(bundle / "config.json", std::ios::trunc);
    out << spec.dump();
  }

  std::random_device rd;
  ContainerGuard guard{"lf-import-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd())};
  auto ran = sh("runc run --bundle " + bundle.string() + " " + guard.id + " </dev/null");
  EXPECT_EQ(ran.code, 0) << ran.text;
  EXPECT_EQ(ran.text, "hello from layerfarm\n");
}

// `layerfarm import --push` against the real registry: skopeo (an independent client) finds the
// manifest digest the command reported, with the same layer; with SOURCE_DATE_EPOCH the same
// rootfs pushed to a second repository has the same digest. (Cross-repository mounts need a
// known source repository; import has none. tests/common/registry covers mounts.)
TEST(ImportIntegration, PushLandsInTheRegistryAndSkopeoAgrees) {
  if (!lf::testing::RegistryServer::available() || sh("command -v skopeo").code != 0) {
    GTEST_SKIP() << "docker-registry or skopeo is not installed";
  }
  auto registry = lf::testing::RegistryServer::start();
  ASSERT_TRUE(registry.isOk()) << registry.status().toString();
  const char* env = std::getenv("LF_TEST_DATA");
  std::string data = env != nullptr ? env : LF_TEST_DATA_DIR;
  TempDir dir;
  fs::path rootfs = dir / "rootfs";
  auto made = sh(data + "/make-busybox-rootfs.sh " + rootfs.string());
  ASSERT_EQ(made.code, 0) << made.text;

  ::setenv("SOURCE_DATE_EPOCH", "1704067200", 1);
  auto push = [&](const std::string& ref, std::string* out) {
    std::vector<std::string> args = {"layerfarm", "import", rootfs.string(), "-t", ref, "--push",
                                     "--insecure-registry", (*registry)->host(), "--change",
                                     R"(CMD ["/bin/echo","hello from the registry"])"};
    std::vector<const char*> argv;
    for (const auto& a : args) {
      argv.push_back(a.c_str());
    }
    std::ostringstream o, e;
    int code = runCli(static_cast<int>(argv.size()), argv.data(), Io{&o, &e});
    *out = o.str() + e.str();
    return code;
  };
  std::string first_out;
  ASSERT_EQ(push((*registry)->host() + "/team/busybox:1", &first_out), 0) << first_out;
  EXPECT_NE(first_out.find("pushed " + (*registry)->host() + "/team/busybox@sha256:"),
            std::string::npos)
      << first_out;
  EXPECT_NE(first_out.find("2 uploaded, 0 mounted"), std::string::npos) << first_out;
  size_t at = first_out.find("@sha256:");
  ASSERT_NE(at, std::string::npos);
  std::string digest = first_out.substr(at + 1, 71);

  auto inspected = sh("skopeo inspect --tls-verify=false docker://" + (*registry)->host() +
                      "/team/busybox:1");
  ASSERT_EQ(inspected.code, 0) << inspected.text;
  auto json = nlohmann::json::parse(inspected.text);
  EXPECT_EQ(json["Digest"], digest);
  ASSERT_EQ(json["Layers"].size(), 1u);
  EXPECT_EQ(json["Os"], "linux");

  // Pulled back by skopeo, unpacked by umoci, run by runc: the CMD prints.
  if (std::string why = preflight(); why.empty()) {
    fs::path pulled = dir / "pulled";
    auto copied = sh("skopeo copy --src-tls-verify=false docker://" + (*registry)->host() +
                     "/team/busybox:1 oci:" + pulled.string() + ":1");
    ASSERT_EQ(copied.code, 0) << copied.text;
    fs::path bundle = dir / "pulled-bundle";
    auto unpacked = sh("umoci unpack --image " + pulled.string() + ":1 " + bundle.string());
    ASSERT_EQ(unpacked.code, 0) << unpacked.text;
    nlohmann::json spec;
    {
      std::ifstream in(bundle / "config.json");
      spec = nlohmann::json::parse(in);
    }
    spec["process"]["terminal"] = false;
    std::ofstream(bundle / "config.json", std::ios::trunc) << spec.dump();
    std::random_device rd;
    ContainerGuard guard{"lf-push-test-" + std::to_string(::getpid()) + "-" +
                         std::to_string(rd())};
    auto ran = sh("runc run --bundle " + bundle.string() + " " + guard.id + " </dev/null");
    EXPECT_EQ(ran.code, 0) << ran.text;
    EXPECT_EQ(ran.text, "hello from the registry\n");
  }

  std::string second_out;
  ASSERT_EQ(push((*registry)->host() + "/other/busybox:1", &second_out), 0) << second_out;
  EXPECT_NE(second_out.find("@" + digest), std::string::npos) << second_out;
  ::unsetenv("SOURCE_DATE_EPOCH");
}

}  // namespace
}  // namespace lf::cli
