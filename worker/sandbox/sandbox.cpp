// runInSandbox: the caller's side. Forks the monitor (child.cpp), runs the hook, then one poll
// loop reads output and messages and enforces the timeout and cancellation until the command's
// PID namespace is gone.

#include "worker/sandbox/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <deque>
#include <optional>

#include "common/layer/unique_fd.h"
#include "worker/sandbox/child.h"
#include "worker/sandbox/security.h"

namespace lf::worker::sandbox {
namespace {

using layer::UniqueFd;

constexpr size_t kMaxLastLines = 20;
constexpr size_t kMaxLineBytes = 64 * 1024;
// After SIGKILL the kernel needs a moment to tear the namespace down; past this something is
// badly wrong (a process stuck in the kernel) and we report it rather than hang.
constexpr int64_t kKillGraceMs = 10'000;
constexpr const char* kDefaultPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

int64_t monotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t unixNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Splits a stream into lines for the callback and keeps the last lines of both streams.
class LineSink {
 public:
  explicit LineSink(const OutputCallback& out) : out_(out) {}

  void feed(OutputStream stream, std::string& buffer, std::string_view data, bool eof) {
    buffer.append(data);
    const int64_t now = unixNs();
    size_t start = 0;
    while (true) {
      size_t nl = buffer.find('\n', start);
      size_t len = nl == std::string::npos ? buffer.size() - start : nl - start;
      if (len >= kMaxLineBytes) {
        emit(stream, now, std::string_view(buffer).substr(start, kMaxLineBytes));
        start += kMaxLineBytes;
        continue;
      }
      if (nl == std::string::npos) {
        break;
      }
      emit(stream, now, std::string_view(buffer).substr(start, len));
      start = nl + 1;
    }
    buffer.erase(0, start);
    if (eof && !buffer.empty()) {
      emit(stream, now, buffer);
      buffer.clear();
    }
  }

  std::vector<std::string> lastLines() const { return {last_.begin(), last_.end()}; }

 private:
  void emit(OutputStream stream, int64_t now, std::string_view line) {
    if (out_) {
      out_(stream, now, line);
    }
    last_.emplace_back(line);
    if (last_.size() > kMaxLastLines) {
      last_.pop_front();
    }
  }

  const OutputCallback& out_;
  std::deque<std::string> last_;
};

struct Pipes {
  UniqueFd msg_r, msg_w, exec_r, exec_w, out_r, out_w, err_r, err_w, sync_parent, sync_child, null;
};

Status makePipes(Pipes* p) {
  int fds[2];
  auto pipe = [&](UniqueFd* r, UniqueFd* w) -> Status {
    if (pipe2(fds, O_CLOEXEC) != 0) {
      return errnoStatus(errno, "sandbox: pipe");
    }
    r->reset(fds[0]);
    w->reset(fds[1]);
    return Status::ok();
  };
  LF_RETURN_IF_ERROR(pipe(&p->msg_r, &p->msg_w));
  LF_RETURN_IF_ERROR(pipe(&p->exec_r, &p->exec_w));
  LF_RETURN_IF_ERROR(pipe(&p->out_r, &p->out_w));
  LF_RETURN_IF_ERROR(pipe(&p->err_r, &p->err_w));
  // Our ends never block (the final drain reads until empty); the command's ends stay blocking.
  for (UniqueFd* r : {&p->msg_r, &p->exec_r, &p->out_r, &p->err_r}) {
    if (fcntl(r->get(), F_SETFL, O_NONBLOCK) != 0) {
      return errnoStatus(errno, "sandbox: O_NONBLOCK");
    }
  }
  // A socket, so the parent's write cannot raise SIGPIPE (MSG_NOSIGNAL) if the monitor died.
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return errnoStatus(errno, "sandbox: socketpair");
  }
  p->sync_parent.reset(fds[0]);
  p->sync_child.reset(fds[1]);
  p->null.reset(open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!p->null) {
    return errnoStatus(errno, "sandbox: open /dev/null");
  }
  return Status::ok();
}

// The caller's view of one run: the poll loop and what it learned.
class Supervisor {
 public:
  Supervisor(pid_t monitor, Pipes& pipes, const OutputCallback& out, Canceller* cancel,
             int64_t start_ms, int64_t timeout_ms)
      : monitor_(monitor), pipes_(pipes), sink_(out), cancel_(cancel), start_ms_(start_ms) {
    if (timeout_ms > 0) {
      deadline_ms_ = start_ms + timeout_ms;
    }
    // Our own unreaped child: no pid reuse race.
    monitor_pidfd_.reset(static_cast<int>(syscall(SYS_pidfd_open, monitor, 0)));
  }

