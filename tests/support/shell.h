#pragma once

// Runs a shell command for tests that drive real tools (umoci, skopeo, runc, python3).

#include <string>

namespace lf::testing {

struct ShellResult {
  int code = -1;     // exit status; -1 when the command could not run or was killed
  std::string text;  // stdout and stderr, interleaved
};

// Runs `command` with /bin/sh, stdin from /dev/null.
ShellResult runShell(const std::string& command);

}  // namespace lf::testing
