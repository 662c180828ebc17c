// Start-to-exit of `true` in a prepared three-layer root filesystem: layerfarm's sandbox
// (overlay mount, namespaces, pivot_root, /proc, /dev, capabilities, seccomp, a cgroup) against
// `runc run` of an equivalent bundle, in the same run. Needs root.
//
//   build/bench/sandbox_bench [--runs N]
//
// The three layers are plain directories: a busybox rootfs (tests/data/make-busybox-rootfs.sh),
// a layer of 200 small files under /usr/share/doc, and one with /etc/app.conf. Each side gets a
// fresh overlay per run over the same three lower dirs:
//   layerfarm  runInSandbox() with a fresh upper dir, inside a fresh per-run cgroup, as the
//              worker runs a RUN step (measured from the call to its return, the command's whole
//              PID namespace gone);
//   runc       the bench mounts the overlay (fresh upper) as the bundle's rootfs, then runs
//              `runc run` (runc's default spec: pid, net, ipc, uts, mount namespaces, its own
//              cgroup) and waits for it; the mount and unmount are inside the measured time.
// Each side runs once untimed first; medians and 90th percentiles over --runs runs.

#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "worker/cgroup/cgroup.h"
#include "worker/sandbox/sandbox.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using lf::worker::sandbox::OverlayRoot;
using lf::worker::sandbox::ProcessSpec;

double msBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct Figures {
  double median = 0;
  double p90 = 0;
};

Figures summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v[std::min(v.size() - 1, v.size() * 9 / 10)]};
}

int run(const std::string& command) { return std::system(command.c_str()); }

void die(const std::string& what) {
  std::fprintf(stderr, "sandbox_bench: %s\n", what.c_str());
  std::exit(1);
}

int spawnAndWait(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  if (posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) {
    die("cannot start " + args[0]);
  }
  posix_spawn_file_actions_destroy(&actions);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void prepareLayers(const fs::path& dir, std::vector<fs::path>& lowers) {
  fs::path l1 = dir / "l1", l2 = dir / "l2", l3 = dir / "l3";
  if (run(std::string(LF_SOURCE_DIR) + "/tests/data/make-busybox-rootfs.sh " + l1.string() +
          " >/dev/null") != 0) {
    die("make-busybox-rootfs.sh failed");
  }
  fs::create_directories(l2 / "usr/share/doc/bench");
  for (int i = 0; i < 200; ++i) {
    std::ofstream(l2 / "usr/share/doc/bench" / ("f" + std::to_string(i))) << "file " << i;
  }
  fs::create_directories(l3 / "etc");
  std::ofstream(l3 / "etc/app.conf") << "x=1\n";
  lowers = {l1, l2, l3};
}

std::string overlayOptions(const std::vector<fs::path>& lowers, const fs::path& upper,
                           const fs::path& work) {
  std::string lower;
  for (auto it = lowers.rbegin(); it != lowers.rend(); ++it) {
    lower += (lower.empty() ? "" : ":") + it->string();
  }
  return "lowerdir=" + lower + ",upperdir=" + upper.string() + ",workdir=" + work.string();
}

void writeRuncSpec(const fs::path& bundle) {
  if (run("cd " + bundle.string() + " && runc spec") != 0) {
    die("runc spec failed (is runc installed?)");
  }
  nlohmann::json spec;
  {
    std::ifstream in(bundle / "config.json");
    in >> spec;
  }
  spec["process"]["terminal"] = false;
  spec["process"]["args"] = {"/bin/true"};
  spec["root"]["readonly"] = false;
  std::ofstream(bundle / "config.json") << spec.dump(2);
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 50;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--runs" && i + 1 < argc) {
      runs = std::max(3, std::atoi(argv[++i]));
    }
  }
  if (geteuid() != 0) {
    die("needs root");
  }
  char tmpl[] = "/tmp/lf-sandbox-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    die("mkdtemp");
  }
  fs::path dir = tmpl;
  std::vector<fs::path> lowers;
  prepareLayers(dir, lowers);

  lf::worker::cgroup::CgroupConfig cg_config;
  cg_config.parent = "layerfarm-bench-" + std::to_string(getpid());
  std::vector<double> ours;
  for (int i = 0; i <= runs; ++i) {
    fs::path step = dir / ("s" + std::to_string(i));
    fs::create_directories(step / "upper");
    fs::create_directories(step / "work");
    ProcessSpec proc;
    proc.argv = {"/bin/true"};
    auto start = Clock::now();
    auto group = lf::worker::cgroup::Cgroup::create(cg_config, "s" + std::to_string(i), {});
    if (!group.isOk()) {
      die(group.status().toString());
    }
    lf::worker::sandbox::Hooks hooks;
    hooks.before_start = [&](pid_t pid) { return (*group)->addProcess(pid); };
    auto result = lf::worker::sandbox::runInSandbox(
        OverlayRoot{lowers, step / "upper", step / "work"}, proc,
        [](auto, int64_t, std::string_view) {}, hooks);
    if (!result.isOk() || !result->exited || result->exit_code != 0) {
      die("layerfarm sandbox run failed: " +
          (result.isOk() ? std::to_string(result->exit_code) : result.status().toString()));
    }
    (void)(*group)->destroy();
    auto end = Clock::now();
    if (i > 0) {
      ours.push_back(msBetween(start, end));
    }
  }
  (void)lf::worker::cgroup::removeStaleCgroups(cg_config);

  fs::path bundle = dir / "bundle";
  fs::create_directories(bundle / "rootfs");
  writeRuncSpec(bundle);
  std::vector<double> runc;
  for (int i = 0; i <= runs; ++i) {
    fs::path step = dir / ("r" + std::to_string(i));
    fs::create_directories(step / "upper");
    fs::create_directories(step / "work");
    auto start = Clock::now();
    std::string options = overlayOptions(lowers, step / "upper", step / "work");
    if (mount("overlay", (bundle / "rootfs").c_str(), "overlay", 0, options.c_str()) != 0) {
      die("mount overlay for runc: " + std::string(strerror(errno)));
    }
    int code = spawnAndWait({"runc", "run", "--bundle", bundle.string(),
                             "lf-bench-" + std::to_string(getpid()) + "-" + std::to_string(i)});
    umount2((bundle / "rootfs").c_str(), MNT_DETACH);
    auto end = Clock::now();
    if (code != 0) {
      die("runc run exited " + std::to_string(code));
    }
    if (i > 0) {
      runc.push_back(msBetween(start, end));
    }
  }
  Figures a = summarize(ours), b = summarize(runc);
  std::printf("start-to-exit of `true` in a 3-layer overlay rootfs, %d runs each\n", runs);
  std::printf("  %-28s median %7.2f ms   p90 %7.2f ms\n", "layerfarm sandbox", a.median, a.p90);
  std::printf("  %-28s median %7.2f ms   p90 %7.2f ms\n", "runc run", b.median, b.p90);
  std::printf("  layerfarm / runc (median): %.2f\n", a.median / b.median);
  run("rm -rf " + dir.string());
  return 0;
}
