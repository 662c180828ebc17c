#include "worker/sandbox/rootfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <set>

#include "common/layer/unique_fd.h"
#include "worker/sandbox/etc_files.h"

namespace lf::worker::sandbox {
namespace {

using layer::UniqueFd;

constexpr const char* kDefaultHostname = "layerfarm";

Status sysError(std::string_view what, const std::string& path) {
  return errnoStatus(errno, "sandbox: " + std::string(what) + " " + path);
}

// Normalises an absolute sandbox path to a relative one without "." and ".." components.
Result<std::string> relativeTarget(const std::string& path, std::string_view what) {
  if (path.empty() || path.front() != '/') {
    return invalidArgument(std::string(what) + " \"" + path + "\" is not an absolute path");
  }
  std::string rel;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string::npos) {
      end = path.size();
    }
    std::string_view part(path.data() + pos, end - pos);
    pos = end + 1;
    if (part.empty() || part == ".") {
      continue;
    }
    if (part == "..") {
      return invalidArgument(std::string(what) + " \"" + path + "\" has a \"..\" component");
    }
    if (!rel.empty()) {
      rel += '/';
    }
    rel.append(part);
  }
  return rel;
}

Result<std::string> readSmallFile(const char* path) {
  UniqueFd fd(open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return errnoStatus(errno, std::string("sandbox: open ") + path);
  }
  std::string out;
  char buf[4096];
  while (out.size() < (1 << 20)) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return errnoStatus(errno, std::string("sandbox: read ") + path);
    }
    if (n == 0) {
      break;
    }
    out.append(buf, n);
  }
  return out;
}

// Adds `rel` and its parents to the skeleton, taking each directory's metadata from the top-most
// layer that has it (a non-directory there, such as a whiteout, means "not in the image").
void addSkeletonDir(const std::string& rel, const std::vector<std::string>& image_top_first,
                    std::set<std::string>* seen, std::vector<SkeletonDir>* dirs) {
  for (size_t end = 0; end != std::string::npos;) {
    end = rel.find('/', end + 1);
    std::string prefix = rel.substr(0, end);
    if (!seen->insert(prefix).second) {
      continue;
    }
    SkeletonDir dir;
    dir.rel = prefix;
    clock_gettime(CLOCK_REALTIME, &dir.mtime);
    for (const std::string& layer : image_top_first) {
      struct stat st;
      if (lstat((layer + "/" + prefix).c_str(), &st) != 0) {
        continue;
      }
      if (S_ISDIR(st.st_mode)) {
        dir.mode = st.st_mode & 07777;
        dir.uid = st.st_uid;
        dir.gid = st.st_gid;
        dir.mtime = st.st_mtim;
      }
      break;
    }
    dirs->push_back(std::move(dir));
  }
}

Status checkEmptyDir(const std::string& path, std::string_view what) {
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) {
    return sysError(std::string("open ") + std::string(what), path);
  }
  bool empty = true;
  while (dirent* entry = readdir(dir)) {
    if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) {
      empty = false;
      break;
    }
  }
  closedir(dir);
  if (!empty) {
    return failedPrecondition("sandbox: " + std::string(what) + " " + path + " is not empty");
  }
  return Status::ok();
}

// "a/b" is the same as or below "a"; both relative and normalised.
bool isSameOrBelow(const std::string& path, std::string_view dir) {
  return path.compare(0, dir.size(), dir) == 0 &&
         (path.size() == dir.size() || path[dir.size()] == '/');
}

Status checkAbsolute(const std::filesystem::path& path, std::string_view what) {
  if (!path.is_absolute()) {
    return invalidArgument(std::string(what) + " \"" + path.string() +
                           "\" is not an absolute path");
  }
  return Status::ok();
}

