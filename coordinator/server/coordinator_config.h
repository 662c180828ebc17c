#pragma once

// CoordinatorConfig: `layerfarm-coordinator --config coordinator.yaml`.
//
// Parsed in one place from YAML (common/config/yaml_config.h: unknown keys are errors, every
// problem reported at once with file:line). Defaults live in the member initializers.
//
// Example (deploy/local/coordinator.yaml is a complete one):
//   listen: 127.0.0.1:7070            # HTTP API (docs/http-api.md)
//   worker_listen: 127.0.0.1:7071     # workers dial ws://HOST:PORT/v1/workers
//   data_dir: /var/lib/layerfarm/coordinator   # RocksDB state in state/, exports in exports/
//   blob_store: {directory: /var/lib/layerfarm/blobs}  # shared with the workers
//   platform: linux/amd64
//   worker_token_file: /run/secrets/worker-token
//   clients:
//     - {token_file: /run/secrets/team-a, tenant: team-a, namespaces: [team-a]}
//     - {token: s3cret, tenant: ops, admin: true}
//   registry: {insecure: ["127.0.0.1:5000"], docker_config: /root/.docker/config.json}
//   scheduler: {lease_ms: 30000, heartbeat_timeout_ms: 15000, max_attempts: 3}
//   builds: {max_concurrent: 64, resolution_ttl_ms: 60000}
//   max_context_bytes: 4294967296
//   layer_compression: none           # layers workers store while building: none|gzip|zstd
//   push_compression: gzip            # layers pushed/exported: gzip|zstd
//
// Thread-safety: plain value. Errors: kInvalidArgument listing every problem; kNotFound /
// kPermissionDenied when the file (or a token file) cannot be read.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/layer/compression.h"
#include "coordinator/api/http_server.h"

namespace lf::coordinator {

struct HostPort {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string toString() const;
};

struct CoordinatorConfig {
  // Key `listen`: the HTTP API's "address:port" (port 0 = ephemeral). Default 127.0.0.1:7070.
  HostPort listen{"127.0.0.1", 7070};
  // Key `worker_listen`: the workers' WebSocket endpoint "address:port". Default 127.0.0.1:7071.
  HostPort worker_listen{"127.0.0.1", 7071};
  // Key `data_dir` (required): state/ (RocksDB) and exports/ live here.
  std::filesystem::path data_dir;
  // Key `blob_store.directory` (required): the directory blob store shared with the workers.
  std::filesystem::path blob_dir;
  // Key `platform`: what builds produce unless they ask otherwise. Default linux/amd64.
  std::string platform = "linux/amd64";
  // Key `worker_tokens` (a list) and/or `worker_token_file`: bearer tokens workers must present.
  // None = workers are not authenticated (only sensible on loopback).
  std::vector<std::string> worker_tokens;
  // Key `clients`: API clients (token or token_file, tenant, namespaces, admin). None = no
  // authentication: every caller is tenant "default" and may push anywhere but library/.
  std::vector<ApiClient> clients;
  // Key `registry.insecure`: registries spoken to over plain HTTP.
  std::vector<std::string> insecure_registries;
  // Key `registry.docker_config`: credentials (Docker's config.json). Default: none.
  std::filesystem::path docker_config;
  // Key `scheduler`.
  int64_t lease_ms = 30'000;
  int64_t heartbeat_timeout_ms = 15'000;
  int max_attempts = 3;
  // Key `heartbeat_interval_ms`: what workers are told to use. Default 2000.
  uint32_t heartbeat_interval_ms = 2000;
  // Key `builds`.
  int max_concurrent_builds = 64;
  int64_t resolution_ttl_ms = 60'000;
  // Key `resume_builds`: after a restart, resume builds that were running (true) or fail them
  // with a stated reason (false). Default true.
  bool resume_builds = true;
  // Key `max_context_bytes`. Default 4 GiB.
  uint64_t max_context_bytes = 4ull << 30;
  // Key `layer_compression`: how workers store the layers they build, `none`, `gzip` or `zstd`.
  // Default none: a rebuild does not spend time compressing (as BuildKit, which keeps snapshots
  // uncompressed); layers are compressed once when an image is pushed or exported.
  layer::Compression layer_compression = layer::Compression::kNone;
  // Key `push_compression`: the compression of uncompressed layers in pushed and exported images,
  // `gzip` or `zstd`. Default gzip (every registry and runtime reads it). Each layer is
  // compressed once and the result remembered (coordinator/assembly/layer_variants.h).
  layer::Compression push_compression = layer::Compression::kGzip;
};

Result<CoordinatorConfig> parseCoordinatorConfig(std::string_view yaml, std::string_view source);
Result<CoordinatorConfig> loadCoordinatorConfig(const std::filesystem::path& path);

}  // namespace lf::coordinator
