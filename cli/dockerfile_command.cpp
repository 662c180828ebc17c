#include <CLI/CLI.hpp>

#include "cli/app.h"

namespace lf::cli {

// `layerfarm dockerfile parse|expand|plan`: filled in as the front end lands.
void registerDockerfileCommands(CLI::App& app, Io io, int* exit_code) {
  auto* df = app.add_subcommand("dockerfile", "Inspect how layerfarm reads a Dockerfile");
  df->require_subcommand(1);
  addParseCommand(*df, io, exit_code);
  addExpandCommand(*df, io, exit_code);
  addPlanCommand(*df, io, exit_code);
  (void)io;
  (void)exit_code;
}

}  // namespace lf::cli
