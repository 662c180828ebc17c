#pragma once

// Privileges of the sandboxed command: Docker's default capability set and a seccomp profile
// modelled on Docker's default one. Internal to worker/sandbox.
//
// The seccomp program is built once per process with libseccomp (in the parent, before any fork)
// and loaded in the sandbox init with a plain prctl, so the forked child never calls into
// libseccomp. Thread-safe.

#include <linux/filter.h>
#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "common/base/status.h"

namespace lf::worker::sandbox {

// Docker's default capabilities (moby oci/caps/defaults.go) as a mask: 0xa80425fb.
uint64_t defaultCapabilityMask();

// The BPF program of the default profile for this architecture, built on first use.
Result<const std::vector<sock_filter>*> defaultSeccompProgram();

// In the sandbox init, async-signal-safe (raw syscalls only); each returns 0 or an errno value
// and sets *what to a static description of the failed step.
//
// Drops every capability outside `mask` from the bounding set and sets permitted = effective =
// mask, inheritable = ambient = empty (the CVE-2022-24769 fix Docker and runc ship). The process
// must still switch its ids afterwards; a non-zero uid then loses permitted and effective caps
// (no PR_SET_KEEPCAPS), which is Docker's behaviour for USER with a non-root user.
int dropCapabilities(uint64_t mask, const char** what);

// Sets the groups and the real/effective/saved ids.
int switchUser(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, const char** what);

// PR_SET_NO_NEW_PRIVS and the seccomp program. Last step before execve.
int lockDown(const std::vector<sock_filter>& program, const char** what);

}  // namespace lf::worker::sandbox
