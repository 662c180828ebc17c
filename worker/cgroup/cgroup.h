#pragma once

// Per-step cgroups: memory, pids and CPU limits, outcome classification and kill-all, on cgroup
// v2 (the unified hierarchy Kubernetes nodes usually run) and v1 (separate per-controller
// hierarchies, as on the development machines; on a hybrid host the v1 controllers are what
// counts).
//
// Layout: every step cgroup lives at <hierarchy>/<base>/<parent>/<name>, where <hierarchy> is
// mount_root on v2 and mount_root/<controller> on v1 (memory, pids, cpu, cpuacct, freezer), and
// <base> is the calling process's own cgroup in that hierarchy (from /proc/self/cgroup) when
// nest_under_self is set, so steps stay inside whatever limits the worker itself runs under
// (systemd slice, pod), or the hierarchy root otherwise.
//
// The parent must belong to one worker process alone (e.g. "layerfarm/<worker-id>"):
// removeStaleCgroups() kills everything under it.
//
// Killing: v2 writes cgroup.kill (Linux >= 5.14) or, without it, freezes the cgroup, SIGKILLs
// every member and thaws; v1 does the same through the freezer hierarchy. Freezing first means
// a fork bomb cannot create processes faster than they are killed. Processes in nested cgroups
// below a step cgroup are killed too.
//
// Errors name the version and the file: "cgroup v1: write
// /sys/fs/cgroup/memory/layerfarm/x/memory.limit_in_bytes: Device or resource busy".
//
// Thread-safety: a Cgroup is used by one thread at a time (the step runner that owns it);
// different Cgroup objects are independent.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace lf::worker::cgroup {

namespace internal {
struct CgroupDir;  // one directory of a cgroup in one hierarchy (cgroup_files.h)
}  // namespace internal

enum class CgroupVersion { kV1, kV2 };

std::string_view cgroupVersionName(CgroupVersion version);  // "v1" / "v2"

// 0 means unlimited for every field.
struct CgroupLimits {
  int64_t memory_bytes = 0;  // memory (and memory+swap, so swap cannot dodge it), bytes
  int64_t pids_max = 0;      // processes and threads alive at once
  int64_t cpu_millis = 0;    // CPU time per wall time; 1000 = one core, 500 = half a core
};

struct CgroupConfig {
  // Where the cgroup filesystems are mounted: the cgroup2 mount itself on v2, the tmpfs holding
  // one directory per controller on v1.
  std::filesystem::path mount_root = "/sys/fs/cgroup";
  // Relative path (may have several components) of the directory holding this worker's step
  // cgroups in every hierarchy. Must be unique per worker process on a host.
  std::string parent = "layerfarm";
  // Resolve `parent` below the calling process's own cgroup (see above) instead of the
  // hierarchy root.
  bool nest_under_self = true;
  // v2 only: use cgroup.kill when the kernel has it. false forces the freeze-and-kill path that
  // kernels < 5.14 take (tests use it to cover that path on a new kernel).
  bool use_cgroup_kill = true;
};

// What happened inside a cgroup, read after the step's processes ended (or at any time).
struct CgroupEvents {
  bool oom_killed = false;         // the kernel OOM-killed a process for the memory limit
  bool pids_limit_hit = false;     // a fork/clone failed because of pids_max
  uint64_t memory_peak_bytes = 0;  // 0 where the kernel does not report it
  uint64_t cpu_usage_ns = 0;       // user + system CPU time of all processes
};

// One step's cgroup (one directory per hierarchy used). Owns the directories: the destructor
// kills what is left and removes them, best effort (call destroy() to see errors). Not
// copyable or movable; hold it by unique_ptr.
class Cgroup {
 public:
  // v2 if mount_root is a cgroup2 filesystem (statfs magic), v1 if it holds per-controller
  // cgroup v1 hierarchies (memory and pids at least); kFailedPrecondition otherwise.
  static Result<CgroupVersion> detect(const CgroupConfig& config);

