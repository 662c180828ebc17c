#pragma once

// The /etc/hosts and /etc/resolv.conf a sandbox gets, the way Docker writes them. Pure functions
// (no I/O), internal to worker/sandbox.

#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace lf::worker::sandbox {

// localhost lines (IPv4 with the hostname, as BuildKit's sandbox has it), Docker's IPv6 lines,
// then one "ip\tname" line per "name:ip" of `extra_hosts` (split at the first ':', so IPv6
// addresses work). A malformed entry is kInvalidArgument naming it.
Result<std::string> makeHostsFile(std::string_view hostname,
                                  const std::vector<std::string>& extra_hosts);

// The host's resolv.conf adapted for a sandbox with its own network namespace: nameserver lines
// for loopback addresses (127.0.0.0/8, ::1) are dropped, since they would point at the
// sandbox's own loopback; when no nameserver remains, Google's public resolvers are added (what
// Docker does). With `host_network` the content is kept as is.
std::string makeResolvConf(std::string_view host_content, bool host_network);

}  // namespace lf::worker::sandbox
