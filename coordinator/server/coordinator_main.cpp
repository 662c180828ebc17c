// `layerfarm-coordinator --config coordinator.yaml`: the farm's coordinator process. Wires the
// config, the RocksDB state, the blob store, the registry client, the worker server (WebSocket,
// scheduler), the build manager and the HTTP API together; stops them cleanly on SIGTERM/SIGINT.
// No Beast here.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>

#include "common/blob/directory_blob_store.h"
#include "common/registry/registry_client.h"
#include "coordinator/api/http_server.h"
#include "coordinator/builds/base_resolver.h"
#include "coordinator/builds/build_manager.h"
#include "coordinator/metrics/coordinator_metrics.h"
#include "coordinator/server/coordinator_config.h"
#include "coordinator/state/state_store.h"
#include "coordinator/workers/worker_server.h"

namespace lf::coordinator {
namespace {

namespace fs = std::filesystem;

// Job ids must not repeat across restarts (a worker may still report an old job): each start
// gets its own prefix.
std::string jobIdPrefix() {
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  std::random_device random;
  char buf[48];
  std::snprintf(buf, sizeof buf, "job-%llx%04x-", static_cast<unsigned long long>(now),
                random() & 0xffff);
  return buf;
}

Result<std::unique_ptr<registry::RegistryClient>> makeRegistryClient(
    const CoordinatorConfig& config) {
  registry::RegistryConfig rc;
  rc.insecure_registries = config.insecure_registries;
  if (!config.docker_config.empty()) {
    LF_RETURN_IF_ERROR(rc.credentials.loadDockerConfig(config.docker_config.string()));
  }
  return registry::RegistryClient::create(std::move(rc));
}

// Blocks SIGTERM/SIGINT in every thread (set before any thread starts) and waits for one.
int waitForSignal(const sigset_t& signals) {
  int sig = 0;
  sigwait(&signals, &sig);
  return sig;
}

int run(const CoordinatorConfig& config) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  auto fail = [](const Status& status) {
    spdlog::critical("coordinator: {}", status.message());
    return 1;
  };
  std::error_code ec;
  fs::create_directories(config.data_dir, ec);
  if (ec) return fail(invalidArgument("data_dir " + config.data_dir.string() + ": " + ec.message()));

  StateStoreOptions state_options;
  state_options.dir = config.data_dir / "state";
  auto state = StateStore::open(state_options);
  if (!state.isOk()) return fail(state.status().withContext("state"));

  blob::DirectoryBlobStoreOptions blob_options;
  blob_options.create = true;
  auto blobs = blob::DirectoryBlobStore::open(config.blob_dir, blob_options);
  if (!blobs.isOk()) return fail(blobs.status().withContext("blob_store.directory"));

  auto registry = makeRegistryClient(config);
  if (!registry.isOk()) return fail(registry.status().withContext("registry"));

  auto platform = plan::Platform::parse(config.platform);
  if (!platform.isOk()) return fail(platform.status().withContext("platform"));

  CoordinatorMetrics metrics;

  WorkerServerOptions worker_options;
  worker_options.listen_address = config.worker_listen.host;
  worker_options.port = config.worker_listen.port;
  worker_options.tokens = config.worker_tokens;
  worker_options.scheduler.lease = Duration(config.lease_ms);
  worker_options.scheduler.heartbeat_timeout = Duration(config.heartbeat_timeout_ms);
  worker_options.scheduler.max_attempts = config.max_attempts;
  worker_options.scheduler.job_id_prefix = jobIdPrefix();
  worker_options.heartbeat_interval_ms = config.heartbeat_interval_ms;
  worker_options.metrics = &metrics;
  WorkerServer workers(worker_options);

  BaseResolverOptions resolver_options;
  resolver_options.resolution_ttl = std::chrono::milliseconds(config.resolution_ttl_ms);
  BaseResolver resolver(**registry, **blobs, resolver_options);

  BuildManagerOptions build_options;
  build_options.data_dir = config.data_dir;
  build_options.default_platform = *platform;
  build_options.max_concurrent_builds = config.max_concurrent_builds;
  switch (config.layer_compression) {
    case layer::Compression::kNone:
      build_options.compression = layerfarm::v1::COMPRESSION_NONE;
      break;
    case layer::Compression::kGzip:
      build_options.compression = layerfarm::v1::COMPRESSION_GZIP;
      break;
    case layer::Compression::kZstd:
      build_options.compression = layerfarm::v1::COMPRESSION_ZSTD;
      break;
  }
  build_options.push_compression = config.push_compression;
  BuildManager builds(BuildManagerDeps{.state = **state,
                                       .blobs = **blobs,
                                       .resolver = &resolver,
                                       .broker = workers,
                                       .registry = registry->get(),
                                       .metrics = &metrics},
                      build_options);

  if (Status s = workers.start(); !s.isOk()) return fail(s.withContext("worker_listen"));
  auto recovered = builds.recover();
  if (!recovered.isOk()) return fail(recovered.status().withContext("recovering builds"));
  if (!recovered->builds.empty() || !recovered->lost_job_ids.empty()) {
    spdlog::info("coordinator recovered builds={} lost_jobs={}", recovered->builds.size(),
                 recovered->lost_job_ids.size());
  }

  HttpServerOptions http_options;
  http_options.listen_address = config.listen.host;
  http_options.port = config.listen.port;
  http_options.clients = config.clients;
  http_options.max_context_bytes = config.max_context_bytes;
  HttpServer http(http_options, builds, metrics);
  if (Status s = http.start(); !s.isOk()) return fail(s.withContext("listen"));

  spdlog::info("coordinator ready api={}:{} workers={}:{} data_dir={} blobs={}",
               config.listen.host, http.port(), config.worker_listen.host, workers.port(),
               config.data_dir.string(), config.blob_dir.string());
  int sig = waitForSignal(signals);
  spdlog::info("coordinator stopping ({})", sig == SIGINT ? "SIGINT" : "SIGTERM");
  http.stop();
  builds.stop();
  workers.stop();
  spdlog::info("coordinator stopped");
  return 0;
}

}  // namespace
}  // namespace lf::coordinator

int main(int argc, char** argv) {
  CLI::App app{"layerfarm coordinator: plans builds, answers cached steps, schedules the rest "
               "on workers, assembles and pushes images"};
  std::string config_path;
  std::string log_level = "info";
  app.add_option("--config", config_path, "coordinator.yaml")->required();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::from_str(log_level));
  auto config = lf::coordinator::loadCoordinatorConfig(config_path);
  if (!config.isOk()) {
    std::cerr << "layerfarm-coordinator: " << config.status().message() << "\n";
    return 2;
  }
  return lf::coordinator::run(*config);
}
