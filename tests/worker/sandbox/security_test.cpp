// Tests of the seccomp program and the capability mask, in a forked child (no root needed:
// no_new_privs makes loading a filter unprivileged).

#include "worker/sandbox/security.h"

#include <gtest/gtest.h>
#include <linux/sched.h>
#include <sched.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace lf::worker::sandbox {
namespace {

// Runs `probe` in a child under the default profile; returns its exit code (or 100 + signal).
template <typename Fn>
int underProfile(Fn probe) {
  auto program = defaultSeccompProgram();
  EXPECT_TRUE(program.isOk()) << program.status().toString();
  if (!program.isOk()) {
    return -1;
  }
  pid_t pid = fork();
  if (pid == 0) {
    const char* what = "";
    if (lockDown(**program, &what) != 0) {
      _exit(99);
    }
    _exit(probe());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

TEST(SecurityTest, DefaultCapabilityMaskIsDockers) {
  EXPECT_EQ(defaultCapabilityMask(), 0xa80425fbull);
}

TEST(SecurityTest, PersonalityAllowsOnlyDockersValues) {
  EXPECT_EQ(underProfile([] {
              if (personality(0xffffffff) < 0) return 1;
              if (personality(PER_LINUX32) < 0) return 2;
              if (personality(PER_LINUX) < 0) return 3;
              if (personality(PER_LINUX | ADDR_NO_RANDOMIZE) != -1 || errno != EPERM) return 4;
              if (personality(READ_IMPLIES_EXEC) != -1 || errno != EPERM) return 5;
              return 0;
            }),
            0);
}

TEST(SecurityTest, NamespacesAreBlockedButForkWorks) {
  EXPECT_EQ(underProfile([] {
              if (unshare(CLONE_NEWUSER) != -1 || errno != EPERM) return 1;
              long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
              if (r == 0) _exit(0);
              if (r != -1 || errno != EPERM) return 2;
              clone_args args{};
              args.exit_signal = SIGCHLD;
              r = syscall(SYS_clone3, &args, sizeof args);
              if (r == 0) _exit(0);
              if (r != -1 || errno != ENOSYS) return 3;
              pid_t child = fork();  // glibc falls back to clone()
              if (child == 0) _exit(7);
              int status = 0;
              if (child < 0 || waitpid(child, &status, 0) != child || WEXITSTATUS(status) != 7)
                return 4;
              return 0;
            }),
            0);
}

TEST(SecurityTest, KeyringsAndMountsAreBlocked) {
  EXPECT_EQ(underProfile([] {
              if (syscall(SYS_keyctl, 0, 0, 0, 0, 0) != -1 || errno != EPERM) return 1;
              if (syscall(SYS_mount, "none", "/", "tmpfs", 0, 0) != -1 || errno != EPERM) return 2;
              if (syscall(SYS_userfaultfd, 0) != -1 || errno != EPERM) return 3;
              return 0;
            }),
            0);
}

}  // namespace
}  // namespace lf::worker::sandbox
