// `layerfarm dockerfile expand [--env K=V]... [--escape C] WORD`: prints WORD after Docker's word
// expansion (what COPY, ENV, WORKDIR... see), one line. Variables come only from --env (K=V sets
// K; a bare K sets K to the empty string); nothing is read from the process environment, so the
// output is what a Dockerfile with those ENV/ARG values would get. Errors go to stderr, exit 1.

#include <CLI/CLI.hpp>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "cli/app.h"
#include "common/shell/word_expander.h"

namespace lf::cli {
namespace {

struct ExpandOptions {
  std::vector<std::string> env;
  std::string escape = "\\";
  std::string word;
};

int runExpand(const ExpandOptions& opts, Io io) {
  if (opts.escape != "\\" && opts.escape != "`") {
    *io.err << "layerfarm: --escape must be \\ or `\n";
    return 1;
  }
  std::map<std::string, std::string, std::less<>> vars;
  for (const std::string& kv : opts.env) {
    auto eq = kv.find('=');
    std::string name = kv.substr(0, eq);
    if (name.empty()) {
      *io.err << "layerfarm: --env " << kv << ": missing variable name\n";
      return 1;
    }
    vars[name] = eq == std::string::npos ? std::string() : kv.substr(eq + 1);
  }
  shell::Lookup lookup = [&vars](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
  Result<std::string> r = shell::expandWord(opts.word, lookup, opts.escape[0]);
  if (!r.isOk()) {
    *io.err << "layerfarm: expand: " << r.status().message() << "\n";
    return 1;
  }
  *io.out << *r << "\n";
  return 0;
}

}  // namespace

void addExpandCommand(CLI::App& dockerfile_cmd, Io io, int* exit_code) {
  auto opts = std::make_shared<ExpandOptions>();
  CLI::App* cmd = dockerfile_cmd.add_subcommand(
      "expand", "Print a word after Docker's variable expansion ($VAR, ${VAR:-x}, quotes)");
  cmd->add_option("--env,-e", opts->env, "Set a variable for the expansion: K=V (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--escape", opts->escape, "The Dockerfile escape character: \\ or `");
  cmd->add_option("WORD", opts->word, "The word to expand")->required();
  cmd->callback([opts, io, exit_code] { *exit_code = runExpand(*opts, io); });
}

}  // namespace lf::cli
