// The mount work done inside the sandbox's namespaces (see rootfs.h).

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/layer/secure_fs.h"
#include "common/layer/unique_fd.h"
#include "worker/sandbox/rootfs.h"

namespace lf::worker::sandbox {
namespace {

using layer::UniqueFd;

constexpr const char* kEtcFiles[] = {"hosts", "resolv.conf", "hostname"};

Status sysError(std::string_view what, const std::string& path) {
  return errnoStatus(errno, "sandbox: " + std::string(what) + " " + path);
}

Status doMount(const char* source, const std::string& target, const char* type, unsigned long flags,
               const char* data, std::string_view what) {
  if (mount(source, target.c_str(), type, flags, data) != 0) {
    return sysError(what, target);
  }
  return Status::ok();
}

Status bindReadOnly(const std::string& source, const std::string& target, unsigned long extra) {
  LF_RETURN_IF_ERROR(doMount(source.c_str(), target, nullptr, MS_BIND | MS_REC, nullptr, "bind"));
  return doMount(nullptr, target, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | extra, nullptr,
                 "remount read-only");
}

Status writeFile(const std::string& path, const std::string& content, mode_t mode) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) {
    return sysError("create", path);
  }
  if (!content.empty() &&
      write(fd.get(), content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
    return sysError("write", path);
  }
  return Status::ok();
}

Status buildSkeleton(const RootPlan& plan) {
  for (const std::string* dir : {&plan.skel, &plan.files, &plan.root}) {
    if (mkdir(dir->c_str(), 0755) != 0) {
      return sysError("mkdir", *dir);
    }
  }
  for (const SkeletonDir& dir : plan.skeleton_dirs) {
    std::string path = plan.skel + "/" + dir.rel;
    if (mkdir(path.c_str(), dir.mode) != 0 || chmod(path.c_str(), dir.mode) != 0 ||
        lchown(path.c_str(), dir.uid, dir.gid) != 0) {
      return sysError("skeleton dir", path);
    }
    timespec times[2] = {dir.mtime, dir.mtime};
    if (utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
      return sysError("skeleton dir times", path);
    }
  }
  for (const std::string& rel : plan.skeleton_files) {
    LF_RETURN_IF_ERROR(writeFile(plan.skel + "/" + rel, "", 0644));
  }
  const std::string contents[] = {plan.hosts, plan.resolv_conf, plan.hostname + "\n"};
  for (size_t i = 0; i < std::size(kEtcFiles); ++i) {
    LF_RETURN_IF_ERROR(writeFile(plan.skel + "/etc/" + kEtcFiles[i], "", 0644));
    LF_RETURN_IF_ERROR(writeFile(plan.files + "/" + kEtcFiles[i], contents[i], 0644));
  }
  return Status::ok();
}

Status bringUpLoopback() {
  UniqueFd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) {
    return errnoStatus(errno, "sandbox: socket for the loopback interface");
  }
  ifreq ifr{};
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (ioctl(sock.get(), SIOCGIFFLAGS, &ifr) != 0) {
    return errnoStatus(errno, "sandbox: SIOCGIFFLAGS lo");
  }
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(sock.get(), SIOCSIFFLAGS, &ifr) != 0) {
    return errnoStatus(errno, "sandbox: SIOCSIFFLAGS lo up");
  }
  return Status::ok();
}

struct DeviceNode {
  const char* name;
  unsigned major;
  unsigned minor;
};
constexpr DeviceNode kDevices[] = {{"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
                                   {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};

// Docker's /dev: a small tmpfs with the usual nodes, a private devpts, /dev/shm and mqueue.
Status mountDev(const std::string& root) {
  const std::string dev = root + "/dev";
  LF_RETURN_IF_ERROR(doMount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME,
                             "mode=755,size=65536k", "mount tmpfs on"));
  for (const DeviceNode& node : kDevices) {
    std::string path = dev + "/" + node.name;
    if (mknod(path.c_str(), S_IFCHR | 0666, makedev(node.major, node.minor)) == 0) {
      continue;
    }
    // Without CAP_MKNOD (a user namespace): bind the host's node over an empty file.
    LF_RETURN_IF_ERROR(writeFile(path, "", 0666));
    LF_RETURN_IF_ERROR(doMount((std::string("/dev/") + node.name).c_str(), path, nullptr, MS_BIND,
                               nullptr, "bind device"));
  }
  const std::string pts = dev + "/pts";
  const std::string shm = dev + "/shm";
  const std::string mqueue = dev + "/mqueue";
  for (const std::string* dir : {&pts, &shm, &mqueue}) {
    if (mkdir(dir->c_str(), 0755) != 0) {
      return sysError("mkdir", *dir);
    }
  }
  LF_RETURN_IF_ERROR(doMount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC,
                             "newinstance,ptmxmode=0666,mode=0620,gid=5", "mount devpts on"));
  LF_RETURN_IF_ERROR(doMount("shm", shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                             "mode=1777,size=65536k", "mount tmpfs on"));
  LF_RETURN_IF_ERROR(
      doMount("mqueue", mqueue, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr, "mount"));
  const std::pair<const char*, const char*> links[] = {{"pts/ptmx", "ptmx"},
                                                       {"/proc/self/fd", "fd"},
                                                       {"/proc/self/fd/0", "stdin"},
                                                       {"/proc/self/fd/1", "stdout"},
                                                       {"/proc/self/fd/2", "stderr"}};
  for (const auto& [target, name] : links) {
    std::string path = dev + "/" + name;
    if (symlink(target, path.c_str()) != 0) {
      return sysError("symlink", path);
    }
  }
  return Status::ok();
}

