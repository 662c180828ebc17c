#include "common/config/yaml_config.h"

#include <cerrno>
#include <fstream>
#include <sstream>

namespace lf::config {

Status parseYamlConfig(std::string_view yaml, std::string_view source,
                       const std::function<void(const YAML::Node& root, ConfigProblems& p)>& read) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return invalidArgument(std::string(source) + ":" + std::to_string(e.mark.line + 1) + ":" +
                           std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  ConfigProblems problems(source);
  try {
    if (!root.IsMap()) {
      problems.addPlain("must be a YAML map of settings");
      return problems.status();
    }
    read(root, problems);
  } catch (const YAML::Exception& e) {
    problems.addPlain(std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return problems.empty() ? Status() : problems.status();
}

Result<std::string> readTextFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return errnoStatus(errno, path.string());
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace lf::config
