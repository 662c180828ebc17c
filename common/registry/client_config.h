#pragma once

// Building a RegistryConfig the way a command-line tool wants it: credentials from the Docker
// config file ($DOCKER_CONFIG/config.json, else ~/.docker/config.json, when present), insecure
// (plain HTTP) registries and a CA bundle from flags.

#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/registry/registry_client.h"

namespace lf::registry {

// The Docker config file path that applies: $DOCKER_CONFIG/config.json or
// $HOME/.docker/config.json (which may not exist).
std::string dockerConfigPath();

// Loads credentials from dockerConfigPath() if the file exists (a malformed file is an error
// naming it), and applies the flags.
Result<RegistryConfig> registryConfigForCli(const std::vector<std::string>& insecure_registries,
                                            const std::string& ca_bundle_path);

}  // namespace lf::registry
