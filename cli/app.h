#pragma once

// The `layerfarm` command line: subcommands are registered on one CLI11 app.
// runCli() never throws; it returns the process exit status (0 ok, 1 failure, 2 usage error).

#include <iosfwd>

namespace CLI {
class App;
}

namespace lf::cli {

// Streams commands write to; tests replace them to capture output.
struct Io {
  std::ostream* out;
  std::ostream* err;
};

int runCli(int argc, const char* const* argv, Io io);

// Each command family registers itself here (one .cpp per family). A command's callback stores
// its exit status in *exit_code.
void registerDockerfileCommands(CLI::App& app, Io io, int* exit_code);
void registerImportCommand(CLI::App& app, Io io, int* exit_code);  // cli/import_command.cpp
// `build` (cli/build_command.cpp): build on the farm through the coordinator's HTTP API.
void registerBuildCommand(CLI::App& app, Io io, int* exit_code);
// `history`, `builds`, `logs`, `cancel`, `workers`, `cache stats` (cli/farm_commands.cpp).
void registerFarmCommands(CLI::App& app, Io io, int* exit_code);

// `dockerfile parse [--json] FILE` (cli/parse_command.cpp).
void addParseCommand(CLI::App& dockerfile_cmd, Io io, int* exit_code);

// `dockerfile expand [--env K=V]... WORD` (cli/expand_command.cpp).
void addExpandCommand(CLI::App& dockerfile_cmd, Io io, int* exit_code);

// `dockerfile plan [--file F] [--target S] [--build-arg K=V]... [--base IMG=sha256:...]... CONTEXT`
// (cli/plan_command.cpp).
void addPlanCommand(CLI::App& dockerfile_cmd, Io io, int* exit_code);

}  // namespace lf::cli
