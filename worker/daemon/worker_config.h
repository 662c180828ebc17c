#pragma once

// WorkerConfig: the worker daemon's configuration, `layerfarm-worker --config worker.yaml`.
//
// Parsed in one place (parseWorkerConfig) from YAML into this plain struct. Defaults live in the
// member initializers. Unknown keys are errors (a typo must not silently fall back to a
// default), and every problem of a file is reported at once, one per line, each naming the file,
// line and key: "worker.yaml:7: slots: must be between 1 and 1024, got 0".
//
// Example:
//   coordinator: ws://coordinator.farm:7070/v1/workers
//   token_file: /run/secrets/layerfarm-worker-token
//   slots: 4
//   labels: {zone: eu-west-1a, disk: ssd}
//   state_dir: /var/lib/layerfarm/worker
//   blob_store: {directory: /mnt/layerfarm/blobs}
//   layer_budget_bytes: 53687091200
//   default_limits: {timeout_ms: 3600000, memory_bytes: 8589934592}
//
// Thread-safety: plain value. Errors: kInvalidArgument listing every problem; kNotFound /
// kPermissionDenied when the file (or token_file) cannot be read.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "common/base/status.h"

namespace lf::worker {

struct WorkerLimitsConfig {
  // Wall-clock limit of a step whose spec says 0, in milliseconds. 0 = unlimited.
  // Default: 2 hours.
  int64_t timeout_ms = 2 * 60 * 60 * 1000;
  // Memory limit (memory+swap) of a step whose spec says 0, in bytes. 0 = unlimited.
  int64_t memory_bytes = 0;
  // Processes and threads of a step whose spec says 0. 0 = unlimited.
  int64_t pids_max = 0;
};

struct WorkerConfig {
  // Key `coordinator` (required): the coordinator's worker endpoint, "ws://host:port/path".
  // The path defaults to "/" when absent; the port to 80. (wss:// is not supported yet.)
  std::string coordinator_url;
  // Parsed from coordinator_url.
  std::string coordinator_host;
  uint16_t coordinator_port = 80;
  std::string coordinator_path = "/";

  // Key `token` or `token_file` (exactly one is required): the bearer token sent in the
  // WebSocket handshake (`Authorization: Bearer <token>`). token_file is read at parse time;
  // surrounding whitespace (a trailing newline) is stripped. The token must be non-empty
  // printable ASCII without spaces.
  std::string token;
  std::string token_file;

  // Key `worker_id`: the worker's name in the farm, unique per farm; [A-Za-z0-9._-], 1..128
  // characters. Default: the host name.
  std::string worker_id;

  // Key `slots`: steps run at once at most (the size of the step thread pool), 1..1024.
  // Default: 2.
  uint32_t slots = 2;

  // Key `labels`: free-form key/value strings reported to the coordinator (scheduling
  // constraints). Default: none.
  std::map<std::string, std::string> labels;

  // Key `state_dir`: the worker's state (layer store in layers/, scratch in steps/, RUN cache
  // mounts in cache/). Must be a local filesystem. Default: /var/lib/layerfarm/worker.
  std::filesystem::path state_dir = "/var/lib/layerfarm/worker";

  // Key `blob_store.directory` (required): the directory blob store shared with the
  // coordinator (an NFS / ReadWriteMany volume when workers run on several hosts).
  std::filesystem::path blob_dir;

  // Key `layer_budget_bytes`: bytes of unpacked layers kept before LRU eviction. Pinned layers
  // are never evicted, so the store may exceed it while steps run. Default: 20 GiB.
  uint64_t layer_budget_bytes = 20ull << 30;

  // Key `allow_host_network`: whether RUN --network=host is allowed. Default: false.
  bool allow_host_network = false;

  // Key `default_limits` (a map with timeout_ms, memory_bytes, pids_max): see above.
  WorkerLimitsConfig default_limits;

  // Key `cgroups`: whether steps run in per-step cgroups (limits, kill-all, OOM detection).
  // false only where no cgroup is writable; steps with limits are then refused. Default: true.
  bool use_cgroups = true;
  // Key `cgroup_parent`: relative cgroup path holding this worker's step cgroups; must belong
  // to this worker process alone (everything under it is killed at start-up).
  // Default: "layerfarm/<worker_id>".
  std::string cgroup_parent;

  // Key `heartbeat_interval_ms`: how often the worker sends a Heartbeat when the coordinator's
  // Registered does not say, in milliseconds, 100..600000. Default: 5000.
  uint32_t heartbeat_interval_ms = 5000;

  // Keys `reconnect_backoff_min_ms` / `reconnect_backoff_max_ms`: the wait before reconnecting
  // after a lost or failed connection starts at min, doubles per failure up to max, with
  // +-20 % jitter; a connection that registered resets it. min 10..max; max <= 3600000.
  // Defaults: 500 and 30000.
  uint32_t reconnect_backoff_min_ms = 500;
  uint32_t reconnect_backoff_max_ms = 30000;

  // Key `connect_timeout_ms`: deadline for TCP connect + WebSocket handshake + Registered.
  // Default: 10000.
  uint32_t connect_timeout_ms = 10000;

  // Key `log_queue_bytes`: output bytes queued for the coordinator before a step's output is
  // held back (its log callback blocks, so the step's pipe fills and the step waits).
  // Default: 8 MiB.
  uint64_t log_queue_bytes = 8ull << 20;
  // Key `log_block_ms`: how long a step's output is held back at most while the queue is full;
  // after that the line is dropped and counted (JobLog.dropped_lines), so a coordinator that
  // stopped reading cannot hang a step forever. Default: 30000.
  uint32_t log_block_ms = 30000;

  // Key `drain_deliver_timeout_ms`: when draining, how long the worker keeps trying to deliver
  // results after its last step finished (reconnecting if needed) before it exits anyway.
  // Default: 60000.
  uint32_t drain_deliver_timeout_ms = 60000;
};

// Parses YAML text; `source` names it in errors (the file path).
Result<WorkerConfig> parseWorkerConfig(std::string_view yaml, std::string_view source);

// Reads and parses a file.
Result<WorkerConfig> loadWorkerConfig(const std::filesystem::path& path);

}  // namespace lf::worker
