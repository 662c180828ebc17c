#include "worker/recovery/recovery.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <sstream>

#include "common/layer/secure_fs.h"
#include "common/layer/unique_fd.h"

namespace lf::worker {
namespace {

namespace fs = std::filesystem;

// Mount points can pile up (a crashed step's rootfs with /proc, /dev, binds below it, stacked
// mounts); each pass detaches what it sees, so a few passes always suffice in practice.
constexpr int kMaxUnmountPasses = 8;

std::vector<std::string_view> splitSpaces(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (pos < line.size()) {
    size_t end = line.find(' ', pos);
    if (end == std::string_view::npos) {
      end = line.size();
    }
    if (end > pos) {
      fields.push_back(line.substr(pos, end - pos));
    }
    pos = end + 1;
  }
  return fields;
}

bool parseInt(std::string_view text, int& out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

bool isBelow(const fs::path& path, const fs::path& root) {
  auto [root_end, path_it] = std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  // Strictly below: all of root matched, and path has at least one more non-empty component
  // (a trailing slash on root shows up as an empty last component).
  if (root_end != root.end() && !(root_end->empty() && std::next(root_end) == root.end())) {
    return false;
  }
  for (; path_it != path.end(); ++path_it) {
    if (!path_it->empty()) {
      return true;
    }
  }
  return false;
}

Result<std::vector<MountInfoEntry>> readMountInfo() {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) {
    return errnoStatus(errno, "recovery: read /proc/self/mountinfo");
  }
  std::stringstream text;
  text << in.rdbuf();
  Result<std::vector<MountInfoEntry>> parsed = parseMountInfo(text.str());
  if (!parsed.isOk()) {
    return parsed.status().withContext("recovery: /proc/self/mountinfo");
  }
  return parsed;
}

// Detaches every mount strictly below `root`, deepest first, until none is left.
Status unmountBelow(const fs::path& root, RecoverySummary& summary) {
  for (int pass = 0; pass < kMaxUnmountPasses; ++pass) {
    LF_ASSIGN_OR_RETURN(std::vector<MountInfoEntry> mounts, readMountInfo());
    std::vector<std::string> below = mountPointsBelow(mounts, root);
    if (below.empty()) {
      return Status::ok();
    }
    for (const std::string& point : below) {
      // MNT_DETACH: a busy mount (an open file of a dead step) still leaves the namespace now.
      if (::umount2(point.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) {
        ++summary.mounts_unmounted;
      } else if (errno != EINVAL && errno != ENOENT) {
        // EINVAL: no longer a mount point (its parent was detached with it).
        return errnoStatus(errno, "recovery: unmount " + point);
      }
    }
  }
  return internalError("recovery: mounts below " + root.string() + " remain after " +
                       std::to_string(kMaxUnmountPasses) + " passes");
}

// Removes every entry of state_root/steps without following symlinks. Refuses if anything is
// still mounted below it, because removal would descend into the mounted filesystem.
Status removeStepDirs(const fs::path& state_root, RecoverySummary& summary) {
  fs::path steps = state_root / "steps";
  LF_ASSIGN_OR_RETURN(std::vector<MountInfoEntry> mounts, readMountInfo());
  if (!mountPointsBelow(mounts, steps).empty()) {
    return failedPrecondition("recovery: not removing " + steps.string() +
                              ": something is still mounted below it");
  }
  layer::UniqueFd dir(::open(steps.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) {
    if (errno == ENOENT) {
      return Status::ok();
    }
    return errnoStatus(errno, "recovery: open " + steps.string());
  }
  LF_ASSIGN_OR_RETURN(std::vector<std::string> names,
                      layer::listDirectory(dir.get(), steps.string()));
  Status first;
  for (const std::string& name : names) {
    Status st = layer::removeAllAt(dir.get(), name);
    if (st.isOk()) {
      ++summary.step_dirs_removed;
    } else if (first.isOk()) {
      first = st.withContext("recovery: remove " + (steps / name).string());
    }
  }
  return first;
}

}  // namespace

std::string decodeMountInfoPath(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 3 < text.size()) {
      std::string_view digits = text.substr(i + 1, 3);
      if (std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '7'; })) {
        out.push_back(
            static_cast<char>((digits[0] - '0') * 64 + (digits[1] - '0') * 8 + (digits[2] - '0')));
        i += 3;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

Result<std::vector<MountInfoEntry>> parseMountInfo(std::string_view content) {
  std::vector<MountInfoEntry> entries;
  int line_number = 0;
  while (!content.empty()) {
    size_t end = content.find('\n');
    std::string_view line = content.substr(0, end);
    content = end == std::string_view::npos ? std::string_view() : content.substr(end + 1);
    ++line_number;
    if (line.empty()) {
      continue;
    }
    // id parent major:minor root mount-point options [optional fields...] - fstype source super
    std::vector<std::string_view> fields = splitSpaces(line);
    auto dash = std::find(fields.begin(), fields.end(), "-");
    MountInfoEntry entry;
    if (fields.size() < 6 || dash == fields.end() || dash - fields.begin() < 6 ||
        fields.end() - dash < 3 || !parseInt(fields[0], entry.mount_id) ||
        !parseInt(fields[1], entry.parent_id) || fields[4].empty() || fields[4][0] != '/') {
      return invalidArgument("mountinfo line " + std::to_string(line_number) + ": malformed: \"" +
                             std::string(line) + "\"");
    }
    entry.root = decodeMountInfoPath(fields[3]);
    entry.mount_point = decodeMountInfoPath(fields[4]);
    entry.fs_type = std::string(dash[1]);
    entry.source = decodeMountInfoPath(dash[2]);
    entries.push_back(std::move(entry));
  }
  return entries;
}

std::vector<std::string> mountPointsBelow(const std::vector<MountInfoEntry>& mounts,
                                          const fs::path& root) {
  std::vector<std::string> out;
  fs::path normal = root.lexically_normal();
  for (const MountInfoEntry& entry : mounts) {
    if (isBelow(fs::path(entry.mount_point).lexically_normal(), normal)) {
      out.push_back(entry.mount_point);
    }
  }
  // Deepest first; a stable sort keeps stacked mounts of one point in mount order, and each
  // detach of the point removes the topmost.
  std::stable_sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    auto depth = [](const std::string& p) { return std::count(p.begin(), p.end(), '/'); };
    return depth(a) > depth(b);
  });
  return out;
}

Result<RecoverySummary> recoverAfterCrash(const fs::path& state_root,
                                          const cgroup::CgroupConfig& cgroups) {
  RecoverySummary summary;
  Status first;
  auto keep = [&first](Status st) {
    if (first.isOk() && !st.isOk()) {
      first = std::move(st);
    }
  };
  std::error_code ec;
  // mountinfo shows real paths; a state_root reached through a symlink must match them.
  fs::path root = fs::weakly_canonical(state_root, ec);
  if (ec) {
    return errnoStatus(ec.value(), "recovery: resolve " + state_root.string());
  }
  // Processes first: a step still running could keep a mount busy or write into the
  // directories being removed.
  Result<cgroup::StaleCgroupSummary> stale = cgroup::removeStaleCgroups(cgroups);
  if (stale.isOk()) {
    summary.cgroups_removed = stale->cgroups_removed;
    summary.processes_killed = stale->processes_killed;
  } else {
    keep(stale.status().withContext("recovery"));
  }
  Status unmounted = unmountBelow(root, summary);
  keep(unmounted);
  // Removing step dirs with mounts still below would delete files through the mounts.
  if (unmounted.isOk()) {
    keep(removeStepDirs(root, summary));
  }
  if (!first.isOk()) {
    return first;
  }
  return summary;
}

}  // namespace lf::worker
