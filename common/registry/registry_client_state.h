#pragma once

// RegistryClient's shared mutable state, seen by registry_client.cpp and registry_blobs.cpp only.

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <string>

#include "common/registry/registry_client.h"

namespace lf::registry {

struct RegistryClient::State {
  struct HostAuth {
    std::optional<Challenge> challenge;
    std::map<std::string, BearerToken> tokens;  // by the space-joined sorted scopes
  };
  std::mutex mu;
  std::mutex token_fetch_mu;  // held while fetching a token; never while holding mu
  std::map<std::string, HostAuth> hosts;
  std::mt19937_64 rng{std::random_device{}()};
  std::atomic<uint64_t> requests{0}, retries{0}, token_fetches{0}, blob_uploads{0}, blob_mounts{0},
      upload_chunks{0}, resumed_downloads{0};
};

}  // namespace lf::registry
