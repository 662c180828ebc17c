#pragma once

// Worker start-up clean-up of what a crashed worker left behind: mounts below the state root
// (overlay roots, bind mounts, /proc and /dev of sandboxes), per-step scratch directories under
// <state_root>/steps/, and step cgroups (with the processes still running in them).
//
// Runs before the worker accepts work, on the worker's own thread; nothing else may use the
// state root or the cgroup parent meanwhile. Best effort across items: one item that cannot be
// cleaned does not stop the others, and the first error is returned after all were tried.
// A step directory that still has a mount below it is never removed (removal does not stop at
// mount points and would delete the mounted files).

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "worker/cgroup/cgroup.h"

namespace lf::worker {

// One line of /proc/<pid>/mountinfo (proc(5)); paths with their octal escapes decoded.
struct MountInfoEntry {
  int mount_id = 0;
  int parent_id = 0;
  std::string root;         // the mount's root inside its filesystem
  std::string mount_point;  // absolute, in the reader's mount namespace
  std::string fs_type;
  std::string source;
};

// Parses mountinfo content. A malformed line is an error naming its line number.
Result<std::vector<MountInfoEntry>> parseMountInfo(std::string_view content);

// Decodes the \ooo escapes the kernel writes for space, tab, newline and backslash.
std::string decodeMountInfoPath(std::string_view text);

// Mount points strictly below `root` (component-wise: /a/b is not below /a/bc), deepest first,
// a mount point listed once per time it is mounted (stacked mounts).
std::vector<std::string> mountPointsBelow(const std::vector<MountInfoEntry>& mounts,
                                          const std::filesystem::path& root);

struct RecoverySummary {
  int mounts_unmounted = 0;
  int step_dirs_removed = 0;
  int cgroups_removed = 0;
  int processes_killed = 0;
};

// In this order: (1) removeStaleCgroups(cgroups), so no process of a crashed step still holds a
// mount or writes into a directory; (2) detaches (umount2 MNT_DETACH) every mount strictly
// below state_root, deepest first; state_root itself is left alone because it is often a
// volume (Kubernetes emptyDir, a dedicated disk); (3) removes every entry of state_root/steps/
// without following symlinks, only once nothing is mounted below it. A missing state_root,
// steps dir or cgroup parent is not an error. state_root is resolved (symlinks) before it is
// compared with /proc/self/mountinfo, which shows real paths.
Result<RecoverySummary> recoverAfterCrash(const std::filesystem::path& state_root,
                                          const cgroup::CgroupConfig& cgroups);

}  // namespace lf::worker
