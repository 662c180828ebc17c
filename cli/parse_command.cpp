// `layerfarm dockerfile parse [--json] FILE`: parses a Dockerfile and prints its instructions,
// as a JSON array (--json) or one readable line per instruction. Parse errors go to stderr with
// file:line:column and exit status 1.

#include <CLI/CLI.hpp>
#include <fstream>
#include <iterator>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>

#include "cli/app.h"
#include "common/dockerfile/ast_json.h"
#include "common/dockerfile/parser.h"

namespace lf::cli {
namespace {

struct ParseOptions {
  std::string file;
  bool json = false;
};

int runParse(const ParseOptions& opts, Io io) {
  std::ifstream in(opts.file, std::ios::binary);
  if (!in) {
    *io.err << "layerfarm: cannot read " << opts.file << "\n";
    return 1;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) {
    *io.err << "layerfarm: error reading " << opts.file << "\n";
    return 1;
  }
  Result<dockerfile::Dockerfile> df = dockerfile::parse(buf.str(), opts.file);
  if (!df.isOk()) {
    *io.err << df.status().message() << "\n";
    return 1;
  }
  if (opts.json) {
    *io.out << dockerfile::dumpJson(*df, 2) << "\n";
  } else {
    *io.out << dockerfile::toText(*df);
  }
  return 0;
}

}  // namespace

void addParseCommand(CLI::App& dockerfile_cmd, Io io, int* exit_code) {
  auto opts = std::make_shared<ParseOptions>();
  CLI::App* cmd = dockerfile_cmd.add_subcommand(
      "parse", "Parse a Dockerfile and print its instructions (errors name file:line:column)");
  cmd->add_flag("--json", opts->json, "Print the instructions as a JSON array");
  cmd->add_option("FILE", opts->file, "The Dockerfile to parse")->required();
  cmd->callback([opts, io, exit_code] { *exit_code = runParse(*opts, io); });
}

}  // namespace lf::cli
