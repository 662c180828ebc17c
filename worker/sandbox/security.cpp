#include "worker/sandbox/security.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <mutex>
#include <string>

#include "common/layer/unique_fd.h"

namespace lf::worker::sandbox {
namespace {

using layer::UniqueFd;

// Docker's default set: CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP
// SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE.
constexpr int kDefaultCaps[] = {
    CAP_CHOWN,   CAP_DAC_OVERRIDE, CAP_FSETID,           CAP_FOWNER,
    CAP_MKNOD,   CAP_NET_RAW,      CAP_SETGID,           CAP_SETUID,
    CAP_SETFCAP, CAP_SETPCAP,      CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
    CAP_KILL,    CAP_AUDIT_WRITE,
};

// Syscalls the profile answers with EPERM, as Docker's default profile does for a container
// without extra capabilities. Most would fail anyway for lack of a capability; the filter is the
// second wall, and for some (unshare of a user namespace, keyrings, userfaultfd, io_uring) it is
// the only one.
constexpr const char* kBlocked[] = {
    // Kernel modules and kexec (CAP_SYS_MODULE, CAP_SYS_BOOT): reach into the host kernel.
    "init_module", "finit_module", "delete_module", "create_module", "query_module",
    "get_kernel_syms", "kexec_load", "kexec_file_load", "reboot",
    // Mount tables (CAP_SYS_ADMIN): a mount could uncover what the sandbox hides.
    "mount", "umount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick",
    "move_mount", "open_tree", "mount_setattr", "swapon", "swapoff",
    // New namespaces: a user namespace would hand the step a full capability set inside it, a
    // classic stepping stone for kernel exploits. (clone is filtered by flags below.)
    "unshare", "setns",
    // Kernel-global or exploitation-prone facilities Docker blocks by default.
    "bpf", "perf_event_open", "fanotify_init", "lookup_dcookie", "quotactl", "quotactl_fd",
    "syslog", "vhangup", "sethostname", "setdomainname", "userfaultfd", "io_uring_setup",
    "io_uring_enter", "io_uring_register",
    // Keyrings are not namespaced: keys of the host and other steps would be reachable.
    "keyctl", "add_key", "request_key",
    // File handles bypass path-based confinement (the "shocker" escape, CAP_DAC_READ_SEARCH).
    "open_by_handle_at", "name_to_handle_at",
    // Raw I/O ports (CAP_SYS_RAWIO), process accounting (CAP_SYS_PACCT), the clock
    // (CAP_SYS_TIME; adjtimex stays allowed for reading, the kernel checks writes).
    "iopl", "ioperm", "acct", "settimeofday", "stime", "clock_settime", "clock_adjtime",
    // NUMA policy of other processes and pages (CAP_SYS_NICE in Docker's profile).
    "mbind", "set_mempolicy", "move_pages", "migrate_pages",
    // Obsolete interfaces nobody needs and that have had bugs.
    "uselib", "ustat", "sysfs", "_sysctl", "vm86", "vm86old", "nfsservctl",
    // ptrace, process_vm_readv/writev and kcmp stay allowed: Docker allows them on kernels
    // >= 4.8, where ptrace can no longer bypass seccomp.
};

// clone() flags that create namespaces (CLONE_NEWTIME shares bits with the exit signal in
// clone() and can only be used through clone3/unshare, both blocked).
constexpr uint64_t kCloneNamespaceFlags[] = {CLONE_NEWNS,  CLONE_NEWCGROUP, CLONE_NEWUTS,
                                             CLONE_NEWIPC, CLONE_NEWUSER,   CLONE_NEWPID,
                                             CLONE_NEWNET};

// personality(2) values Docker allows: PER_LINUX, PER_LINUX32, UNAME26 (and both), and the
// query 0xffffffff. Everything else (ADDR_NO_RANDOMIZE above all) gets EPERM.
constexpr uint32_t kAllowedPersonalities[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};

Status buildLibseccompPart(std::vector<sock_filter>* out) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr) {
    return internalError("sandbox: seccomp_init failed");
  }
  struct Release {
    scmp_filter_ctx ctx;
    ~Release() { seccomp_release(ctx); }
  } release{ctx};
  // A syscall made through another ABI (i386, x32) would skip every rule below: kill it.
  int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  if (rc != 0) {
    return errnoStatus(-rc, "sandbox: seccomp bad-arch action");
  }
  for (const char* name : kBlocked) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR || nr < 0) {
      continue;  // not a syscall of this architecture
    }
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    if (rc != 0) {
      return errnoStatus(-rc, std::string("sandbox: seccomp rule for ") + name);
    }
  }
  for (uint64_t flag : kCloneNamespaceFlags) {
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
    if (rc != 0) {
      return errnoStatus(-rc, "sandbox: seccomp rule for clone");
    }
  }
  // clone3 passes its flags in memory, out of a filter's reach: ENOSYS makes libc fall back to
  // clone(), which is checked (what Docker does).
  rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  if (rc != 0) {
    return errnoStatus(-rc, "sandbox: seccomp rule for clone3");
  }
  UniqueFd mem(memfd_create("lf-seccomp", MFD_CLOEXEC));
  if (!mem) {
    return errnoStatus(errno, "sandbox: memfd_create for the seccomp program");
  }
  rc = seccomp_export_bpf(ctx, mem.get());
  if (rc != 0) {
    return errnoStatus(-rc, "sandbox: seccomp_export_bpf");
  }
  off_t size = lseek(mem.get(), 0, SEEK_END);
  if (size <= 0 || size % sizeof(sock_filter) != 0) {
    return internalError("sandbox: seccomp_export_bpf wrote " + std::to_string(size) + " bytes");
  }
  out->resize(size / sizeof(sock_filter));
  if (pread(mem.get(), out->data(), size, 0) != size) {
    return errnoStatus(errno, "sandbox: reading the seccomp program back");
  }
  return Status::ok();
}

