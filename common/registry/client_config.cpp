#include "common/registry/client_config.h"

#include <stdlib.h>

#include <filesystem>

namespace lf::registry {

std::string dockerConfigPath() {
  if (const char* dir = getenv("DOCKER_CONFIG"); dir != nullptr && *dir != '\0') {
    return (std::filesystem::path(dir) / "config.json").string();
  }
  const char* home = getenv("HOME");
  return (std::filesystem::path(home != nullptr ? home : "/") / ".docker" / "config.json").string();
}

Result<RegistryConfig> registryConfigForCli(const std::vector<std::string>& insecure_registries,
                                            const std::string& ca_bundle_path) {
  RegistryConfig config;
  config.insecure_registries = insecure_registries;
  config.http.ca_bundle_path = ca_bundle_path;
  std::string path = dockerConfigPath();
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    LF_RETURN_IF_ERROR(config.credentials.loadDockerConfig(path));
  }
  return config;
}

}  // namespace lf::registry
