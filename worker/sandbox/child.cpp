// The monitor and the sandbox init (see child.h and sandbox.h for the process structure).

#include "worker/sandbox/child.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "worker/exec/user_db.h"
#include "worker/sandbox/security.h"

namespace lf::worker::sandbox {
namespace {

constexpr int kSetupFailedExit = 125;

[[noreturn]] void fail(int fd, const Status& status) {
  sendMessage(fd, kMsgError, status.code(), status.message());
  _exit(kSetupFailedExit);
}

[[noreturn]] void failErrno(int fd, int err, std::string_view what) {
  fail(fd, errnoStatus(err, "sandbox: " + std::string(what)));
}

void writeAll(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t n = write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return;
    }
    text.remove_prefix(n);
  }
}

std::string envValue(const std::vector<std::string>& env, std::string_view key) {
  std::string value;
  for (const std::string& entry : env) {
    if (entry.size() > key.size() && entry.compare(0, key.size(), key) == 0 &&
        entry[key.size()] == '=') {
      value = entry.substr(key.size() + 1);  // the last one wins, as getenv after putenv
    }
  }
  return value;
}

bool hasEnv(const std::vector<std::string>& env, std::string_view key) {
  for (const std::string& entry : env) {
    if (entry.size() > key.size() && entry.compare(0, key.size(), key) == 0 &&
        entry[key.size()] == '=') {
      return true;
    }
  }
  return false;
}

// execvp's search, done by hand so the PATH is the step's and the error is Docker's.
std::string lookPath(const std::string& file, const std::string& path) {
  if (file.find('/') != std::string::npos) {
    return file;
  }
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find(':', pos);
    if (end == std::string::npos) {
      end = path.size();
    }
    std::string dir = path.substr(pos, end - pos);
    pos = end + 1;
    std::string candidate = (dir.empty() ? "." : dir) + "/" + file;
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0) {
      return candidate;
    }
  }
  return "";
}

// mkdir -p as root 0755, inside the (already pivoted) root.
Status makeWorkingDir(const std::string& dir) {
  for (size_t end = 1; end != std::string::npos;) {
    end = dir.find('/', end + 1);
    std::string prefix = dir.substr(0, end);
    if (mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return errnoStatus(errno, "sandbox: create working dir " + prefix);
    }
  }
  if (chdir(dir.c_str()) != 0) {
    return errnoStatus(errno, "sandbox: chdir to working dir " + dir);
  }
  return Status::ok();
}

// Docker resolves even root through the image's passwd (for HOME); a missing file is fine.
Result<ResolvedUser> resolveSandboxUser(const std::string& spec) {
  int root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) {
    return errnoStatus(errno, "sandbox: open /");
  }
  Result<UserDatabase> db = loadUserDatabase(root_fd);
  close(root_fd);
  if (!db.isOk()) {
    return db.status();
  }
  return resolveUser(*db, spec.empty() ? "0" : spec);
}

[[noreturn]] void execCommand(const LaunchSpec& spec, const ResolvedUser& user, int err_fd) {
  std::vector<std::string> env = spec.env;
  if (!hasEnv(env, "HOME")) {
    env.push_back("HOME=" + user.home);
  }
  std::string exe = lookPath(spec.argv[0], envValue(env, "PATH"));
  if (exe.empty()) {
    writeAll(2, "sandbox: exec: \"" + spec.argv[0] + "\": executable file not found in $PATH\n");
    _exit(127);
  }
  std::vector<char*> argv;
  for (const std::string& arg : spec.argv) {
    argv.push_back(const_cast<char*>(arg.c_str()));
  }
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& entry : env) {
    envp.push_back(const_cast<char*>(entry.c_str()));
  }
  envp.push_back(nullptr);
  // Signal dispositions were reset by the monitor; the mask only matters for the exec'd program.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  const char* what = "";
  std::vector<gid_t> groups(user.groups.begin(), user.groups.end());
  int err = dropCapabilities(spec.cap_mask, &what);
  if (err == 0) {
    err = switchUser(user.uid, user.gid, groups, &what);
  }
  if (err == 0) {
    err = lockDown(*spec.seccomp, &what);
  }
  if (err != 0) {
    failErrno(err_fd, err, what);
  }
  // The exec pipe stays open until execve succeeds (CLOEXEC), everything else is closed.
  syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
  execve(exe.c_str(), argv.data(), envp.data());
  err = errno;
  writeAll(2, "sandbox: exec " + exe + ": " + strerror(err) + "\n");
  _exit(err == ENOENT ? 127 : 126);
}

[[noreturn]] void initMain(const LaunchSpec& spec, const ChildFds& fds, int alive_r) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // If the monitor died before PDEATHSIG was armed, nobody would kill us: check it is alive.
  pollfd alive{alive_r, POLLIN, 0};
  if (poll(&alive, 1, 0) != 0) {
    _exit(kSetupFailedExit);
  }
  close(alive_r);
  close(fds.msg_w);
  close(fds.sync);
  Status status = setUpInitMounts(spec.plan);
  if (!status.isOk()) {
    fail(fds.exec_w, status);
  }
  Result<ResolvedUser> user = resolveSandboxUser(spec.user);
  if (!user.isOk()) {
    fail(fds.exec_w, user.status());
  }
  umask(022);
  status = makeWorkingDir(spec.working_dir);
  if (!status.isOk()) {
    fail(fds.exec_w, status);
  }
  if (dup2(fds.null, 0) < 0 || dup2(fds.out_w, 1) < 0 || dup2(fds.err_w, 2) < 0) {
    failErrno(fds.exec_w, errno, "set up stdio");
  }
  execCommand(spec, *user, fds.exec_w);
}