// Docker's masked paths: kernel data a container has no business reading. A missing path is
// fine (kernel config); other failures are errors.
Status maskPaths(const std::string& root, std::initializer_list<const char*> files,
                 std::initializer_list<const char*> dirs) {
  for (const char* rel : files) {
    std::string path = root + "/" + rel;
    if (mount("/dev/null", path.c_str(), nullptr, MS_BIND, nullptr) != 0 && errno != ENOENT) {
      return sysError("mask", path);
    }
  }
  for (const char* rel : dirs) {
    std::string path = root + "/" + rel;
    if (mount("tmpfs", path.c_str(), "tmpfs", MS_RDONLY, "size=0") != 0 && errno != ENOENT) {
      return sysError("mask", path);
    }
  }
  return Status::ok();
}

// RUN --mount=type=bind from a build filesystem: mounts the overlay of its layers when it has
// several (or takes writes), opens source_path inside the tree with the in-root resolution, and
// binds what it found (through /proc/self/fd, so nothing is looked up twice) at the target.
Status mountBuildBind(const PreparedMount& m, const std::string& target) {
  std::string tree = m.source;
  if (!m.overlay_lowers_top_first.empty()) {
    if (mkdir(m.overlay_point.c_str(), 0755) != 0) {
      return sysError("mkdir", m.overlay_point);
    }
    LF_RETURN_IF_ERROR(
        mountOverlay(m.overlay_lowers_top_first, m.overlay_upper, m.overlay_work, m.overlay_point));
    tree = m.overlay_point;
  }
  UniqueFd root(open(tree.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    return sysError("open bind mount tree", tree);
  }
  int fd = layer::openInRootRaw(root.get(), m.source_path, O_PATH);
  if (fd < 0) {
    errno = -fd;
    return sysError("open bind mount source \"" + m.source_path + "\" in", tree);
  }
  UniqueFd source(fd);
  std::string fd_path = "/proc/self/fd/" + std::to_string(fd);
  LF_RETURN_IF_ERROR(
      doMount(fd_path.c_str(), target, nullptr, MS_BIND | MS_REC, nullptr, "bind on"));
  unsigned long flags = MS_BIND | MS_REMOUNT | (m.readonly ? MS_RDONLY : 0) |
                        (m.nosuid_nodev ? MS_NOSUID | MS_NODEV : 0);
  if (flags != (MS_BIND | MS_REMOUNT)) {
    LF_RETURN_IF_ERROR(doMount(nullptr, target, nullptr, flags, nullptr, "remount"));
  }
  return Status::ok();
}

Status mountRunMounts(const RootPlan& plan) {
  for (const PreparedMount& m : plan.mounts) {
    std::string target = plan.root + "/" + m.target_rel;
    unsigned long ro = m.readonly ? MS_RDONLY : 0;
    if (m.type == MountSpec::kBind &&
        (!m.overlay_lowers_top_first.empty() || !m.source_path.empty() || m.nosuid_nodev)) {
      LF_RETURN_IF_ERROR(mountBuildBind(m, target));
    } else if (m.type == MountSpec::kTmpfs) {
      LF_RETURN_IF_ERROR(doMount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | ro,
                                 m.data.c_str(), "mount tmpfs on"));
    } else if (m.readonly) {
      LF_RETURN_IF_ERROR(bindReadOnly(m.source, target, 0));
    } else {
      LF_RETURN_IF_ERROR(
          doMount(m.source.c_str(), target, nullptr, MS_BIND | MS_REC, nullptr, "bind"));
    }
  }
  return Status::ok();
}