// libseccomp cannot say "personality unless arg0 is one of these" (one comparison per argument
// and rule), so a few hand-written instructions in front of its program do it. Anything that is
// not personality on the native ABI falls through to libseccomp's part, which checks the
// architecture itself.
std::vector<sock_filter> personalityPrefix(size_t* count) {
  constexpr uint32_t kArchOffset = offsetof(seccomp_data, arch);
  constexpr uint32_t kNrOffset = offsetof(seccomp_data, nr);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  constexpr uint32_t kArg0Low = offsetof(seccomp_data, args);
#else
  constexpr uint32_t kArg0Low = offsetof(seccomp_data, args) + 4;
#endif
  const uint32_t arch = seccomp_arch_native();
  constexpr size_t kValues = std::size(kAllowedPersonalities);
  // Layout: 0 ld arch, 1 jeq, 2 ld nr, 3 jeq, 4 ld arg0, 5.. jeq values, deny, allow, [next].
  const size_t deny = 5 + kValues;
  const size_t allow = deny + 1;
  const size_t next = allow + 1;
  auto jumpTo = [](size_t from, size_t to) { return static_cast<uint8_t>(to - from - 1); };
  std::vector<sock_filter> p;
  p.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kArchOffset));
  p.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 0, jumpTo(1, next)));
  p.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kNrOffset));
  p.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_personality, 0, jumpTo(3, next)));
  p.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kArg0Low));
  for (size_t i = 0; i < kValues; ++i) {
    p.push_back(
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAllowedPersonalities[i], jumpTo(5 + i, allow), 0));
  }
  p.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)));
  p.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  *count = p.size();
  return p;
}

}  // namespace

uint64_t defaultCapabilityMask() {
  uint64_t mask = 0;
  for (int cap : kDefaultCaps) {
    mask |= uint64_t{1} << cap;
  }
  return mask;
}

Result<const std::vector<sock_filter>*> defaultSeccompProgram() {
  static std::mutex mu;
  static std::vector<sock_filter> program;
  static bool built = false;
  std::lock_guard<std::mutex> lock(mu);
  if (!built) {
    std::vector<sock_filter> tail;
    LF_RETURN_IF_ERROR(buildLibseccompPart(&tail));
    size_t prefix_len = 0;
    program = personalityPrefix(&prefix_len);
    program.insert(program.end(), tail.begin(), tail.end());
    if (program.size() > BPF_MAXINSNS) {
      return internalError("sandbox: seccomp program too long");
    }
    built = true;
  }
  return &program;
}

int dropCapabilities(uint64_t mask, const char** what) {
  for (int cap = 0; cap < 64; ++cap) {
    if ((mask >> cap) & 1) {
      continue;
    }
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      if (errno == EINVAL) {
        break;  // past CAP_LAST_CAP of this kernel
      }
      *what = "drop capability from the bounding set";
      return errno;
    }
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    *what = "clear ambient capabilities";
    return errno;
  }
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  data[0].effective = data[0].permitted = static_cast<uint32_t>(mask);
  data[1].effective = data[1].permitted = static_cast<uint32_t>(mask >> 32);
  if (syscall(SYS_capset, &header, data) != 0) {
    *what = "capset";
    return errno;
  }
  return 0;
}

int switchUser(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, const char** what) {
  if (syscall(SYS_setgroups, groups.size(), groups.data()) != 0) {
    *what = "setgroups";
    return errno;
  }
  // Raw syscalls: glibc's wrappers broadcast to all threads (there is one here anyway).
  if (syscall(SYS_setresgid, gid, gid, gid) != 0) {
    *what = "setresgid";
    return errno;
  }
  if (syscall(SYS_setresuid, uid, uid, uid) != 0) {
    *what = "setresuid";
    return errno;
  }
  return 0;
}

int lockDown(const std::vector<sock_filter>& program, const char** what) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    *what = "PR_SET_NO_NEW_PRIVS";
    return errno;
  }
  sock_fprog prog{static_cast<unsigned short>(program.size()),
                  const_cast<sock_filter*>(program.data())};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
    *what = "load the seccomp filter";
    return errno;
  }
  return 0;
}

}  // namespace lf::worker::sandbox