// The tree a bind mount is taken from: a host dir, or an overlay of layer dirs.
Status prepareBindSource(const MountSpec& spec, PreparedMount* m) {
  if (spec.source_path.find('\0') != std::string::npos) {
    return invalidArgument("bind mount source path contains a NUL byte");
  }
  m->source_path = spec.source_path;
  m->target_is_file = spec.target_is_file;
  m->nosuid_nodev = spec.nosuid_nodev;
  if (spec.overlay_lowers.empty()) {
    LF_RETURN_IF_ERROR(checkAbsolute(spec.source, "bind mount source"));
    m->source = spec.source.string();
    return Status::ok();
  }
  if (spec.overlay_upper.empty() != spec.overlay_work.empty()) {
    return invalidArgument("bind mount overlay: upper and work dirs go together");
  }
  if (spec.overlay_upper.empty() && spec.overlay_lowers.size() < 2) {
    return invalidArgument("bind mount overlay: a read-only overlay needs two lower dirs");
  }
  for (auto it = spec.overlay_lowers.rbegin(); it != spec.overlay_lowers.rend(); ++it) {
    LF_RETURN_IF_ERROR(checkAbsolute(*it, "bind mount lower dir"));
    m->overlay_lowers_top_first.push_back(it->string());
  }
  if (!spec.overlay_upper.empty()) {
    LF_RETURN_IF_ERROR(checkAbsolute(spec.overlay_upper, "bind mount upper dir"));
    LF_RETURN_IF_ERROR(checkAbsolute(spec.overlay_work, "bind mount work dir"));
    m->overlay_upper = spec.overlay_upper.string();
    m->overlay_work = spec.overlay_work.string();
  }
  return Status::ok();
}

