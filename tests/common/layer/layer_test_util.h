#pragma once

// Helpers shared by the layer tests: running shell commands, describing a directory tree as text
// (so two trees compare with one EXPECT_EQ), and reading whole files.

#include <filesystem>
#include <map>
#include <string>

namespace lf::layer::testing {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs `command` with /bin/sh; stdin is /dev/null.
CommandResult runCommand(const std::string& command);

// The python3 to run: /usr/bin/python3 when present (fast start), else python3 from PATH.
std::string pythonBinary();

// Quotes for /bin/sh.
std::string shellQuote(const std::string& s);

// One line per entry, sorted by path: "path type mode uid:gid size sha256|->target [xattrs]".
// Directory mtimes are left out (they change when children change); file mtimes are included
// when `with_mtime`.
std::string describeTree(const std::filesystem::path& root, bool with_mtime = true);

// Whole-file bytes, or "" when unreadable.
std::string slurp(const std::filesystem::path& file);

// True when the filesystem at `dir` accepts user.* xattrs.
bool supportsUserXattrs(const std::filesystem::path& dir);

// Builds a tar with python3's tarfile: `body` is Python run with `tarfile`, `io` imported and
// an open TarFile `t` (format PAX) writing to `out`. Returns false (and fails the test) on error.
bool makeTarWithPython(const std::filesystem::path& out, const std::string& body,
                       const std::string& mode = "w");

}  // namespace lf::layer::testing
