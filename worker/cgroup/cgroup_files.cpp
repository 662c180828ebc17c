#include "worker/cgroup/cgroup_files.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <set>
#include <thread>

namespace lf::worker::cgroup {

int64_t parseKeyedValue(std::string_view content, std::string_view key) {
  while (!content.empty()) {
    size_t end = content.find('\n');
    std::string_view line = content.substr(0, end);
    content = end == std::string_view::npos ? std::string_view() : content.substr(end + 1);
    size_t space = line.find(' ');
    if (space == std::string_view::npos || line.substr(0, space) != key) {
      continue;
    }
    std::string_view value = line.substr(space + 1);
    int64_t parsed = -1;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), parsed);
    if (ec != std::errc() || ptr != value.data() + value.size() || parsed < 0) {
      return -1;
    }
    return parsed;
  }
  return -1;
}

Result<std::string> parseProcCgroup(std::string_view content, std::string_view controller) {
  while (!content.empty()) {
    size_t end = content.find('\n');
    std::string_view line = content.substr(0, end);
    content = end == std::string_view::npos ? std::string_view() : content.substr(end + 1);
    // "hierarchy-id:controller,controller:/path"; the path may itself contain ':'.
    size_t first = line.find(':');
    size_t second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) {
      continue;
    }
    std::string_view id = line.substr(0, first);
    std::string_view controllers = line.substr(first + 1, second - first - 1);
    std::string path(line.substr(second + 1));
    if (controller.empty()) {
      if (id == "0" && controllers.empty()) {
        return path;
      }
      continue;
    }
    while (!controllers.empty()) {
      size_t comma = controllers.find(',');
      if (controllers.substr(0, comma) == controller) {
        return path;
      }
      controllers =
          comma == std::string_view::npos ? std::string_view() : controllers.substr(comma + 1);
    }
  }
  return notFound(controller.empty()
                      ? std::string("no cgroup v2 entry (0::) in /proc/self/cgroup")
                      : "no cgroup v1 " + std::string(controller) + " entry in /proc/self/cgroup");
}

Result<std::vector<pid_t>> parsePidList(std::string_view content) {
  std::vector<pid_t> pids;
  while (!content.empty()) {
    size_t end = content.find('\n');
    std::string_view line = content.substr(0, end);
    content = end == std::string_view::npos ? std::string_view() : content.substr(end + 1);
    if (line.empty()) {
      continue;
    }
    pid_t pid = 0;
    auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), pid);
    if (ec != std::errc() || ptr != line.data() + line.size() || pid <= 0) {
      return invalidArgument("bad pid \"" + std::string(line) + "\" in cgroup.procs");
    }
    pids.push_back(pid);
  }
  return pids;
}

