#include "tests/support/shell.h"

#include <stdio.h>
#include <sys/wait.h>

#include <array>

namespace lf::testing {

ShellResult runShell(const std::string& command) {
  ShellResult out;
  std::string full = "(" + command + ") </dev/null 2>&1";
  FILE* pipe = ::popen(full.c_str(), "r");
  if (pipe == nullptr) {
    return out;
  }
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) {
    out.text.append(buf.data(), n);
  }
  int status = ::pclose(pipe);
  out.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

}  // namespace lf::testing
