// End-to-end tests of `layerfarm-worker exec`: the real binary, real namespaces, overlayfs and
// cgroups, on a busybox base layer made offline from the busybox-static package. Root only.

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <google/protobuf/util/json_util.h>
#include <set>
#include <sstream>
#include <thread>

#include "common/blob/directory_blob_store.h"
#include "common/layer/layer_writer.h"
#include "common/oci/layout.h"
#include "common/oci/media_types.h"
#include "proto/layerfarm/v1/step.pb.h"
#include "tests/support/shell.h"
#include "tests/support/temp_dir.h"
#include "worker/cgroup/cgroup.h"
#include "worker/exec/step_spec.h"

namespace lf::worker {
namespace {

namespace fs = std::filesystem;
namespace v1 = layerfarm::v1;
using testing::runShell;

struct ExecOutcome {
  int code = -1;
  v1::StepResult result;
  std::string log;
};

class WorkerExecTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0) {
      return;
    }
    dir_ = new testing::TempDir();
    fs::path rootfs = *dir_ / "rootfs";
    auto made = runShell(std::string(LF_TEST_DATA_DIR) + "/make-busybox-rootfs.sh " +
                         rootfs.string());
    ASSERT_EQ(made.code, 0) << made.text;
    auto store = blob::DirectoryBlobStore::open(*dir_ / "blobs");
    ASSERT_TRUE(store.isOk()) << store.status().toString();
    layer::LayerOptions options;
    options.source_date_epoch = 1704067200;
    auto info = layer::writeLayer(rootfs, options, **store);
    ASSERT_TRUE(info.isOk()) << info.status().toString();
    base_ = new v1::LayerRef(fromLayerRef({info->digest, info->diff_id, info->size,
                                            info->media_type}));
  }
  static void TearDownTestSuite() {
    if (::geteuid() == 0) {
      cgroup::CgroupConfig config;
      config.parent = cgroupParent();
      auto removed = cgroup::removeStaleCgroups(config);
      EXPECT_TRUE(removed.isOk()) << removed.status().toString();
    }
    delete base_;
    base_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "needs root (namespaces, overlayfs, cgroups)";
    }
    ASSERT_NE(base_, nullptr) << "the busybox base layer could not be made";
  }

  static fs::path blobs() { return *dir_ / "blobs"; }
  // Per test process (ctest runs each test in its own): `recover` kills every cgroup below its
  // parent, which must not reach the steps of tests running at the same time.
  static std::string cgroupParent() { return "layerfarm-test-" + std::to_string(::getpid()); }
  fs::path state() const { return *dir_ / "state"; }

  v1::StepSpec runSpec(const std::string& shell_command) const {
    v1::StepSpec spec;
    spec.set_step_id("test-step");
    spec.set_kind(v1::STEP_KIND_RUN);
    *spec.mutable_parent()->add_layers() = *base_;
    spec.mutable_config()->add_env("PATH=/bin");
    spec.mutable_run()->add_command(shell_command);
    spec.mutable_run()->set_shell_form(true);
    spec.mutable_limits()->set_timeout_ms(60'000);
    return spec;
  }

  std::string execCommand(const v1::StepSpec& spec, const std::string& name) const {
    fs::path spec_path = *dir_ / (name + ".json");
    std::ofstream(spec_path) << stepSpecToJson(spec);
    return std::string(LF_WORKER_BINARY) + " exec --spec " + spec_path.string() + " --blobs " +
           blobs().string() + " --state " + state().string() + " --cgroup-parent " +
           cgroupParent() + "/" + name;
  }

  ExecOutcome exec(const v1::StepSpec& spec) const {
    static int counter = 0;
    std::string name = "step" + std::to_string(++counter);
    fs::path out = *dir_ / (name + ".out");
    fs::path err = *dir_ / (name + ".err");
    auto ran = runShell(execCommand(spec, name) + " >" + out.string() + " 2>" + err.string());
    ExecOutcome outcome;
    outcome.code = ran.code;
    outcome.log = testing::readFile(err);
    std::string json = testing::readFile(out);
    auto parsed = google::protobuf::util::JsonStringToMessage(json, &outcome.result);
    EXPECT_TRUE(parsed.ok()) << "result is not a StepResult: " << json << "\n" << outcome.log;
    return outcome;
  }

  // Entries of a layer blob as `tar` (an independent reader) lists them.
  static std::set<std::string> layerEntries(const v1::LayerRef& layer) {
    std::string hex = layer.blob().digest().substr(7);
    auto listed = runShell("tar -tzf " + (blobs() / "blobs/sha256" / hex).string());
    EXPECT_EQ(listed.code, 0) << listed.text;
    std::set<std::string> names;
    std::istringstream in(listed.text);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '/') {
        line.pop_back();
      }
      if (line.rfind("./", 0) == 0) {
        line = line.substr(2);
      }
      names.insert(line);
    }
    return names;
  }

  static testing::TempDir* dir_;
  static v1::LayerRef* base_;
};

