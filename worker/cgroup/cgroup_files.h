#pragma once

// Internal to worker/cgroup: reading and writing cgroup files with errors that name the version
// and the file, finding the hierarchies, and the kill-all loop shared by Cgroup::killAll and
// removeStaleCgroups. Not part of the API; tests use the public header.

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "worker/cgroup/cgroup.h"

namespace lf::worker::cgroup::internal {

// One directory of a cgroup in one hierarchy. `controller` is "" on v2 and the v1 controller
// the hierarchy was found by ("memory", "pids", "cpu", "cpuacct", "freezer").
struct CgroupDir {
  std::string controller;
  std::filesystem::path path;
  std::filesystem::path base;  // <hierarchy>/<base>: where the parent path starts
};

// "cgroup v1: " / "cgroup v2: ", the prefix of every error message.
std::string prefix(CgroupVersion version);

Result<std::string> readCgroupFile(CgroupVersion version, const std::filesystem::path& path);
// One write(2) of `content`, as cgroup files require. `err` (optional) receives the errno of a
// failure, for callers that accept some (ESRCH: the process exited meanwhile).
Status writeCgroupFile(CgroupVersion version, const std::filesystem::path& path,
                       const std::string& content, int* err = nullptr);
bool fileExists(const std::filesystem::path& path);

// The parent directory (<hierarchy>/<base>/<parent>) in every hierarchy used, without creating
// anything. v1: memory, pids, cpu, cpuacct, freezer where mounted, each hierarchy once (cpu and
// cpuacct are often co-mounted); memory and pids are required.
Result<std::vector<CgroupDir>> parentDirs(CgroupVersion version, const CgroupConfig& config);

// Every cgroup directory at or below `root`, deepest first (the order rmdir needs).
std::vector<std::filesystem::path> cgroupTree(const std::filesystem::path& root);

// SIGKILLs every process in the cgroups `dirs` and their descendants, freezing first (v1
// through the freezer hierarchy, v2 through cgroup.freeze, or v2's cgroup.kill when allowed),
// and waits until none is left. Returns the number of processes signalled.
Result<int> killTree(CgroupVersion version, const std::vector<CgroupDir>& dirs,
                     bool use_cgroup_kill, std::chrono::milliseconds deadline);

// rmdir of every cgroup at or below each dir, deepest first. A missing dir is fine. Returns
// the number removed.
Result<int> removeTree(CgroupVersion version, const std::vector<CgroupDir>& dirs);

}  // namespace lf::worker::cgroup::internal
