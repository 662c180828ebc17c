#pragma once

// Running one build step's command isolated from the host: overlayfs root, namespaces,
// capabilities, seccomp, timeout and cancellation, line-by-line output.
//
// Process structure (child.cpp, rootfs_setup.cpp): the caller's process forks a "monitor"
// child, which unshares mount/UTS/IPC/PID/(net) namespaces, mounts the overlay root in its private
// mount namespace and, once the caller's before_start hook has run (so every process of the step
// starts inside the step's cgroup), starts the sandbox init (vfork-style clone): pid 1 of the new
// PID namespace, which enters a cgroup namespace, mounts /proc, pivots into the root, resolves
// USER, creates the working dir, drops to Docker's capabilities, sets no_new_privs and the seccomp
// profile (security.h) and execs the command. Timeout and cancel SIGKILL the init, which takes
// its whole PID namespace with it. Monitor and init die with the thread that called runInSandbox
// (PR_SET_PDEATHSIG), and every mount lives only in the monitor's mount namespace, so a killed
// worker leaves neither processes nor mounts behind.
//
// Nothing the sandbox needs for its own plumbing lands in the upper dir: /proc, /sys, /dev and the
// /etc files Docker provides are mount points taken from a per-run "skeleton" tmpfs that is the
// top-most (read-only) lower layer. The upper dir only receives what the command changes (and the
// working directory if it had to be created, as Docker does).
//
// Thread-safety: runInSandbox and withMountedOverlays may be called concurrently from any threads
// of a multi-threaded process. They use fork() (glibc keeps malloc usable in the child); the
// sandbox's monitor closes every inherited descriptor at once, and no wait depends on a pipe's EOF
// (a concurrent fork elsewhere may hold copies), only on messages and pidfds.
// Needs root (real CAP_SYS_ADMIN) and Linux >= 5.3 (pidfd_open). Overlay is mounted with the new
// mount API where overlay has "lowerdir+" (>= 6.8), else with mount(2) options naming long chains
// through /proc/self/fd. Leaves an empty directory work_dir/sandbox behind (a mount point).
//
// Error contract: a Status error means the sandbox could not run the command (bad input, mount or
// namespace failure, a child that died unexpectedly); the message names what failed, e.g.
// "sandbox: mount overlay on /w/sandbox/root: Invalid argument". A command that runs and exits
// non-zero, is killed by a signal, times out or is cancelled is NOT an error: see RunResult.
// A command that cannot be executed (not found in PATH, not executable) is reported the way a
// shell does: exit code 127 (not found) or 126 (not executable) with a message on stderr.

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace lf::worker::sandbox {

// The root filesystem of a step: overlayfs over read-only unpacked layers.
struct OverlayRoot {
  // Parent layers BOTTOM FIRST (apply order), each an unpacked layer in overlay whiteout format
  // (0:0 character devices, trusted.overlay.opaque=y). Empty = scratch. Never written to.
  std::vector<std::filesystem::path> lower_dirs;
  // Fresh and empty: becomes the step's layer (plain files, no metacopy/redirects).
  std::filesystem::path upper_dir;
  // The overlay work dir, on the same filesystem as upper_dir. The sandbox also creates an empty
  // directory "sandbox" in it as a private mount point (left behind, empty, after the run).
  std::filesystem::path work_dir;
};

enum class NetworkMode {
  kLoopback,  // private network namespace, loopback up (Docker build's default)
  kNone,      // private network namespace, no interface up
  kHost,      // the worker's network namespace (only where the worker's config allows it)
};

// RUN --mount: a tmpfs, or a bind of a directory the worker owns (cache mounts) or of a path in a
// build filesystem (bind from a layer chain or the context, materialized by the caller).
struct MountSpec {
  enum Type { kTmpfs, kBind };
  Type type = kTmpfs;
  std::filesystem::path source;  // kBind: a directory on the host
  // Absolute path inside the sandbox, no ".." components; not under /proc, /sys, /dev or on the
  // /etc files the sandbox provides, and not inside another mount's target. Created (in the
  // skeleton layer, so not in the upper dir) when missing, as a directory (or an empty file with
  // target_is_file). Its components must be directories in the image: a symlink there is
  // shadowed by a directory for the run.
  std::string target;
  bool readonly = false;
  int64_t size_bytes = 0;  // kTmpfs: size limit; 0 = the kernel's default (half of RAM)

  // kBind from a build filesystem (RUN --mount=type=bind). When `overlay_lowers` is not empty,
  // `source` is unused: an overlay of these dirs (bottom first) is mounted in the sandbox's
  // private scratch area and is the tree bound from, with overlay_upper/overlay_work (both or
  // neither; same filesystem, fresh) taking the writes of a read-write mount so that they touch
  // neither the layers nor the step's layer. Without an upper it is read-only and needs at least
  // two lower dirs (bind a single dir as `source`).
  std::vector<std::filesystem::path> overlay_lowers;
  std::filesystem::path overlay_upper;
  std::filesystem::path overlay_work;
  // kBind: the path inside the tree (`source` or the overlay) to bind at target instead of the
  // tree's root, resolved by the kernel as if the tree were "/" (openat2 RESOLVE_IN_ROOT), so
  // no symlink in it leads out of the tree. Empty = the root.
  std::string source_path;
  // The mount point is made an empty file, not a directory (the bound source is a file).
  bool target_is_file = false;
  // nosuid,nodev on the mount: for build content (layers, the context), never for cache dirs.
  bool nosuid_nodev = false;
};

struct ProcessSpec {
  // argv[0] is looked up in the PATH of `env` inside the root when it has no '/'.
  std::vector<std::string> argv;
  // "KEY=VALUE". HOME is added from the user's passwd entry (or "/") when absent; PATH gets
  // Docker's default when absent.
  std::vector<std::string> env;
  // "", "name", "uid", "name:group", "uid:gid": resolved in the root's /etc/passwd and /etc/group
  // (worker/exec/user_db.h). Empty = root.
  std::string user;
  // Absolute. Created (root, 0755, in the upper dir) when missing, as Docker does.
  std::string working_dir = "/";
  // Empty = "layerfarm".
  std::string hostname;
  NetworkMode network = NetworkMode::kLoopback;
  // "name:ip" lines for /etc/hosts (--add-host); the ip may be IPv6 (split at the first ':').
  std::vector<std::string> extra_hosts;
  // /etc/resolv.conf content. Empty = the host's, with 127.x/::1 nameservers dropped (not for
  // kHost) and 8.8.8.8/8.8.4.4 when none remain, as Docker does.
  std::string resolv_conf;
  std::vector<MountSpec> mounts;
  int64_t timeout_ms = 0;  // wall clock from the start of runInSandbox; 0 = none
};

enum class OutputStream { kStdout, kStderr };

// Called on the runInSandbox thread for each output line (without its '\n'; lines longer than
// 64 KiB are split), in the order read from each stream. Must not block for long: the command's
// output pipe fills while it runs.
using OutputCallback =
    std::function<void(OutputStream stream, int64_t timestamp_unix_ns, std::string_view line)>;

struct RunResult {
  bool exited = false;  // the command exited (exit_code valid)
  int exit_code = -1;
  int signal = 0;  // the signal that killed the command, 0 if none
  bool timed_out = false;
  bool cancelled = false;
  int64_t setup_ms = 0;  // start of runInSandbox until the command was exec'd
  int64_t run_ms = 0;    // exec until the command (and its whole PID namespace) was gone
  std::vector<std::string> last_lines;  // the last 20 output lines of both streams, in order
};

// Cancels a running (or not yet started) runInSandbox from any thread. Owns an eventfd.
// Thread-safe; cancel() is idempotent. Must outlive the runInSandbox calls it is passed to.
class Canceller {
 public:
  Canceller();
  ~Canceller();
  Canceller(const Canceller&) = delete;
  Canceller& operator=(const Canceller&) = delete;

  void cancel();
  bool isCancelled() const { return cancelled_.load(std::memory_order_acquire); }
  // Readable (POLLIN) once cancel() was called; -1 if the eventfd could not be created (then
  // cancellation is noticed only through isCancelled() between waits).
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::atomic<bool> cancelled_{false};
};

struct Hooks {
  // Called in the caller's process with the host pid of the monitor, before any process of the
  // step is started; every process of the step descends from it (put it in the step's cgroup).
  // An error aborts the run and is returned by runInSandbox.
  std::function<Status(pid_t)> before_start;
};

// Runs `proc` in a sandbox on `root`. Blocks until the command and every process it started are
// gone (bounded: timeout, cancel, and a grace period for the kernel to tear the namespace down).
Result<RunResult> runInSandbox(const OverlayRoot& root, const ProcessSpec& proc,
                               const OutputCallback& out, const Hooks& hooks = {},
                               Canceller* cancel = nullptr);

// For COPY/ADD (no process in the sandbox).
struct MountedOverlay {
  OverlayRoot root;
  // true: mount only the lower dirs (read-only overlay; upper/work are ignored). A read-only
  // root with one lower dir is bind-mounted read-only; with none it is an empty directory.
  bool read_only = false;
};

// In a forked child with a private mount namespace, mounts each overlay at a fresh directory
// under `scratch_dir` (which must exist) and runs fn(mounted_paths) there; returns fn's Status
// (carried back to the caller through a pipe). Nothing stays mounted after it returns: the
// mounts die with the child's namespace. fn runs in the child: it must not touch state of the
// caller's process that other threads hold locks on (logging, pools); plain file work is fine.
// The child keeps the caller's descriptors (fn may use them). There is no timeout: fn must end.
// Read-write roots are mounted like runInSandbox's (plain upper dir); a read-write root without
// lower dirs is the upper dir itself, bind-mounted.
Status withMountedOverlays(
    const std::vector<MountedOverlay>& overlays, const std::filesystem::path& scratch_dir,
    const std::function<Status(const std::vector<std::filesystem::path>&)>& fn);

// Docker's default capability set as a mask (00000000a80425fb): what a root process in the
// sandbox holds in its bounding, permitted and effective sets.
uint64_t defaultCapabilityMask();

}  // namespace lf::worker::sandbox
