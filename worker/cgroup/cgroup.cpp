#include "worker/cgroup/cgroup.h"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>

#include "worker/cgroup/cgroup_files.h"

namespace lf::worker::cgroup {
namespace {

namespace fs = std::filesystem;
using internal::CgroupDir;
using internal::fileExists;
using internal::prefix;
using internal::readCgroupFile;
using internal::writeCgroupFile;

constexpr int64_t kCpuPeriodUs = 100000;  // the kernel default CFS period
constexpr std::chrono::milliseconds kDestroyDeadline(5000);

Status validate(const std::string& name, const CgroupLimits& limits) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
    return invalidArgument("cgroup name \"" + name + "\" must be one path component");
  }
  if (limits.memory_bytes < 0 || limits.pids_max < 0 || limits.cpu_millis < 0) {
    return invalidArgument("cgroup " + name + ": limits must not be negative");
  }
  // The kernel's smallest CFS quota is 1 ms per 100 ms period.
  if (limits.cpu_millis > 0 && limits.cpu_millis < 10) {
    return invalidArgument("cgroup " + name + ": cpu_millis " + std::to_string(limits.cpu_millis) +
                           " is below the minimum of 10");
  }
  return Status::ok();
}

// The first of `dirs` holding `file`, or an empty path.
fs::path findFile(const std::vector<CgroupDir>& dirs, const std::string& file) {
  for (const CgroupDir& dir : dirs) {
    if (fileExists(dir.path / file)) {
      return dir.path / file;
    }
  }
  return {};
}

// Writes `value` to `file` in the first dir that has it; a missing file means the controller
// is not there, which is an error because a limit was asked for.
Status writeLimit(CgroupVersion version, const std::vector<CgroupDir>& dirs,
                  const std::string& file, const std::string& value) {
  fs::path path = findFile(dirs, file);
  if (path.empty()) {
    return failedPrecondition(prefix(version) + "no " + file + " in " + dirs.front().path.string() +
                              ": controller not available");
  }
  return writeCgroupFile(version, path, value);
}

Status writeLimits(CgroupVersion version, const std::vector<CgroupDir>& dirs,
                   const CgroupLimits& limits) {
  bool v2 = version == CgroupVersion::kV2;
  if (limits.memory_bytes > 0) {
    std::string bytes = std::to_string(limits.memory_bytes);
    LF_RETURN_IF_ERROR(
        writeLimit(version, dirs, v2 ? "memory.max" : "memory.limit_in_bytes", bytes));
    // Without the swap limit a step could page out past its memory limit. Absent when the
    // kernel has no swap accounting; then there is no swap to dodge into through the cgroup.
    fs::path swap = findFile(dirs, v2 ? "memory.swap.max" : "memory.memsw.limit_in_bytes");
    if (!swap.empty()) {
      LF_RETURN_IF_ERROR(writeCgroupFile(version, swap, v2 ? "0" : bytes));
    }
  }
  if (limits.pids_max > 0) {
    LF_RETURN_IF_ERROR(writeLimit(version, dirs, "pids.max", std::to_string(limits.pids_max)));
  }
  if (limits.cpu_millis > 0) {
    int64_t quota_us = limits.cpu_millis * kCpuPeriodUs / 1000;
    if (v2) {
      LF_RETURN_IF_ERROR(writeLimit(version, dirs, "cpu.max",
                                    std::to_string(quota_us) + " " + std::to_string(kCpuPeriodUs)));
    } else {
      LF_RETURN_IF_ERROR(
          writeLimit(version, dirs, "cpu.cfs_period_us", std::to_string(kCpuPeriodUs)));
      LF_RETURN_IF_ERROR(writeLimit(version, dirs, "cpu.cfs_quota_us", std::to_string(quota_us)));
    }
  }
  return Status::ok();
}

bool hasWord(const std::string& words, std::string_view word) {
  size_t pos = 0;
  while ((pos = words.find(word, pos)) != std::string::npos) {
    bool start = pos == 0 || words[pos - 1] == ' ';
    size_t end = pos + word.size();
    if (start && (end == words.size() || words[end] == ' ' || words[end] == '\n')) {
      return true;
    }
    pos = end;
  }
  return false;
}