struct InitArgs {
  const LaunchSpec* spec;
  const ChildFds* fds;
  int alive[2];
};

int initTrampoline(void* arg) {
  auto* args = static_cast<InitArgs*>(arg);
  close(args->alive[1]);
  initMain(*args->spec, *args->fds, args->alive[0]);
}

// Starts the init with vfork semantics (CLONE_VM | CLONE_VFORK) on a stack of its own: no copy of
// the page tables of the worker's (possibly large) address space, which fork() would make. The
// monitor sleeps until the init execs or exits, so the two never run on the shared memory at the
// same time, which is what makes malloc in the init safe (as in a function call).
pid_t startInit(const LaunchSpec& spec, const ChildFds& fds, const int alive[2]) {
  constexpr size_t kStackBytes = 1 << 20;
  void* stack = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    return -1;
  }
  InitArgs args{&spec, &fds, {alive[0], alive[1]}};
  pid_t pid = clone(initTrampoline, static_cast<char*>(stack) + kStackBytes,
                    CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
  int err = errno;
  munmap(stack, kStackBytes);  // the init has exec'd or exited by now
  errno = err;
  return pid;
}

// Waits for the init to end without reaping it, so its pid cannot be reused while the parent
// may still signal it; the parent lets us go (a byte on `sync`, or its end closing) once it no
// longer needs the pid.
[[noreturn]] void superviseInit(pid_t init, const ChildFds& fds) {
  sendMessage(fds.msg_w, kMsgInitPid, StatusCode::kOk, std::to_string(init));
  siginfo_t info{};
  while (waitid(P_PID, init, &info, WEXITED | WNOWAIT) != 0) {
    if (errno != EINTR) {
      failErrno(fds.msg_w, errno, "waitid for the sandbox init");
    }
  }
  sendMessage(fds.msg_w, kMsgInitStatus, StatusCode::kOk,
              std::to_string(info.si_code) + " " + std::to_string(info.si_status));
  char byte;
  ssize_t n;
  do {
    n = read(fds.sync, &byte, 1);
  } while (n < 0 && errno == EINTR);
  _exit(0);
}

}  // namespace

void sendMessage(int fd, char type, StatusCode code, std::string_view payload) {
  payload = payload.substr(0, PIPE_BUF - 4);
  std::string record;
  record += type;
  record += static_cast<char>(code);
  record += static_cast<char>(payload.size() & 0xff);
  record += static_cast<char>(payload.size() >> 8);
  record.append(payload);
  writeAll(fd, record);
}

bool MessageReader::next(Message* out) {
  if (buffer_.size() < 4) {
    return false;
  }
  size_t size = static_cast<unsigned char>(buffer_[2]) |
                (static_cast<size_t>(static_cast<unsigned char>(buffer_[3])) << 8);
  if (buffer_.size() < 4 + size) {
    return false;
  }
  out->type = buffer_[0];
  out->code = static_cast<StatusCode>(static_cast<unsigned char>(buffer_[1]));
  out->payload = buffer_.substr(4, size);
  buffer_.erase(0, 4 + size);
  return true;
}

void resetSignals() {
  struct sigaction action {};
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) {
      sigaction(sig, &action, nullptr);  // fails harmlessly for glibc's reserved signals
    }
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

void keepOnlyFds(std::vector<int*> fds) {
  // First move everything above the target range, then into place, so no move clobbers a
  // descriptor still to be moved.
  const int base = 3;
  const int high = base + static_cast<int>(fds.size()) + 64;
  for (int* fd : fds) {
    *fd = fcntl(*fd, F_DUPFD_CLOEXEC, high);
  }
  int next = base;
  for (int* fd : fds) {
    dup3(*fd, next, O_CLOEXEC);
    *fd = next++;
  }
  if (syscall(SYS_close_range, next, ~0U, 0) != 0) {
    // Kernels before 5.9: close them one by one.
    long max_fd = sysconf(_SC_OPEN_MAX);
    for (int fd = next; fd < (max_fd > 0 && max_fd < 1 << 20 ? max_fd : 1 << 16); ++fd) {
      close(fd);
    }
  }
}

void monitorMain(const LaunchSpec& spec, ChildFds fds) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != spec.parent_pid) {
    _exit(kSetupFailedExit);  // the caller's thread already went away
  }
  keepOnlyFds({&fds.msg_w, &fds.exec_w, &fds.sync, &fds.null, &fds.out_w, &fds.err_w});
  resetSignals();
  umask(0);
  int flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID;
  if (spec.plan.network != NetworkMode::kHost) {
    flags |= CLONE_NEWNET;
  }
  if (unshare(flags) != 0) {
    failErrno(fds.msg_w, errno, "unshare namespaces");
  }
  Status status = setUpMonitorMounts(spec.plan);
  if (!status.isOk()) {
    fail(fds.msg_w, status);
  }
  // Start the init only once the caller's hook has placed us in the step's cgroup.
  char go = 0;
  ssize_t n;
  while ((n = read(fds.sync, &go, 1)) < 0 && errno == EINTR) {
  }
  if (n != 1) {
    _exit(kSetupFailedExit);  // the caller gave up
  }
  int alive[2];
  if (pipe2(alive, O_CLOEXEC) != 0) {
    failErrno(fds.msg_w, errno, "pipe");
  }
  pid_t init = startInit(spec, fds, alive);
  if (init < 0) {
    failErrno(fds.msg_w, errno, "clone the sandbox init");
  }
  close(alive[0]);
  close(fds.exec_w);
  close(fds.null);
  close(fds.out_w);
  close(fds.err_w);
  superviseInit(init, fds);
}

}  // namespace lf::worker::sandbox