testing::TempDir* WorkerExecTest::dir_ = nullptr;
v1::LayerRef* WorkerExecTest::base_ = nullptr;

TEST_F(WorkerExecTest, RunThatWritesFilesMakesALayerWithExactlyThoseFiles) {
  auto outcome = exec(runSpec("mkdir -p /opt/app && echo hello > /opt/app/greeting && "
                              "echo to-stdout && echo to-stderr >&2"));
  ASSERT_EQ(outcome.code, 0) << outcome.log;
  ASSERT_EQ(outcome.result.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << outcome.result.error();
  EXPECT_NE(outcome.log.find("to-stdout"), std::string::npos);
  EXPECT_NE(outcome.log.find("to-stderr"), std::string::npos);
  EXPECT_FALSE(outcome.result.empty_layer());
  EXPECT_EQ(layerEntries(outcome.result.layer()),
            (std::set<std::string>{"opt", "opt/app", "opt/app/greeting"}));
  EXPECT_EQ(outcome.result.layer().blob().media_type(), oci::kOciLayerTarGzip);
  EXPECT_EQ(outcome.result.exit_code(), 0);
}

TEST_F(WorkerExecTest, RunThatDeletesABaseFileMakesAWhiteoutThatUmociApplies) {
  auto outcome = exec(runSpec("rm /etc/group"));
  ASSERT_EQ(outcome.result.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << outcome.result.error();
  auto entries = layerEntries(outcome.result.layer());
  EXPECT_EQ(entries, (std::set<std::string>{"etc", "etc/.wh.group"}));

  // Base + the new layer as an OCI image; umoci (an independent implementation) unpacks it.
  auto store = blob::DirectoryBlobStore::open(blobs());
  ASSERT_TRUE(store.isOk());
  oci::ImageConfig config;
  config.architecture = "amd64";
  config.os = "linux";
  std::vector<oci::Descriptor> layers;
  for (const v1::LayerRef* ref : std::vector<const v1::LayerRef*>{base_, &outcome.result.layer()}) {
    config.rootfs.diff_ids.push_back(*Digest::parse(ref->diff_id()));
    layers.push_back(oci::Descriptor{ref->blob().media_type(), *Digest::parse(ref->blob().digest()),
                                     static_cast<uint64_t>(ref->blob().size())});
  }
  auto manifest = oci::storeImage(**store, config, layers);
  ASSERT_TRUE(manifest.isOk()) << manifest.status().toString();
  fs::path layout = *dir_ / "umoci-layout";
  ASSERT_TRUE(oci::writeOciLayout(**store, *manifest, "test", layout).isOk());
  fs::path bundle = *dir_ / "umoci-bundle";
  auto unpacked = runShell("umoci unpack --image " + layout.string() + ":test " + bundle.string());
  ASSERT_EQ(unpacked.code, 0) << unpacked.text;
  EXPECT_TRUE(fs::exists(bundle / "rootfs/etc/passwd"));
  EXPECT_FALSE(fs::exists(bundle / "rootfs/etc/group"));
}

TEST_F(WorkerExecTest, StepSeesNeitherHostFilesNorPidsNorInterfaces) {
  testing::TempDir host;
  fs::path marker = host.write("host-marker", "secret");
  auto outcome = exec(runSpec("test ! -e " + marker.string() + " && echo no-host-file; "
                              "echo pids=$(ls /proc | grep -c '^[0-9]'); "
                              "echo ifaces=$(ls /sys/class/net | tr '\\n' ' '); "
                              "echo host=$(hostname)"));
  ASSERT_EQ(outcome.result.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << outcome.log;
  EXPECT_NE(outcome.log.find("no-host-file"), std::string::npos) << outcome.log;
  // sh, ls and grep at most; the host runs hundreds.
  size_t at = outcome.log.find("pids=");
  ASSERT_NE(at, std::string::npos);
  EXPECT_LE(std::stoi(outcome.log.substr(at + 5)), 4) << outcome.log;
  EXPECT_NE(outcome.log.find("ifaces=lo\n"), std::string::npos) << outcome.log;
  EXPECT_NE(outcome.log.find("host=test-step"), std::string::npos) << outcome.log;
  EXPECT_TRUE(outcome.result.empty_layer()) << "reading must not leave anything in the layer";
}

TEST_F(WorkerExecTest, FailingCommandIsAFailedStepWithItsLastOutput) {
  auto outcome = exec(runSpec("echo about to fail; exit 3"));
  EXPECT_EQ(outcome.code, 1);
  EXPECT_EQ(outcome.result.outcome(), v1::STEP_OUTCOME_FAILED);
  EXPECT_EQ(outcome.result.exit_code(), 3);
  EXPECT_NE(outcome.result.error().find("exited with status 3"), std::string::npos);
  EXPECT_NE(outcome.result.error().find("about to fail"), std::string::npos);
  EXPECT_FALSE(outcome.result.has_layer());
}

TEST_F(WorkerExecTest, MemoryHogIsStoppedByItsLimit) {
  auto spec = runSpec("awk 'BEGIN { s = \"x\"; while (1) s = s s }'");
  spec.mutable_limits()->set_memory_bytes(64ll << 20);
  auto outcome = exec(spec);
  EXPECT_EQ(outcome.result.outcome(), v1::STEP_OUTCOME_LIMIT_EXCEEDED) << outcome.result.error();
  EXPECT_NE(outcome.result.error().find("memory limit"), std::string::npos)
      << outcome.result.error();
}

TEST_F(WorkerExecTest, ForkBombIsStoppedByThePidsLimit) {
  auto spec = runSpec("f() { f | f & }; f; sleep 30");
  spec.mutable_limits()->set_pids_max(64);
  spec.mutable_limits()->set_timeout_ms(5'000);
  auto start = std::chrono::steady_clock::now();
  auto outcome = exec(spec);
  EXPECT_EQ(outcome.result.outcome(), v1::STEP_OUTCOME_LIMIT_EXCEEDED) << outcome.result.error();
  EXPECT_NE(outcome.result.error().find("process limit of 64"), std::string::npos)
      << outcome.result.error();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
}

// Whether a process whose command line contains `needle` (digits) is alive on the host. The
// pattern is written so that it does not match the command line of the grep looking for it.
bool processAlive(const std::string& needle) {
  std::string pattern = needle.substr(0, needle.size() - 1) + "[" + needle.back() + "]";
  auto found = runShell("grep -l -a -- '" + pattern + "' /proc/[0-9]*/cmdline 2>/dev/null");
  return found.text.find("/proc/") != std::string::npos;
}

template <typename Pred>
bool waitFor(Pred pred, std::chrono::seconds deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

TEST_F(WorkerExecTest, TimeoutKillsTheWholeProcessTree) {
  auto spec = runSpec("sleep 4242001 & sleep 4242002 & sleep 4242003");
  spec.mutable_limits()->set_timeout_ms(500);
  auto start = std::chrono::steady_clock::now();
  auto outcome = exec(spec);
  EXPECT_EQ(outcome.result.outcome(), v1::STEP_OUTCOME_TIMED_OUT) << outcome.result.error();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_FALSE(processAlive("4242001"));
  EXPECT_FALSE(processAlive("4242003"));
}

TEST_F(WorkerExecTest, KilledWorkerLeavesNothingMountedOrRunningAfterRecover) {
  auto spec = runSpec("touch /started; sleep 4242100");
  std::string name = "killed";
  fs::path err = *dir_ / "killed.err";
  auto started = runShell(execCommand(spec, name) + " >/dev/null 2>" + err.string() +
                          " & echo $!");
  pid_t pid = std::stoi(started.text);
  ASSERT_TRUE(waitFor([] { return processAlive("4242100"); }, std::chrono::seconds(20)))
      << testing::readFile(err);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  EXPECT_TRUE(waitFor([] { return !processAlive("4242100"); }, std::chrono::seconds(10)))
      << "the step's processes outlived the killed worker";
  std::string mounts = testing::readFile("/proc/self/mountinfo");
  EXPECT_EQ(mounts.find(state().string()), std::string::npos) << mounts;
  // The step's scratch dir is left; the next start (recover) removes it.
  EXPECT_FALSE(fs::is_empty(state() / "steps"));
  auto recovered = runShell(std::string(LF_WORKER_BINARY) + " recover --state " +
                            state().string() + " --cgroup-parent " + cgroupParent());
  EXPECT_EQ(recovered.code, 0) << recovered.text;
  EXPECT_TRUE(fs::is_empty(state() / "steps")) << recovered.text;
}

TEST_F(WorkerExecTest, NextStepStartsFromTheLayerTheLastOneMade) {
  auto first = exec(runSpec("echo one > /one"));
  ASSERT_EQ(first.result.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << first.result.error();
  auto spec = runSpec("cat /one && echo two > /two");
  *spec.mutable_parent()->add_layers() = first.result.layer();
  // A chain may repeat a layer (a step that made the same layer twice): mounted once.
  *spec.mutable_parent()->add_layers() = first.result.layer();
  auto second = exec(spec);
  ASSERT_EQ(second.result.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << second.result.error();
  EXPECT_NE(second.log.find("one"), std::string::npos);
  EXPECT_EQ(layerEntries(second.result.layer()), (std::set<std::string>{"two"}));
}

TEST_F(WorkerExecTest, UserAndWorkdirComeFromTheImage) {
  auto spec = runSpec("echo uid=$(id -u) pwd=$(pwd) home=$HOME");
  spec.mutable_config()->set_user("nobody");
  spec.mutable_config()->set_working_dir("/srv/new");
  auto outcome = exec(spec);
  ASSERT_EQ(outcome.result.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << outcome.log;
  EXPECT_NE(outcome.log.find("uid=65534 pwd=/srv/new"), std::string::npos) << outcome.log;
  // Docker creates a missing working directory, and it is part of the layer.
  EXPECT_EQ(layerEntries(outcome.result.layer()), (std::set<std::string>{"srv", "srv/new"}));
}

TEST_F(WorkerExecTest, CacheAndTmpfsMountsPersistOrVanishAndStayOutOfTheLayer) {
  auto withMounts = [&](const std::string& command) {
    auto spec = runSpec(command);
    auto* cache = spec.mutable_run()->add_mounts();
    cache->set_type(v1::RunMount::TYPE_CACHE);
    cache->set_target("/root/.cache");
    cache->set_id("exec-test-cache");
    auto* tmp = spec.mutable_run()->add_mounts();
    tmp->set_type(v1::RunMount::TYPE_TMPFS);
    tmp->set_target("/scratch");
    return exec(spec);
  };
  auto first = withMounts("echo kept > /root/.cache/entry && echo gone > /scratch/x && "
                          "echo out > /made");
  ASSERT_EQ(first.result.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << first.result.error();
  EXPECT_EQ(layerEntries(first.result.layer()), (std::set<std::string>{"made"}));
  auto second = withMounts("cat /root/.cache/entry; ls /scratch | wc -l");
  ASSERT_EQ(second.result.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << second.result.error();
  EXPECT_NE(second.log.find("kept\n0\n"), std::string::npos) << second.log;
  EXPECT_TRUE(second.result.empty_layer());
}

TEST_F(WorkerExecTest, HostNetworkIsRefusedUnlessAllowed) {
  auto spec = runSpec("true");
  spec.mutable_run()->set_network(v1::NETWORK_MODE_HOST);
  auto outcome = exec(spec);
  EXPECT_EQ(outcome.result.outcome(), v1::STEP_OUTCOME_FAILED);
  EXPECT_NE(outcome.result.error().find("--network=host is not allowed"), std::string::npos);
}

TEST_F(WorkerExecTest, CopyFromTheContextCannotEscapeIt) {
  // The context: a tar blob with a file, and symlinks that point out of it.
  testing::TempDir context;
  context.write("app/main.sh", "echo main\n");
  testing::TempDir host;
  host.write("secret", "host-secret");
  fs::create_symlink(host.path() / "secret", context.path() / "abs-link");
  fs::create_symlink("../../../../../../../../" + (host.path() / "secret").string(),
                     context.path() / "rel-link");
  auto store = blob::DirectoryBlobStore::open(blobs());
  ASSERT_TRUE(store.isOk());
  auto info = layer::writeLayer(context.path(), {}, **store);
  ASSERT_TRUE(info.isOk()) << info.status().toString();

  auto copySpec = [&](std::vector<std::string> sources, const std::string& dest) {
    v1::StepSpec spec;
    spec.set_step_id("copy");
    spec.set_kind(v1::STEP_KIND_COPY);
    *spec.mutable_parent()->add_layers() = *base_;
    *spec.mutable_copy()->mutable_context() =
        fromLayerRef({info->digest, info->diff_id, info->size, info->media_type});
    for (auto& s : sources) {
      spec.mutable_copy()->add_sources(s);
    }
    spec.mutable_copy()->set_destination(dest);
    return spec;
  };

  auto ok = exec(copySpec({"app/"}, "/srv/"));
  ASSERT_EQ(ok.result.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << ok.result.error();
  EXPECT_EQ(layerEntries(ok.result.layer()),
            (std::set<std::string>{"srv", "srv/main.sh"}));

  auto dotdot = exec(copySpec({"../../etc/passwd"}, "/x"));
  if (dotdot.result.outcome() == v1::STEP_OUTCOME_SUCCEEDED) {
    // Clamped to the context root, as BuildKit does: then there is nothing of the host's.
    ADD_FAILURE() << "../../etc/passwd resolved to something in the context";
  }
  for (const char* link : {"abs-link", "rel-link"}) {
    auto outcome = exec(copySpec({link}, "/copied"));
    // The link resolves inside the context, where there is no such file.
    EXPECT_NE(outcome.result.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << link;
    EXPECT_EQ(outcome.result.outcome(), v1::STEP_OUTCOME_FAILED) << outcome.result.error();
  }
}

TEST_F(WorkerExecTest, BadSpecIsAClearError) {
  fs::path spec_path = *dir_ / "bad.json";
  std::ofstream(spec_path) << R"({"kind": "STEP_KIND_RUN", "run": {"command": []}})";
  auto ran = runShell(std::string(LF_WORKER_BINARY) + " exec --spec " + spec_path.string() +
                      " --blobs " + blobs().string() + " --state " + state().string());
  EXPECT_EQ(ran.code, 1);
  EXPECT_NE(ran.text.find("run.command: empty"), std::string::npos) << ran.text;
}

}  // namespace
}  // namespace lf::worker
