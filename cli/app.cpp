#include "cli/app.h"

#include <CLI/CLI.hpp>

#include <iostream>

namespace lf::cli {

int runCli(int argc, const char* const* argv, Io io) {
  CLI::App app{"layerfarm: a shared, distributed `docker build` for an organisation"};
  app.name("layerfarm");
  app.require_subcommand(1);
  app.set_version_flag("--version", "layerfarm 0.1.0");

  int exit_code = 0;
  registerDockerfileCommands(app, io, &exit_code);
  registerImportCommand(app, io, &exit_code);
  registerBuildCommand(app, io, &exit_code);
  registerFarmCommands(app, io, &exit_code);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 reports usage errors and --help through exceptions; they stop here.
    int code = app.exit(e, *io.out, *io.err);
    return code == 0 ? 0 : 2;
  }
  return exit_code;
}

}  // namespace lf::cli
