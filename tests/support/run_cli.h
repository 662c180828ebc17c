#pragma once

// Runs the `layerfarm` command line in-process with captured output, for CLI tests.

#include <sstream>
#include <string>
#include <vector>

#include "cli/app.h"

namespace lf::testing {

struct CliResult {
  int code = 0;
  std::string out;
  std::string err;
};

inline CliResult runLayerfarm(std::vector<std::string> args) {
  args.insert(args.begin(), "layerfarm");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  std::ostringstream out;
  std::ostringstream err;
  int code = cli::runCli(static_cast<int>(argv.size()), argv.data(), cli::Io{&out, &err});
  return CliResult{code, out.str(), err.str()};
}

}  // namespace lf::testing