// Docker's read-only /sys/fs/cgroup. The init has entered its cgroup namespace, so each mount
// shows the step's own cgroup as the root. Best effort: the view is informational (tools size
// themselves by it), the limits are enforced from outside, and an odd host layout must not stop
// every step.
void mountCgroups(const RootPlan& plan) {
  const CgroupLayout* layout = plan.cgroups;
  const unsigned long flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
  const std::string base = plan.root + "/sys/fs/cgroup";
  if (layout == nullptr || (!layout->unified && layout->mounts.empty())) {
    return;
  }
  if (layout->unified) {
    (void)mount("cgroup2", base.c_str(), "cgroup2", flags, nullptr);
    return;
  }
  if (mount("tmpfs", base.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755") != 0) {
    return;
  }
  for (const CgroupLayout::Mount& m : layout->mounts) {
    std::string dir = base + "/" + m.name;
    if (mkdir(dir.c_str(), 0755) == 0) {
      (void)mount(m.fstype.c_str(), dir.c_str(), m.fstype.c_str(), flags,
                  m.options.empty() ? nullptr : m.options.c_str());
    }
  }
  for (const auto& [name, target] : layout->symlinks) {
    (void)symlink(target.c_str(), (base + "/" + name).c_str());
  }
  (void)mount(nullptr, base.c_str(), nullptr, MS_REMOUNT | flags, "mode=755");
}

}  // namespace

Status setUpMonitorMounts(const RootPlan& plan) {
  // Nothing below may propagate back into the host's mount table.
  LF_RETURN_IF_ERROR(doMount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr, "make private"));
  LF_RETURN_IF_ERROR(doMount("tmpfs", plan.scratch, "tmpfs", MS_NOSUID | MS_NODEV,
                             "mode=0755,size=16m", "mount tmpfs on"));
  LF_RETURN_IF_ERROR(buildSkeleton(plan));
  LF_RETURN_IF_ERROR(mountOverlay(plan.lowers_top_first, plan.upper, plan.work, plan.root));
  if (sethostname(plan.hostname.data(), plan.hostname.size()) != 0) {
    return errnoStatus(errno, "sandbox: sethostname " + plan.hostname);
  }
  if (plan.network == NetworkMode::kLoopback) {
    LF_RETURN_IF_ERROR(bringUpLoopback());
  }
  LF_RETURN_IF_ERROR(mountDev(plan.root));
  const std::string sys = plan.root + "/sys";
  LF_RETURN_IF_ERROR(doMount("sysfs", sys, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                             nullptr, "mount sysfs on"));
  LF_RETURN_IF_ERROR(maskPaths(plan.root, {}, {"sys/firmware", "sys/devices/virtual/powercap"}));
  for (const char* name : kEtcFiles) {
    LF_RETURN_IF_ERROR(doMount((plan.files + "/" + name).c_str(), plan.root + "/etc/" + name,
                               nullptr, MS_BIND, nullptr, "bind"));
  }
  return mountRunMounts(plan);
}

Status setUpInitMounts(const RootPlan& plan) {
  // The cgroup namespace is made here, after the caller's hook moved us into the step's cgroup,
  // so that cgroup becomes the sandbox's cgroup root. Kernels without it just skip it.
  if (unshare(CLONE_NEWCGROUP) != 0 && errno != EINVAL) {
    return errnoStatus(errno, "sandbox: unshare cgroup namespace");
  }
  mountCgroups(plan);
  // proc must be mounted from inside the new PID namespace to show its processes.
  const std::string proc = plan.root + "/proc";
  LF_RETURN_IF_ERROR(
      doMount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr, "mount proc on"));
  LF_RETURN_IF_ERROR(maskPaths(plan.root,
                               {"proc/kcore", "proc/keys", "proc/latency_stats", "proc/timer_list",
                                "proc/timer_stats", "proc/sched_debug"},
                               {"proc/acpi", "proc/scsi", "proc/asound"}));
  for (const char* rel : {"proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger"}) {
    std::string path = plan.root + "/" + rel;
    if (mount(path.c_str(), path.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      if (errno == ENOENT) {
        continue;  // not in this kernel's configuration
      }
      return sysError("bind", path);
    }
    LF_RETURN_IF_ERROR(doMount(nullptr, path, nullptr,
                               MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                               nullptr, "remount read-only"));
  }
  // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only the
  // sandbox's tree (see pivot_root(2)).
  if (chdir(plan.root.c_str()) != 0) {
    return sysError("chdir", plan.root);
  }
  if (syscall(SYS_pivot_root, ".", ".") != 0) {
    return sysError("pivot_root", plan.root);
  }
  if (umount2(".", MNT_DETACH) != 0) {
    return errnoStatus(errno, "sandbox: detach the old root");
  }
  if (chdir("/") != 0) {
    return errnoStatus(errno, "sandbox: chdir /");
  }
  return Status::ok();
}

}  // namespace lf::worker::sandbox