namespace internal {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Controllers used on v1, in the order paths are kept; memory and pids are required.
constexpr std::string_view kV1Controllers[] = {"memory", "pids", "cpu", "cpuacct", "freezer"};

// Polls `done` with growing pauses until it holds or `until` passes. Polling because cgroup v1
// has no per-cgroup "empty" notification (release_agent is host-wide), and v2's
// cgroup.events notification would need an fd per cgroup for the same result.
template <typename Pred>
bool waitFor(Pred done, Clock::time_point until) {
  auto pause = std::chrono::microseconds(200);
  while (true) {
    if (done()) {
      return true;
    }
    if (Clock::now() >= until) {
      return false;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(10000));
  }
}

// Processes in every cgroup at or below each dir. A cgroup removed meanwhile counts as empty.
Result<std::set<pid_t>> treeProcesses(CgroupVersion version, const std::vector<CgroupDir>& dirs) {
  std::set<pid_t> pids;
  for (const CgroupDir& dir : dirs) {
    for (const fs::path& cg : cgroupTree(dir.path)) {
      Result<std::string> text = readCgroupFile(version, cg / "cgroup.procs");
      if (!text.isOk()) {
        if (text.status().code() == StatusCode::kNotFound) {
          continue;
        }
        return text.status();
      }
      LF_ASSIGN_OR_RETURN(std::vector<pid_t> list, parsePidList(*text));
      pids.insert(list.begin(), list.end());
    }
  }
  return pids;
}

const CgroupDir* findController(const std::vector<CgroupDir>& dirs, std::string_view controller) {
  for (const CgroupDir& dir : dirs) {
    if (dir.controller == controller) {
      return &dir;
    }
  }
  return nullptr;
}

// Freezes (or thaws) the tree so that no process can fork while the others are being killed.
// A freeze that does not complete in time (a task stuck in the kernel) is not an error: the
// kill goes ahead and the caller's loop tries again.
Status setFrozen(CgroupVersion version, const std::vector<CgroupDir>& dirs, bool frozen,
                 Clock::time_point until) {
  if (version == CgroupVersion::kV2) {
    const fs::path& dir = dirs.front().path;
    if (!fileExists(dir / "cgroup.freeze")) {
      return Status::ok();
    }
    LF_RETURN_IF_ERROR(writeCgroupFile(version, dir / "cgroup.freeze", frozen ? "1" : "0"));
    if (frozen) {
      waitFor(
          [&] {
            Result<std::string> events = readCgroupFile(version, dir / "cgroup.events");
            return !events.isOk() || parseKeyedValue(*events, "frozen") == 1;
          },
          until);
    }
    return Status::ok();
  }
  const CgroupDir* freezer = findController(dirs, "freezer");
  if (freezer == nullptr || !fileExists(freezer->path / "freezer.state")) {
    return Status::ok();
  }
  fs::path state = freezer->path / "freezer.state";
  LF_RETURN_IF_ERROR(writeCgroupFile(version, state, frozen ? "FROZEN" : "THAWED"));
  if (frozen) {
    waitFor(
        [&] {
          Result<std::string> text = readCgroupFile(version, state);
          return !text.isOk() || text->rfind("FROZEN", 0) == 0;
        },
        until);
  }
  return Status::ok();
}

// One round of freeze, SIGKILL every member, thaw. Adds the pids signalled to `killed`.
Status killRound(CgroupVersion version, const std::vector<CgroupDir>& dirs, bool use_cgroup_kill,
                 Clock::time_point until, std::set<pid_t>& killed) {
  if (version == CgroupVersion::kV2 && use_cgroup_kill &&
      fileExists(dirs.front().path / "cgroup.kill")) {
    // The kernel kills the whole subtree atomically; reading the members first is only for
    // the count.
    LF_ASSIGN_OR_RETURN(std::set<pid_t> pids, treeProcesses(version, dirs));
    killed.insert(pids.begin(), pids.end());
    return writeCgroupFile(version, dirs.front().path / "cgroup.kill", "1");
  }
  // Frozen, the members cannot exit, so a pid read here is not reused by an unrelated process
  // before the kill reaches it.
  auto freeze_until = std::min(until, Clock::now() + std::chrono::milliseconds(500));
  LF_RETURN_IF_ERROR(setFrozen(version, dirs, true, freeze_until));
  Result<std::set<pid_t>> pids = treeProcesses(version, dirs);
  if (pids.isOk()) {
    for (pid_t pid : *pids) {
      if (::kill(pid, SIGKILL) == 0 || errno != ESRCH) {
        killed.insert(pid);
      }
    }
  }
  // Thawing lets the SIGKILLs be delivered (v1 frozen tasks sleep in the refrigerator).
  LF_RETURN_IF_ERROR(setFrozen(version, dirs, false, until));
  return pids.status();
}

}  // namespace

std::string prefix(CgroupVersion version) {
  return "cgroup " + std::string(cgroupVersionName(version)) + ": ";
}

Result<std::string> readCgroupFile(CgroupVersion version, const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return errnoStatus(errno, prefix(version) + "read " + path.string());
  }
  std::string content;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return errnoStatus(err, prefix(version) + "read " + path.string());
    }
    if (n == 0) {
      break;
    }
    content.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return content;
}

Status writeCgroupFile(CgroupVersion version, const fs::path& path, const std::string& content,
                       int* err) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : ::write(fd, content.data(), content.size());
  int saved = errno;
  if (fd >= 0) {
    ::close(fd);
  }
  if (err != nullptr) {
    *err = n < 0 ? saved : 0;
  }
  if (n < 0) {
    return errnoStatus(saved, prefix(version) + "write " + path.string());
  }
  if (static_cast<size_t>(n) != content.size()) {
    return internalError(prefix(version) + "write " + path.string() + ": short write");
  }
  return Status::ok();
}

bool fileExists(const fs::path& path) { return ::access(path.c_str(), F_OK) == 0; }