// v2: creates base/<parent...> and enables memory, pids and cpu in cgroup.subtree_control at
// every level down to the parent, so the step cgroup gets their files. A controller no limit
// needs is skipped quietly when it cannot be enabled (it only feeds events()).
Status prepareV2Parent(const CgroupDir& dir, const CgroupLimits& limits) {
  const CgroupVersion v2 = CgroupVersion::kV2;
  struct Wanted {
    std::string_view name;
    bool needed;
  };
  std::vector<Wanted> wanted = {{"memory", limits.memory_bytes > 0},
                                {"pids", limits.pids_max > 0},
                                {"cpu", limits.cpu_millis > 0}};
  std::vector<fs::path> levels = {dir.base};
  for (const fs::path& part : dir.path.lexically_relative(dir.base)) {
    levels.push_back(levels.back() / part);
  }
  for (size_t i = 0; i < levels.size(); ++i) {
    const fs::path& level = levels[i];
    if (i > 0 && ::mkdir(level.c_str(), 0755) != 0 && errno != EEXIST) {
      return errnoStatus(errno, prefix(v2) + "create " + level.string());
    }
    LF_ASSIGN_OR_RETURN(std::string available, readCgroupFile(v2, level / "cgroup.controllers"));
    std::vector<Wanted> kept;
    for (const Wanted& c : wanted) {
      Status st =
          hasWord(available, c.name)
              ? writeCgroupFile(v2, level / "cgroup.subtree_control", "+" + std::string(c.name))
              : failedPrecondition(prefix(v2) + "controller " + std::string(c.name) +
                                   " is not in " + (level / "cgroup.controllers").string() +
                                   " (bound to a cgroup v1 hierarchy?)");
      if (st.isOk()) {
        kept.push_back(c);
      } else if (c.needed) {
        // EBUSY here is cgroup v2's no-internal-process rule: `level` holds processes.
        return st;
      }
    }
    wanted = kept;
  }
  return Status::ok();
}

}  // namespace

std::string_view cgroupVersionName(CgroupVersion version) {
  return version == CgroupVersion::kV2 ? "v2" : "v1";
}

Result<CgroupVersion> Cgroup::detect(const CgroupConfig& config) {
  struct statfs st {};
  if (::statfs(config.mount_root.c_str(), &st) != 0) {
    return errnoStatus(errno, "cgroup: statfs " + config.mount_root.string());
  }
  if (st.f_type == CGROUP2_SUPER_MAGIC) {
    return CgroupVersion::kV2;
  }
  for (const char* controller : {"memory", "pids"}) {
    fs::path hierarchy = config.mount_root / controller;
    if (::statfs(hierarchy.c_str(), &st) != 0 || st.f_type != CGROUP_SUPER_MAGIC) {
      return failedPrecondition("cgroup: " + config.mount_root.string() +
                                " is neither a cgroup2 mount nor holds cgroup v1 hierarchies (" +
                                hierarchy.string() + " is not one)");
    }
  }
  return CgroupVersion::kV1;
}

Cgroup::Cgroup(CgroupVersion version, CgroupConfig config, std::vector<CgroupDir> dirs)
    : version_(version), config_(std::move(config)), dirs_(std::move(dirs)) {
  for (const CgroupDir& dir : dirs_) {
    paths_.push_back(dir.path);
  }
}

Cgroup::~Cgroup() {
  if (!destroyed_) {
    destroy().ignore();  // best effort by contract; callers that care call destroy() first
  }
}

