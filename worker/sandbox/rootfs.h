#pragma once

// Building a sandbox's root filesystem: the overlay mount, the skeleton layer that holds every
// mount point (so none of them reaches the upper dir), /dev, /proc, /sys, the /etc files, RUN
// mounts and pivot_root. Internal to worker/sandbox.
//
// prepareRootPlan() runs in the caller's process and computes everything (strings, metadata) up
// front; the mount functions run in the forked children, in their private mount namespace, and
// only make syscalls on the prepared data (plus small allocations for error messages, which is
// fine after fork() with glibc).

#include <sys/types.h>

#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "common/base/status.h"
#include "worker/sandbox/sandbox.h"

namespace lf::worker::sandbox {

// A directory of the skeleton layer, with the metadata of the directory it shadows in the image
// (so that a copy-up into the upper dir, when the command writes inside it, keeps the image's
// mode and owner).
struct SkeletonDir {
  std::string rel;  // relative to the root, parents listed before children
  mode_t mode = 0755;
  uid_t uid = 0;
  gid_t gid = 0;
  timespec mtime{};
};

struct PreparedMount {
  MountSpec::Type type = MountSpec::kTmpfs;
  std::string source;      // kBind: host directory
  std::string target_rel;  // relative to the root, normalised
  bool readonly = false;
  std::string data;  // kTmpfs: mount options
  // kBind from a build filesystem (see MountSpec): the overlay to mount at overlay_point first
  // (empty = bind from `source`), the path inside the tree, the mount point's type and flags.
  std::vector<std::string> overlay_lowers_top_first;
  std::string overlay_upper;
  std::string overlay_work;
  std::string overlay_point;  // scratch/bind<N>
  std::string source_path;
  bool target_is_file = false;
  bool nosuid_nodev = false;
};

// The host's cgroup filesystems, reproduced read-only at /sys/fs/cgroup inside the sandbox (as
// Docker does), seen through the sandbox's cgroup namespace.
struct CgroupLayout {
  bool unified = false;  // cgroup v2 mounted at /sys/fs/cgroup itself
  struct Mount {
    std::string name;     // the directory under /sys/fs/cgroup ("memory", "unified")
    std::string fstype;   // "cgroup" or "cgroup2"
    std::string options;  // the v1 controllers / name= option
  };
  std::vector<Mount> mounts;                                  // v1 / hybrid
  std::vector<std::pair<std::string, std::string>> symlinks;  // "cpu" -> "cpu,cpuacct"
};

// Read from /proc/self/mountinfo once per process.
const CgroupLayout& hostCgroupLayout();

struct RootPlan {
  std::string scratch;  // work_dir/sandbox: a private tmpfs is mounted here
  std::string skel;     // scratch/skel: the top-most lower layer
  std::string files;    // scratch/files: /etc/hosts, /etc/resolv.conf, /etc/hostname
  std::string root;     // scratch/root: the merged root
  std::vector<std::string> lowers_top_first;  // skel first, then the image's layers
  std::string upper;
  std::string work;
  std::vector<SkeletonDir> skeleton_dirs;
  std::vector<std::string> skeleton_files;  // empty files (file mount points), after the dirs
  std::string hosts;
  std::string resolv_conf;
  std::string hostname;
  NetworkMode network = NetworkMode::kLoopback;
  std::vector<PreparedMount> mounts;
  const CgroupLayout* cgroups = nullptr;
};

// Validates the root and the process's mounts and fills a plan. Creates work_dir/sandbox.
Result<RootPlan> prepareRootPlan(const OverlayRoot& root, const ProcessSpec& proc);

// Mounts an overlay of `lowers_top_first` (+ upper/work unless both are empty) at `target` without
// index, metacopy and redirect_dir, through the new mount API (no length limit) or, on kernels
// without overlay's "lowerdir+" (< 6.8), the classic option string (mountOverlayClassic).
Status mountOverlay(const std::vector<std::string>& lowers_top_first, const std::string& upper,
                    const std::string& work, const std::string& target);

// The classic mount(2) option string, for kernels without "lowerdir+"; exposed for tests. A chain
// too long for a page names its dirs through /proc/self/fd (a few bytes each, so overlay's own
// limit of 500 layers fits). Changes the working directory while mounting, then goes to "/".
Status mountOverlayClassic(const std::vector<std::string>& lowers_top_first,
                           const std::string& upper, const std::string& work,
                           const std::string& target);

// Monitor (after unshare): / rprivate, the scratch tmpfs and skeleton, the overlay, hostname,
// loopback, /dev, /sys, the /etc files and the RUN mounts.
Status setUpMonitorMounts(const RootPlan& plan);

// Sandbox init (pid 1 of the new PID namespace): cgroup namespace, /proc with Docker's masked and
// read-only paths, pivot_root into the merged root.
Status setUpInitMounts(const RootPlan& plan);

}  // namespace lf::worker::sandbox