  Result<RunResult> run();

 private:
  enum Slot { kOut, kErr, kMsg, kExec, kCancel, kInit, kMonitor, kSlots };

  void killAll();
  void onMessage(const Message& m);
  // Reads what is available into *data; false at EOF (or a read error, treated as EOF).
  bool readInto(int fd, std::string* data);
  // Handles readable pipes; `drain` reads until nothing is left (after the processes are gone).
  void readPipes(const bool ready[kSlots], bool drain, int64_t now);
  int pollTimeout(int64_t now) const;
  // Done once the monitor has exited and so has the init (and with it every process of its PID
  // namespace). Pipe EOFs are not waited for: another thread's fork may briefly hold copies.
  bool done() const { return monitor_exited_ && (!init_pidfd_ || init_exited_); }
  Result<RunResult> finish();
  Status abandon(Status status);

  pid_t monitor_;
  Pipes& pipes_;
  LineSink sink_;
  Canceller* cancel_;
  int64_t start_ms_;
  int64_t deadline_ms_ = 0;
  int64_t kill_deadline_ms_ = 0;
  int64_t teardown_deadline_ms_ = 0;  // after the init ended: the monitor must follow
  int64_t exec_ms_ = 0;
  std::string out_buf_, err_buf_;
  MessageReader msg_reader_, exec_reader_;
  bool out_eof_ = false, err_eof_ = false, msg_eof_ = false, exec_eof_ = false;
  UniqueFd init_pidfd_;
  bool init_exited_ = false;
  UniqueFd monitor_pidfd_;
  bool monitor_exited_ = false;
  bool killed_ = false;
  bool timed_out_ = false, cancelled_ = false;
  std::optional<siginfo_t> init_end_;
  std::optional<Status> error_;
};

void Supervisor::killAll() {
  if (!killed_) {
    killed_ = true;
    kill_deadline_ms_ = monotonicMs() + kKillGraceMs;
  }
  if (init_pidfd_) {
    // Killing pid 1 of the namespace kills every process in it; the monitor then reports how
    // the init ended.
    syscall(SYS_pidfd_send_signal, init_pidfd_.get(), SIGKILL, nullptr, 0);
  } else {
    // The monitor is our unreaped child, so its pid is ours; its death kills the init
    // (PDEATHSIG) if there is one already.
    kill(monitor_, SIGKILL);
  }
}

void Supervisor::onMessage(const Message& m) {
  if (m.type == kMsgError) {
    if (!error_) {
      error_ = Status(m.code == StatusCode::kOk ? StatusCode::kInternal : m.code, m.payload);
    }
  } else if (m.type == kMsgInitPid) {
    pid_t pid = static_cast<pid_t>(std::strtol(m.payload.c_str(), nullptr, 10));
    // Safe against pid reuse only while the monitor lives: it does not reap the init before we
    // let it go. So the monitor must still be alive after the pidfd is open; if it died (we
    // killed it), the init dies of PDEATHSIG and its pid may already name another process.
    UniqueFd fd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
    pollfd monitor{monitor_pidfd_.get(), POLLIN, 0};
    if (fd && monitor_pidfd_ && poll(&monitor, 1, 0) == 0) {
      init_pidfd_ = std::move(fd);
      if (killed_) {
        killAll();
      }
    }
  } else if (m.type == kMsgInitStatus) {
    siginfo_t info{};
    std::sscanf(m.payload.c_str(), "%d %d", &info.si_code, &info.si_status);
    init_end_ = info;
    init_exited_ = true;
    teardown_deadline_ms_ = monotonicMs() + kKillGraceMs;
    // Lets the monitor exit. A byte, not just the close: a concurrent fork elsewhere in this
    // process may hold a copy of our end, and the monitor must not wait for it.
    (void)send(pipes_.sync_parent.get(), "x", 1, MSG_NOSIGNAL);
    pipes_.sync_parent.reset();
  }
}

bool Supervisor::readInto(int fd, std::string* data) {
  data->clear();
  char buf[65536];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
    return true;
  }
  if (n <= 0) {
    return false;
  }
  data->assign(buf, n);
  return true;
}

