// withMountedOverlays: overlays mounted in a throw-away mount namespace for COPY/ADD.

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include "common/layer/unique_fd.h"
#include "worker/sandbox/child.h"
#include "worker/sandbox/rootfs.h"
#include "worker/sandbox/sandbox.h"

namespace lf::worker::sandbox {
namespace {

using layer::UniqueFd;

constexpr char kMsgResult = 'R';

struct PreparedOverlay {
  std::vector<std::string> lowers_top_first;
  std::string upper;
  std::string work;
  bool read_only = false;
  std::string target;
};

Status mountOne(const PreparedOverlay& o) {
  const char* target = o.target.c_str();
  if (o.read_only && o.lowers_top_first.size() <= 1) {
    // Overlay wants two lower dirs without an upper: one is a read-only bind, none an empty
    // read-only tmpfs.
    if (o.lowers_top_first.empty()) {
      if (mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=0") != 0) {
        return errnoStatus(errno, "sandbox: mount empty root on " + o.target);
      }
      return Status::ok();
    }
    if (mount(o.lowers_top_first[0].c_str(), target, nullptr, MS_BIND | MS_REC, nullptr) != 0 ||
        mount(nullptr, target, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
      return errnoStatus(errno, "sandbox: bind " + o.lowers_top_first[0] + " on " + o.target);
    }
    return Status::ok();
  }
  if (!o.read_only && o.lowers_top_first.empty()) {
    // Scratch: the upper dir is the whole filesystem.
    if (mount(o.upper.c_str(), target, nullptr, MS_BIND, nullptr) != 0) {
      return errnoStatus(errno, "sandbox: bind " + o.upper + " on " + o.target);
    }
    return Status::ok();
  }
  return mountOverlay(o.lowers_top_first, o.read_only ? "" : o.upper, o.read_only ? "" : o.work,
                      o.target);
}

[[noreturn]] void mountChild(
    const std::vector<PreparedOverlay>& overlays, pid_t parent, int out,
    const std::function<Status(const std::vector<std::filesystem::path>&)>& fn) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) {
    _exit(1);
  }
  Status status;
  if (unshare(CLONE_NEWNS) != 0) {
    status = errnoStatus(errno, "sandbox: unshare mount namespace");
  } else if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    status = errnoStatus(errno, "sandbox: make / private");
  }
  std::vector<std::filesystem::path> paths;
  for (const PreparedOverlay& o : overlays) {
    if (status.isOk()) {
      status = mountOne(o);
    }
    paths.emplace_back(o.target);
  }
  if (status.isOk()) {
    status = fn(paths);
  }
  sendMessage(out, kMsgResult, status.code(), status.message());
  _exit(0);
}

Result<std::vector<PreparedOverlay>> prepare(const std::vector<MountedOverlay>& overlays,
                                             const std::filesystem::path& scratch_dir) {
  if (!scratch_dir.is_absolute()) {
    return invalidArgument("sandbox: scratch dir \"" + scratch_dir.string() + "\" is not absolute");
  }
  std::vector<PreparedOverlay> out;
  for (size_t i = 0; i < overlays.size(); ++i) {
    const OverlayRoot& root = overlays[i].root;
    PreparedOverlay o;
    o.read_only = overlays[i].read_only;
    for (auto it = root.lower_dirs.rbegin(); it != root.lower_dirs.rend(); ++it) {
      if (!it->is_absolute()) {
        return invalidArgument("sandbox: lower dir \"" + it->string() + "\" is not absolute");
      }
      o.lowers_top_first.push_back(it->string());
    }
    if (!o.read_only && (!root.upper_dir.is_absolute() || !root.work_dir.is_absolute())) {
      return invalidArgument("sandbox: upper and work dirs of a read-write root must be absolute");
    }
    o.upper = root.upper_dir.string();
    o.work = root.work_dir.string();
    o.target = (scratch_dir / ("mnt-" + std::to_string(i))).string();
    if (mkdir(o.target.c_str(), 0755) != 0 && errno != EEXIST) {
      return errnoStatus(errno, "sandbox: mkdir " + o.target);
    }
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace

Status withMountedOverlays(
    const std::vector<MountedOverlay>& overlays, const std::filesystem::path& scratch_dir,
    const std::function<Status(const std::vector<std::filesystem::path>&)>& fn) {
  LF_ASSIGN_OR_RETURN(std::vector<PreparedOverlay> prepared, prepare(overlays, scratch_dir));
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return errnoStatus(errno, "sandbox: pipe");
  }
  UniqueFd read_end(fds[0]);
  if (fcntl(read_end.get(), F_SETFL, O_NONBLOCK) != 0) {
    return errnoStatus(errno, "sandbox: O_NONBLOCK");
  }
  UniqueFd write_end(fds[1]);
  const pid_t parent = getpid();
  pid_t child = fork();
  if (child < 0) {
    return errnoStatus(errno, "sandbox: fork");
  }
  if (child == 0) {
    // Descriptors are kept: fn may use ones the caller opened.
    mountChild(prepared, parent, write_end.get(), fn);
  }
  write_end.reset();
  MessageReader reader;
  Message m;
  bool have_result = false;
  // Until the result arrives or the child is gone; not until EOF, which a concurrent fork in this
  // process could delay by holding a copy of the write end.
  UniqueFd child_fd(static_cast<int>(syscall(SYS_pidfd_open, child, 0)));
  bool child_gone = false;
  while (!have_result) {
    pollfd pfds[2] = {{read_end.get(), POLLIN, 0}, {child_gone ? -1 : child_fd.get(), POLLIN, 0}};
    if (poll(pfds, 2, -1) < 0 && errno != EINTR) {
      break;
    }
    child_gone = child_gone || pfds[1].revents != 0;
    char buf[4096];
    ssize_t n = read(read_end.get(), buf, sizeof buf);
    if (n > 0) {
      reader.feed(buf, n);
      have_result = reader.next(&m);
    } else if ((n == 0 || errno != EAGAIN) || child_gone) {
      break;  // EOF or error, or nothing left from a child that has exited
    }
  }
  int wstatus = 0;
  while (waitpid(child, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (!have_result || m.type != kMsgResult) {
    return internalError("sandbox: the mount child ended without a result (wait status " +
                         std::to_string(wstatus) + ")");
  }
  if (m.code == StatusCode::kOk) {
    return Status::ok();
  }
  return Status(m.code, m.payload);
}

}  // namespace lf::worker::sandbox
