#pragma once

// CoordinatorMetrics: the coordinator's Prometheus metrics (served at /metrics by the HTTP API,
// coordinator/api). One instance per coordinator; the build manager and the worker server update
// it, the HTTP server serialises it.
//
// Metric names (all prefixed layerfarm_):
//   cache_lookups_total{kind}          step cache lookups, kind = RUN|COPY|ADD
//   cache_hits_total{kind}             lookups answered from the index
//   jobs_total{outcome}                jobs ended: succeeded|failed|requeued|cancelled
//   context_file_bytes_total{source}   context file bytes: received (uploaded) | reused (already
//                                      stored when the manifest was posted)
//   jobs_submitted_total, jobs_deduplicated_total
//   queue_depth                        jobs waiting for a worker
//   jobs_running                       jobs on workers
//   workers, worker_slots_free
//   builds_total{state}                builds finished: succeeded|failed|cancelled
//   builds_running
//   build_duration_seconds{state}      histogram, submit to finish
//   http_requests_total{code}          HTTP API answers by status class (2xx, 4xx, 5xx)
//   layer_variant_compressed_bytes_total  uncompressed layer bytes compressed at push/export
//   layer_variant_reuses_total         pushed/exported layers whose compressed variant existed
//
// Thread-safety: every method is thread-safe (prometheus-cpp metrics are atomics).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace prometheus {
class Registry;
class Counter;
class Gauge;
template <typename T>
class Family;
class Histogram;
}  // namespace prometheus

namespace lf::coordinator {

class CoordinatorMetrics {
 public:
  CoordinatorMetrics();
  ~CoordinatorMetrics();
  CoordinatorMetrics(const CoordinatorMetrics&) = delete;
  CoordinatorMetrics& operator=(const CoordinatorMetrics&) = delete;

  void cacheLookup(std::string_view kind, bool hit);
  void jobEnded(std::string_view outcome);
  // Context file bytes uploaded by clients, and found already stored (not sent again).
  void contextFileBytes(uint64_t received, uint64_t reused);
  void jobSubmitted(bool deduplicated);
  void setQueue(size_t ready, size_t running);
  void setWorkers(size_t workers, size_t free_slots);
  void buildStarted();
  void buildFinished(std::string_view state, double seconds);
  void httpRequest(unsigned status);
  // A layer compressed for push/export (coordinator/assembly/layer_variants.h), and a recorded
  // variant reused instead.
  void layerVariantCompressed(uint64_t uncompressed_bytes);
  void layerVariantReused();

  // The Prometheus text exposition format (version 0.0.4).
  std::string serialize() const;
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

 private:
  struct Families;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> f_;
};

}  // namespace lf::coordinator