int Supervisor::pollTimeout(int64_t now) const {
  int64_t until = INT64_MAX;
  for (int64_t deadline : {killed_ ? kill_deadline_ms_ : deadline_ms_, teardown_deadline_ms_}) {
    if (deadline > 0) {
      until = std::min(until, deadline);
    }
  }
  if (until == INT64_MAX) {
    return -1;
  }
  return static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(until - now, 1 << 30)));
}

void Supervisor::readPipes(const bool ready[kSlots], bool drain, int64_t now) {
  std::string data;
  for (Slot s : {kOut, kErr}) {
    bool& eof = s == kOut ? out_eof_ : err_eof_;
    std::string& buffer = s == kOut ? out_buf_ : err_buf_;
    const OutputStream stream = s == kOut ? OutputStream::kStdout : OutputStream::kStderr;
    const int fd = s == kOut ? pipes_.out_r.get() : pipes_.err_r.get();
    bool more = ready[s] || drain;
    while (more && !eof) {
      eof = !readInto(fd, &data);
      sink_.feed(stream, buffer, data, eof || (drain && data.empty()));
      more = drain && !data.empty();
    }
  }
  for (Slot s : {kMsg, kExec}) {
    bool& eof = s == kMsg ? msg_eof_ : exec_eof_;
    MessageReader& reader = s == kMsg ? msg_reader_ : exec_reader_;
    const int fd = s == kMsg ? pipes_.msg_r.get() : pipes_.exec_r.get();
    bool more = ready[s] || drain;
    while (more && !eof) {
      eof = !readInto(fd, &data);
      reader.feed(data.data(), data.size());
      more = drain && !data.empty();
      if (eof && s == kExec) {
        exec_ms_ = now;
      }
    }
    Message m;
    while (reader.next(&m)) {
      onMessage(m);
    }
  }
}

Status Supervisor::abandon(Status status) {
  killAll();
  while (waitpid(monitor_, nullptr, 0) < 0 && errno == EINTR) {
  }
  return status;
}

Result<RunResult> Supervisor::run() {
  while (!done()) {
    pollfd fds[kSlots];
    const int fd_of[kSlots] = {
        out_eof_ ? -1 : pipes_.out_r.get(),         err_eof_ ? -1 : pipes_.err_r.get(),
        msg_eof_ ? -1 : pipes_.msg_r.get(),         exec_eof_ ? -1 : pipes_.exec_r.get(),
        (cancel_ && !killed_) ? cancel_->fd() : -1, init_exited_ ? -1 : init_pidfd_.get(),
        monitor_exited_ ? -1 : monitor_pidfd_.get()};
    for (int i = 0; i < kSlots; ++i) {
      fds[i] = {fd_of[i], POLLIN, 0};  // negative fds are ignored by poll
    }
    int n = poll(fds, kSlots, pollTimeout(monotonicMs()));
    if (n < 0 && errno != EINTR) {
      return abandon(errnoStatus(errno, "sandbox: poll"));
    }
    const int64_t now = monotonicMs();
    if (killed_ && now >= kill_deadline_ms_) {
      return abandon(internalError("sandbox: processes did not exit within " +
                                   std::to_string(kKillGraceMs) + " ms of SIGKILL"));
    }
    if (teardown_deadline_ms_ > 0 && now >= teardown_deadline_ms_) {
      kill(monitor_, SIGKILL);
      return abandon(internalError("sandbox: the monitor did not exit within " +
                                   std::to_string(kKillGraceMs) + " ms of the command's end"));
    }
    // Once the command has ended, a deadline or cancel that falls in the teardown changes nothing.
    if (!killed_ && !init_exited_ && deadline_ms_ > 0 && now >= deadline_ms_) {
      timed_out_ = true;
      killAll();
    }
    if (!killed_ && !init_exited_ && cancel_ &&
        (fds[kCancel].revents != 0 || cancel_->isCancelled())) {
      cancelled_ = true;
      killAll();
    }
    bool ready[kSlots];
    for (int i = 0; i < kSlots; ++i) {
      ready[i] = n > 0 && fds[i].revents != 0;
    }
    readPipes(ready, false, now);
    init_exited_ = init_exited_ || ready[kInit];
    monitor_exited_ = monitor_exited_ || ready[kMonitor] || (!monitor_pidfd_ && msg_eof_);
    if (error_ && !killed_) {
      killAll();  // a failed setup: nothing of the step may keep running
    }
  }
  const bool all[kSlots] = {};
  readPipes(all, true, monotonicMs());
  return finish();
}