Result<std::unique_ptr<Cgroup>> Cgroup::create(const CgroupConfig& config, const std::string& name,
                                               const CgroupLimits& limits) {
  LF_RETURN_IF_ERROR(validate(name, limits));
  LF_ASSIGN_OR_RETURN(CgroupVersion version, detect(config));
  LF_ASSIGN_OR_RETURN(std::vector<CgroupDir> parents, internal::parentDirs(version, config));
  std::vector<CgroupDir> dirs;
  auto fail = [&](Status st) -> Status {
    for (const CgroupDir& dir : dirs) {
      ::rmdir(dir.path.c_str());  // best effort: undo what this call created
    }
    return st.withContext("create cgroup " + name);
  };
  for (const CgroupDir& parent : parents) {
    if (version == CgroupVersion::kV2) {
      Status st = prepareV2Parent(parent, limits);
      if (!st.isOk()) {
        return fail(st);
      }
    } else {
      std::error_code ec;
      fs::create_directories(parent.path, ec);
      if (ec) {
        return fail(errnoStatus(ec.value(), prefix(version) + "create " + parent.path.string()));
      }
    }
    CgroupDir dir{parent.controller, parent.path / name, parent.base};
    if (::mkdir(dir.path.c_str(), 0755) != 0) {
      int err = errno;
      return fail(err == EEXIST
                      ? alreadyExists(prefix(version) + dir.path.string() + " exists")
                      : errnoStatus(err, prefix(version) + "create " + dir.path.string()));
    }
    dirs.push_back(dir);
  }
  Status st = writeLimits(version, dirs, limits);
  if (!st.isOk()) {
    return fail(st);
  }
  return std::unique_ptr<Cgroup>(new Cgroup(version, config, std::move(dirs)));
}

Status Cgroup::addProcess(pid_t pid) {
  for (const CgroupDir& dir : dirs_) {
    LF_RETURN_IF_ERROR(writeCgroupFile(version_, dir.path / "cgroup.procs", std::to_string(pid)));
  }
  return Status::ok();
}

Status Cgroup::killAll(std::chrono::milliseconds deadline) {
  Result<int> killed = internal::killTree(version_, dirs_, config_.use_cgroup_kill, deadline);
  return killed.status();
}

Result<std::vector<pid_t>> Cgroup::processes() const {
  LF_ASSIGN_OR_RETURN(std::string text,
                      readCgroupFile(version_, dirs_.front().path / "cgroup.procs"));
  return parsePidList(text);
}

Result<CgroupEvents> Cgroup::events() const {
  bool v2 = version_ == CgroupVersion::kV2;
  // A counter of an absent file (controller not enabled) reads as 0.
  auto value = [&](const std::string& file, std::string_view key) -> Result<int64_t> {
    fs::path path = findFile(dirs_, file);
    if (path.empty()) {
      return int64_t{0};
    }
    LF_ASSIGN_OR_RETURN(std::string text, readCgroupFile(version_, path));
    // A single-number file (empty key) parses as the line "v <number>".
    int64_t parsed = key.empty() ? parseKeyedValue("v " + text, "v") : parseKeyedValue(text, key);
    return std::max<int64_t>(0, parsed);
  };
  CgroupEvents events;
  if (v2) {
    LF_ASSIGN_OR_RETURN(int64_t oom, value("memory.events", "oom_kill"));
    LF_ASSIGN_OR_RETURN(int64_t usage_us, value("cpu.stat", "usage_usec"));
    LF_ASSIGN_OR_RETURN(int64_t peak, value("memory.peak", ""));
    events.oom_killed = oom > 0;
    events.cpu_usage_ns = static_cast<uint64_t>(usage_us) * 1000;
    events.memory_peak_bytes = static_cast<uint64_t>(peak);
  } else {
    LF_ASSIGN_OR_RETURN(int64_t oom, value("memory.oom_control", "oom_kill"));
    LF_ASSIGN_OR_RETURN(int64_t usage_ns, value("cpuacct.usage", ""));
    LF_ASSIGN_OR_RETURN(int64_t peak, value("memory.max_usage_in_bytes", ""));
    events.oom_killed = oom > 0;
    events.cpu_usage_ns = static_cast<uint64_t>(usage_ns);
    events.memory_peak_bytes = static_cast<uint64_t>(peak);
  }
  LF_ASSIGN_OR_RETURN(int64_t pids_max_hits, value("pids.events", "max"));
  events.pids_limit_hit = pids_max_hits > 0;
  return events;
}