  // Creates the parent (if missing) and the cgroup `name` (one path component, must not exist)
  // and writes the limits. On v2 enables memory, pids and cpu in the parents'
  // cgroup.subtree_control where available; a limit whose controller is unavailable is an
  // error (kFailedPrecondition naming the controller and file). Removes what it created on
  // failure.
  static Result<std::unique_ptr<Cgroup>> create(const CgroupConfig& config, const std::string& name,
                                                const CgroupLimits& limits);

  ~Cgroup();
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;

  // Moves `pid` (a whole process) into every hierarchy this cgroup uses. Its future children
  // are born inside.
  Status addProcess(pid_t pid);

  // SIGKILLs every process in the cgroup (and nested cgroups) and waits until none is left.
  // kDeadlineExceeded if processes remain after `deadline`. A killed child of the caller shows
  // as gone once it is a zombie; the caller still reaps it with waitpid.
  Status killAll(std::chrono::milliseconds deadline);

  // Pids of the processes in the cgroup itself (not nested cgroups), from cgroup.procs of the
  // first hierarchy.
  Result<std::vector<pid_t>> processes() const;

  // Reads the OOM / pids-limit counters, memory peak and CPU usage. Counters whose controller
  // is not enabled read as zero.
  Result<CgroupEvents> events() const;

  // killAll (5 s deadline) then removes the directories. Idempotent.
  Status destroy();

  CgroupVersion version() const { return version_; }
  // The directories of this cgroup, one per hierarchy used (v2: exactly one).
  const std::vector<std::filesystem::path>& paths() const { return paths_; }

 private:
  Cgroup(CgroupVersion version, CgroupConfig config, std::vector<internal::CgroupDir> dirs);

  CgroupVersion version_;
  CgroupConfig config_;
  std::vector<internal::CgroupDir> dirs_;     // v1: memory, pids, cpu, cpuacct, freezer order
  std::vector<std::filesystem::path> paths_;  // dirs_' paths
  bool destroyed_ = false;
};

// Worker start-up, once, before recoverAfterCrash and any step; use the returned config from
// then on. cgroup v2 lets a non-root cgroup enable controllers for its children only while it
// holds no processes itself, and a worker in a Kubernetes container (own cgroup namespace) or a
// systemd service sits in exactly such a cgroup. So on v2, with nest_under_self, this moves
// every process of the worker's own cgroup into <own>/<leaf> (a worker already in a cgroup
// named `leaf` counts its parent as its own), and returns a config pinned to <own>
// (nest_under_self = false, parent = "<own>/<parent>") that no longer depends on where the
// worker process lives. The true root cgroup is never emptied: it has no such rule. On v1
// (no such rule, and one own cgroup per hierarchy) the config is returned unchanged.
Result<CgroupConfig> prepareWorkerCgroups(const CgroupConfig& config,
                                          const std::string& leaf = "supervisor");

// What removeStaleCgroups found.
struct StaleCgroupSummary {
  int cgroups_removed = 0;   // directories removed, counting each hierarchy
  int processes_killed = 0;  // processes that were still alive in them
};

// After a crash: kills every process in every cgroup under the parent (any depth) and removes
// those cgroups and the parent directory itself. A missing parent is not an error.
Result<StaleCgroupSummary> removeStaleCgroups(const CgroupConfig& config);

// Parsers of the kernel's files, exposed for tests. Each takes the file's content.
// "key value" lines (memory.events, pids.events, memory.oom_control, cpu.stat): the value of
// `key`, or -1 when the key is absent or its value is not a non-negative decimal.
int64_t parseKeyedValue(std::string_view content, std::string_view key);
// /proc/<pid>/cgroup: the path of `controller` (v1, e.g. "memory") or, for an empty
// controller, of the v2 line "0::/path". kNotFound when absent.
Result<std::string> parseProcCgroup(std::string_view content, std::string_view controller);
// cgroup.procs: the pids, one per line.
Result<std::vector<pid_t>> parsePidList(std::string_view content);

}  // namespace lf::worker::cgroup