Result<RunResult> Supervisor::finish() {
  int status = 0;
  while (waitpid(monitor_, &status, 0) < 0 && errno == EINTR) {
  }
  if (error_) {
    return *error_;
  }
  RunResult result;
  result.timed_out = timed_out_;
  result.cancelled = cancelled_;
  result.last_lines = sink_.lastLines();
  const int64_t end = monotonicMs();
  const int64_t exec = exec_ms_ > 0 ? exec_ms_ : end;
  result.setup_ms = exec - start_ms_;
  result.run_ms = end - exec;
  if (init_end_) {
    if (init_end_->si_code == CLD_EXITED) {
      result.exited = true;
      result.exit_code = init_end_->si_status;
    } else {
      result.signal = init_end_->si_status;
    }
  } else if (killed_) {
    result.signal = SIGKILL;  // the monitor was killed before it could report
  } else {
    return internalError("sandbox: the monitor process ended without a result (wait status " +
                         std::to_string(status) + ")");
  }
  return result;
}

std::vector<std::string> withDefaultPath(const std::vector<std::string>& env) {
  std::vector<std::string> out = env;
  for (const std::string& entry : env) {
    if (entry.rfind("PATH=", 0) == 0) {
      return out;
    }
  }
  out.emplace_back(kDefaultPath);
  return out;
}

Result<LaunchSpec> prepareLaunch(const OverlayRoot& root, const ProcessSpec& proc) {
  if (proc.argv.empty() || proc.argv[0].empty()) {
    return invalidArgument("sandbox: empty command");
  }
  LaunchSpec spec;
  spec.working_dir = proc.working_dir.empty() ? "/" : proc.working_dir;
  if (spec.working_dir.front() != '/') {
    return invalidArgument("sandbox: working dir \"" + spec.working_dir + "\" is not absolute");
  }
  LF_ASSIGN_OR_RETURN(spec.plan, prepareRootPlan(root, proc));
  LF_ASSIGN_OR_RETURN(spec.seccomp, defaultSeccompProgram());
  spec.argv = proc.argv;
  spec.env = withDefaultPath(proc.env);
  spec.user = proc.user;
  spec.cap_mask = defaultCapabilityMask();
  spec.parent_pid = getpid();
  return spec;
}

}  // namespace

Canceller::Canceller() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

Canceller::~Canceller() {
  if (fd_ >= 0) {
    close(fd_);
  }
}

void Canceller::cancel() {
  cancelled_.store(true, std::memory_order_release);
  if (fd_ >= 0) {
    uint64_t one = 1;
    // The counter only saturates after 2^64-2 cancels; nothing to do on failure.
    (void)!write(fd_, &one, sizeof one);
  }
}

Result<RunResult> runInSandbox(const OverlayRoot& root, const ProcessSpec& proc,
                               const OutputCallback& out, const Hooks& hooks, Canceller* cancel) {
  const int64_t start_ms = monotonicMs();
  if (cancel && cancel->isCancelled()) {
    RunResult result;
    result.cancelled = true;
    return result;
  }
  LF_ASSIGN_OR_RETURN(LaunchSpec spec, prepareLaunch(root, proc));
  Pipes pipes;
  LF_RETURN_IF_ERROR(makePipes(&pipes));
  pid_t monitor = fork();
  if (monitor < 0) {
    return errnoStatus(errno, "sandbox: fork");
  }
  if (monitor == 0) {
    monitorMain(spec, ChildFds{pipes.msg_w.get(), pipes.exec_w.get(), pipes.sync_child.get(),
                               pipes.null.get(), pipes.out_w.get(), pipes.err_w.get()});
  }
  for (UniqueFd* fd :
       {&pipes.msg_w, &pipes.exec_w, &pipes.sync_child, &pipes.null, &pipes.out_w, &pipes.err_w}) {
    fd->reset();
  }
  if (hooks.before_start) {
    Status status = hooks.before_start(monitor);
    if (!status.isOk()) {
      kill(monitor, SIGKILL);
      while (waitpid(monitor, nullptr, 0) < 0 && errno == EINTR) {
      }
      return status.withContext("sandbox: before_start hook");
    }
  }
  // If the monitor already failed, the send fails and its error arrives on the msg pipe.
  (void)send(pipes.sync_parent.get(), "g", 1, MSG_NOSIGNAL);
  Supervisor supervisor(monitor, pipes, out, cancel, start_ms, proc.timeout_ms);
  return supervisor.run();
}

}  // namespace lf::worker::sandbox
