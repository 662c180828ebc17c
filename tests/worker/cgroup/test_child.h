#pragma once

// Test helpers for cgroup and recovery tests: a forked child that waits for a go signal (so the
// test can put it into a cgroup before it does anything), waiting for exits and conditions with
// deadlines instead of sleeps.

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <thread>

namespace lf::testing {

struct PausedChild {
  pid_t pid = -1;
  int go_fd = -1;  // write one byte to let the child run

  void release() {
    if (go_fd >= 0) {
      [[maybe_unused]] ssize_t n = ::write(go_fd, "g", 1);
      ::close(go_fd);
      go_fd = -1;
    }
  }
};

// Forks a child that blocks until release(), then runs `body` and exits 0. `body` may exec.
template <typename Body>
PausedChild forkPaused(Body body) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return {};
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[1]);
    char c;
    if (::read(fds[0], &c, 1) != 1) {
      ::_exit(100);
    }
    body();
    ::_exit(0);
  }
  ::close(fds[0]);
  return {pid, fds[1]};
}

// Polls `done` until it holds or `deadline` passes.
template <typename Pred>
bool eventually(Pred done, std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// Reaps `pid`; the wait status, or nullopt if it has not exited within `deadline`.
inline std::optional<int> waitExit(pid_t pid,
                                   std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
  int status = 0;
  bool done = eventually(
      [&] {
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        return r == pid || r < 0;
      },
      deadline);
  if (!done) {
    return std::nullopt;
  }
  return status;
}

}  // namespace lf::testing