Result<std::vector<CgroupDir>> parentDirs(CgroupVersion version, const CgroupConfig& config) {
  fs::path parent(config.parent);
  bool bad = config.parent.empty() || parent.is_absolute();
  for (const fs::path& part : parent) {
    bad = bad || part == ".." || part == ".";
  }
  if (bad) {
    return invalidArgument(prefix(version) + "parent \"" + config.parent +
                           "\" must be a relative path without \".\" or \"..\"");
  }
  std::string self;
  if (config.nest_under_self) {
    LF_ASSIGN_OR_RETURN(self, readCgroupFile(version, "/proc/self/cgroup"));
  }
  auto baseOf = [&](std::string_view controller) -> Result<fs::path> {
    if (!config.nest_under_self) {
      return fs::path();
    }
    LF_ASSIGN_OR_RETURN(std::string path, parseProcCgroup(self, controller));
    return fs::path(path).relative_path();
  };
  std::vector<CgroupDir> dirs;
  if (version == CgroupVersion::kV2) {
    LF_ASSIGN_OR_RETURN(fs::path base, baseOf(""));
    fs::path base_dir = (config.mount_root / base).lexically_normal();
    dirs.push_back({"", base_dir / parent, base_dir});
    return dirs;
  }
  std::set<fs::path> seen;
  for (std::string_view controller : kV1Controllers) {
    fs::path hierarchy = config.mount_root / controller;
    struct statfs st {};
    bool required = controller == "memory" || controller == "pids";
    if (::statfs(hierarchy.c_str(), &st) != 0 || st.f_type != CGROUP_SUPER_MAGIC) {
      if (required) {
        return failedPrecondition(prefix(version) + hierarchy.string() +
                                  " is not a cgroup v1 hierarchy");
      }
      continue;
    }
    std::error_code ec;
    fs::path canonical = fs::canonical(hierarchy, ec);
    if (!seen.insert(ec ? hierarchy : canonical).second) {
      continue;  // co-mounted with a controller already listed (cpu,cpuacct)
    }
    LF_ASSIGN_OR_RETURN(fs::path base, baseOf(controller));
    fs::path base_dir = (hierarchy / base).lexically_normal();
    dirs.push_back({std::string(controller), base_dir / parent, base_dir});
  }
  return dirs;
}

std::vector<fs::path> cgroupTree(const fs::path& root) {
  std::vector<fs::path> out;
  std::error_code ec;
  fs::directory_iterator it(root, ec);
  if (ec) {
    if (fileExists(root)) {
      out.push_back(root);
    }
    return out;
  }
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) {
      break;
    }
    // Directories in a cgroup filesystem are cgroups; there are no symlinks.
    if (it->is_directory(ec) && !it->is_symlink(ec)) {
      std::vector<fs::path> sub = cgroupTree(it->path());
      out.insert(out.end(), sub.begin(), sub.end());
    }
  }
  out.push_back(root);
  return out;
}

Result<int> killTree(CgroupVersion version, const std::vector<CgroupDir>& dirs,
                     bool use_cgroup_kill, std::chrono::milliseconds deadline) {
  auto until = Clock::now() + deadline;
  std::set<pid_t> killed;
  while (true) {
    LF_ASSIGN_OR_RETURN(std::set<pid_t> left, treeProcesses(version, dirs));
    if (left.empty()) {
      return static_cast<int>(killed.size());
    }
    if (Clock::now() >= until) {
      return deadlineExceeded(prefix(version) + std::to_string(left.size()) +
                              " processes still in " + dirs.front().path.string() + " after " +
                              std::to_string(deadline.count()) + " ms (first pid " +
                              std::to_string(*left.begin()) + ")");
    }
    LF_RETURN_IF_ERROR(killRound(version, dirs, use_cgroup_kill, until, killed));
    // Give the kills a short while to take effect before the next round.
    auto round_until = std::min(until, Clock::now() + std::chrono::milliseconds(200));
    waitFor(
        [&] {
          Result<std::set<pid_t>> now = treeProcesses(version, dirs);
          return !now.isOk() || now->empty();
        },
        round_until);
  }
}

Result<int> removeTree(CgroupVersion version, const std::vector<CgroupDir>& dirs) {
  int removed = 0;
  Status first;
  for (const CgroupDir& dir : dirs) {
    for (const fs::path& cg : cgroupTree(dir.path)) {
      if (::rmdir(cg.c_str()) == 0) {
        ++removed;
      } else if (errno != ENOENT && first.isOk()) {
        first = errnoStatus(errno, prefix(version) + "remove " + cg.string());
      }
    }
  }
  if (!first.isOk()) {
    return first;
  }
  return removed;
}

}  // namespace internal
}  // namespace lf::worker::cgroup