Result<std::vector<PreparedMount>> prepareMounts(const std::vector<MountSpec>& specs) {
  std::vector<PreparedMount> out;
  for (const MountSpec& spec : specs) {
    PreparedMount m;
    m.type = spec.type;
    m.readonly = spec.readonly;
    LF_ASSIGN_OR_RETURN(m.target_rel, relativeTarget(spec.target, "mount target"));
    const std::string& rel = m.target_rel;
    if (rel.empty()) {
      return invalidArgument("mount target \"" + spec.target + "\" is the root");
    }
    for (const char* reserved :
         {"proc", "sys", "dev", "etc/hosts", "etc/resolv.conf", "etc/hostname"}) {
      if (isSameOrBelow(rel, reserved)) {
        return invalidArgument("mount target \"" + spec.target + "\" is reserved by the sandbox");
      }
    }
    // A target inside another mount would have to be created in that mount (a host directory
    // for cache mounts): not supported.
    for (const PreparedMount& other : out) {
      if (isSameOrBelow(rel, other.target_rel) || isSameOrBelow(other.target_rel, rel)) {
        return invalidArgument("mount targets \"" + spec.target + "\" and \"/" + other.target_rel +
                               "\" overlap");
      }
    }
    if (spec.type == MountSpec::kBind) {
      LF_RETURN_IF_ERROR(prepareBindSource(spec, &m));
    } else {
      m.data = "mode=1777";
      if (spec.size_bytes > 0) {
        m.data += ",size=" + std::to_string(spec.size_bytes);
      }
    }
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<std::string> splitFields(const std::string& line, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= line.size()) {
    size_t end = line.find(sep, start);
    if (end == std::string::npos) {
      end = line.size();
    }
    out.push_back(line.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

CgroupLayout readCgroupLayout() {
  CgroupLayout layout;
  Result<std::string> mountinfo = readSmallFile("/proc/self/mountinfo");
  if (!mountinfo.isOk()) {
    return layout;
  }
  const std::string base = "/sys/fs/cgroup";
  for (const std::string& line : splitFields(*mountinfo, '\n')) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    std::vector<std::string> fields = splitFields(line, ' ');
    size_t dash = 0;
    while (dash < fields.size() && fields[dash] != "-") {
      ++dash;
    }
    if (fields.size() < 5 || dash + 3 >= fields.size()) {
      continue;
    }
    const std::string& point = fields[4];
    const std::string& fstype = fields[dash + 1];
    if (fstype != "cgroup" && fstype != "cgroup2") {
      continue;
    }
    if (point == base && fstype == "cgroup2") {
      layout.unified = true;
      layout.mounts.clear();
      return layout;
    }
    if (point.rfind(base + "/", 0) != 0 || point.find('/', base.size() + 1) != std::string::npos) {
      continue;
    }
    std::string options;
    for (const std::string& option : splitFields(fields[dash + 3], ',')) {
      if (option != "rw" && option != "ro" && fstype == "cgroup") {
        options += (options.empty() ? "" : ",") + option;
      }
    }
    layout.mounts.push_back({point.substr(base.size() + 1), fstype, options});
  }
  if (DIR* dir = opendir(base.c_str())) {
    while (dirent* entry = readdir(dir)) {
      char target[256];
      std::string path = base + "/" + entry->d_name;
      ssize_t n = entry->d_type == DT_LNK ? readlink(path.c_str(), target, sizeof target) : -1;
      if (n > 0 && n < static_cast<ssize_t>(sizeof target)) {
        layout.symlinks.emplace_back(entry->d_name, std::string(target, n));
      }
    }
    closedir(dir);
  }
  return layout;
}

}  // namespace

const CgroupLayout& hostCgroupLayout() {
  static const CgroupLayout layout = readCgroupLayout();
  return layout;
}

Result<RootPlan> prepareRootPlan(const OverlayRoot& root, const ProcessSpec& proc) {
  RootPlan plan;
  for (const auto* p : {&root.upper_dir, &root.work_dir}) {
    if (!p->is_absolute()) {
      return invalidArgument("sandbox: overlay dir \"" + p->string() + "\" is not absolute");
    }
  }
  plan.upper = root.upper_dir.string();
  plan.work = root.work_dir.string();
  LF_RETURN_IF_ERROR(checkEmptyDir(plan.upper, "upper dir"));
  plan.scratch = plan.work + "/sandbox";
  if (mkdir(plan.scratch.c_str(), 0700) != 0 && errno != EEXIST) {
    return sysError("mkdir", plan.scratch);
  }
  plan.skel = plan.scratch + "/skel";
  plan.files = plan.scratch + "/files";
  plan.root = plan.scratch + "/root";

  std::vector<std::string> image_top_first;
  for (auto it = root.lower_dirs.rbegin(); it != root.lower_dirs.rend(); ++it) {
    if (!it->is_absolute()) {
      return invalidArgument("sandbox: lower dir \"" + it->string() + "\" is not absolute");
    }
    image_top_first.push_back(it->string());
  }
  plan.lowers_top_first.push_back(plan.skel);
  plan.lowers_top_first.insert(plan.lowers_top_first.end(), image_top_first.begin(),
                               image_top_first.end());

  LF_ASSIGN_OR_RETURN(plan.mounts, prepareMounts(proc.mounts));
  std::set<std::string> seen;
  for (const char* dir : {"proc", "sys", "dev", "etc"}) {
    addSkeletonDir(dir, image_top_first, &seen, &plan.skeleton_dirs);
  }
  for (size_t i = 0; i < plan.mounts.size(); ++i) {
    PreparedMount& m = plan.mounts[i];
    if (!m.overlay_lowers_top_first.empty()) {
      m.overlay_point = plan.scratch + "/bind" + std::to_string(i);
    }
    if (!m.target_is_file) {
      addSkeletonDir(m.target_rel, image_top_first, &seen, &plan.skeleton_dirs);
      continue;
    }
    // A file mount point: its parents are skeleton dirs, the point an empty skeleton file.
    size_t slash = m.target_rel.rfind('/');
    if (slash != std::string::npos) {
      addSkeletonDir(m.target_rel.substr(0, slash), image_top_first, &seen, &plan.skeleton_dirs);
    }
    plan.skeleton_files.push_back(m.target_rel);
  }

  plan.hostname = proc.hostname.empty() ? kDefaultHostname : proc.hostname;
  bool valid_hostname = plan.hostname.size() <= 64;
  for (char c : plan.hostname) {
    valid_hostname = valid_hostname &&
                     (isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_');
  }
  if (!valid_hostname) {
    return invalidArgument("sandbox: invalid hostname \"" + plan.hostname +
                           "\" (at most 64 letters, digits, '-', '.', '_')");
  }
  LF_ASSIGN_OR_RETURN(plan.hosts, makeHostsFile(plan.hostname, proc.extra_hosts));
  plan.network = proc.network;
  plan.cgroups = &hostCgroupLayout();
  if (!proc.resolv_conf.empty()) {
    plan.resolv_conf = proc.resolv_conf;
  } else {
    Result<std::string> host = readSmallFile("/etc/resolv.conf");
    // A host without resolv.conf gets Docker's fallback resolvers.
    plan.resolv_conf = makeResolvConf(host.isOk() ? *host : "", plan.network == NetworkMode::kHost);
  }
  return plan;
}

}  // namespace lf::worker::sandbox