Status Cgroup::destroy() {
  if (destroyed_) {
    return Status::ok();
  }
  LF_RETURN_IF_ERROR(killAll(kDestroyDeadline));
  LF_ASSIGN_OR_RETURN(int removed, internal::removeTree(version_, dirs_));
  (void)removed;
  destroyed_ = true;
  return Status::ok();
}

Result<StaleCgroupSummary> removeStaleCgroups(const CgroupConfig& config) {
  LF_ASSIGN_OR_RETURN(CgroupVersion version, Cgroup::detect(config));
  LF_ASSIGN_OR_RETURN(std::vector<CgroupDir> parents, internal::parentDirs(version, config));
  std::vector<CgroupDir> present;
  for (const CgroupDir& dir : parents) {
    if (fileExists(dir.path)) {
      present.push_back(dir);
    }
  }
  StaleCgroupSummary summary;
  if (present.empty()) {
    return summary;
  }
  LF_ASSIGN_OR_RETURN(
      summary.processes_killed,
      internal::killTree(version, present, config.use_cgroup_kill, kDestroyDeadline));
  LF_ASSIGN_OR_RETURN(int removed, internal::removeTree(version, present));
  // The parent directories themselves are not step cgroups.
  summary.cgroups_removed = removed - static_cast<int>(present.size());
  return summary;
}

namespace {

// Moves every process of `from` into `to` (v2). Processes may fork meanwhile, so it repeats
// until `from` is empty, a bounded number of times.
Status moveAllProcesses(const fs::path& from, const fs::path& to) {
  const CgroupVersion v2 = CgroupVersion::kV2;
  for (int round = 0; round < 10; ++round) {
    LF_ASSIGN_OR_RETURN(std::string text, readCgroupFile(v2, from / "cgroup.procs"));
    LF_ASSIGN_OR_RETURN(std::vector<pid_t> pids, parsePidList(text));
    if (pids.empty()) {
      return Status::ok();
    }
    for (pid_t pid : pids) {
      int err = 0;
      Status st = writeCgroupFile(v2, to / "cgroup.procs", std::to_string(pid), &err);
      if (!st.isOk() && err != ESRCH) {  // ESRCH: it exited meanwhile
        return st;
      }
    }
  }
  return failedPrecondition(prefix(v2) + "processes keep appearing in " +
                            (from / "cgroup.procs").string() + " while moving them to " +
                            to.string());
}

}  // namespace

Result<CgroupConfig> prepareWorkerCgroups(const CgroupConfig& config, const std::string& leaf) {
  if (leaf.empty() || leaf == "." || leaf == ".." || leaf.find('/') != std::string::npos) {
    return invalidArgument("cgroup leaf \"" + leaf + "\" must be one path component");
  }
  LF_ASSIGN_OR_RETURN(CgroupVersion version, Cgroup::detect(config));
  if (version == CgroupVersion::kV1 || !config.nest_under_self) {
    return config;
  }
  const CgroupVersion v2 = CgroupVersion::kV2;
  LF_ASSIGN_OR_RETURN(std::string self, readCgroupFile(v2, "/proc/self/cgroup"));
  LF_ASSIGN_OR_RETURN(std::string own_path, parseProcCgroup(self, ""));
  fs::path own = fs::path(own_path).relative_path();
  if (own.filename() == leaf) {
    own = own.parent_path();
  }
  fs::path own_dir = config.mount_root / own;
  // cgroup.type exists on every cgroup but the true root (a cgroup namespace's root has it).
  if (fileExists(own_dir / "cgroup.type")) {
    fs::path leaf_dir = own_dir / leaf;
    if (::mkdir(leaf_dir.c_str(), 0755) != 0 && errno != EEXIST) {
      return errnoStatus(errno, prefix(v2) + "create " + leaf_dir.string());
    }
    LF_RETURN_IF_ERROR(moveAllProcesses(own_dir, leaf_dir));
  }
  CgroupConfig pinned = config;
  pinned.nest_under_self = false;
  pinned.parent = (own / config.parent).string();
  return pinned;
}

}  // namespace lf::worker::cgroup
