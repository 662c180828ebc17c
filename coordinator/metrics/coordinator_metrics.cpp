#include "coordinator/metrics/coordinator_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <string>

namespace lf::coordinator {

struct CoordinatorMetrics::Families {
  prometheus::Family<prometheus::Counter>* lookups;
  prometheus::Family<prometheus::Counter>* hits;
  prometheus::Family<prometheus::Counter>* jobs;
  prometheus::Counter* context_received;
  prometheus::Counter* context_reused;
  prometheus::Counter* submitted;
  prometheus::Counter* deduplicated;
  prometheus::Gauge* queue_depth;
  prometheus::Gauge* jobs_running;
  prometheus::Gauge* workers;
  prometheus::Gauge* free_slots;
  prometheus::Family<prometheus::Counter>* builds;
  prometheus::Gauge* builds_running;
  prometheus::Family<prometheus::Histogram>* build_seconds;
  prometheus::Family<prometheus::Counter>* http;
  prometheus::Counter* variant_bytes;
  prometheus::Counter* variant_reuses;
};

CoordinatorMetrics::CoordinatorMetrics()
    : registry_(std::make_shared<prometheus::Registry>()), f_(std::make_unique<Families>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  auto& r = *registry_;
  f_->lookups = &BuildCounter()
                     .Name("layerfarm_cache_lookups_total")
                     .Help("Step cache lookups by instruction kind")
                     .Register(r);
  f_->hits = &BuildCounter()
                  .Name("layerfarm_cache_hits_total")
                  .Help("Step cache lookups answered from the layer-cache index")
                  .Register(r);
  f_->jobs = &BuildCounter()
                  .Name("layerfarm_jobs_total")
                  .Help("Layer jobs ended, by outcome")
                  .Register(r);
  auto& context_bytes = BuildCounter()
                            .Name("layerfarm_context_file_bytes_total")
                            .Help("Build context file bytes received from clients, and found "
                                  "already stored when a context manifest was posted")
                            .Register(r);
  f_->context_received = &context_bytes.Add({{"source", "received"}});
  f_->context_reused = &context_bytes.Add({{"source", "reused"}});
  f_->submitted = &BuildCounter()
                       .Name("layerfarm_jobs_submitted_total")
                       .Help("Layer jobs created")
                       .Register(r)
                       .Add({});
  f_->deduplicated = &BuildCounter()
                          .Name("layerfarm_jobs_deduplicated_total")
                          .Help("Job submissions attached to a job another build already runs")
                          .Register(r)
                          .Add({});
  f_->queue_depth = &BuildGauge()
                         .Name("layerfarm_queue_depth")
                         .Help("Layer jobs waiting for a worker")
                         .Register(r)
                         .Add({});
  f_->jobs_running = &BuildGauge()
                          .Name("layerfarm_jobs_running")
                          .Help("Layer jobs assigned to workers")
                          .Register(r)
                          .Add({});
  f_->workers = &BuildGauge()
                     .Name("layerfarm_workers")
                     .Help("Connected workers")
                     .Register(r)
                     .Add({});
  f_->free_slots = &BuildGauge()
                        .Name("layerfarm_worker_slots_free")
                        .Help("Free step slots on workers that are not draining")
                        .Register(r)
                        .Add({});
  f_->builds = &BuildCounter()
                    .Name("layerfarm_builds_total")
                    .Help("Builds finished, by final state")
                    .Register(r);
  f_->builds_running = &BuildGauge()
                            .Name("layerfarm_builds_running")
                            .Help("Builds queued or running")
                            .Register(r)
                            .Add({});
  f_->build_seconds = &BuildHistogram()
                           .Name("layerfarm_build_duration_seconds")
                           .Help("Submit-to-finish time of builds, by final state")
                           .Register(r);
  f_->http = &BuildCounter()
                  .Name("layerfarm_http_requests_total")
                  .Help("HTTP API answers by status class")
                  .Register(r);
  f_->variant_bytes = &BuildCounter()
                           .Name("layerfarm_layer_variant_compressed_bytes_total")
                           .Help("Uncompressed layer bytes compressed to push or export images")
                           .Register(r)
                           .Add({});
  f_->variant_reuses = &BuildCounter()
                            .Name("layerfarm_layer_variant_reuses_total")
                            .Help("Pushed or exported layers whose compressed variant was reused")
                            .Register(r)
                            .Add({});
  for (const char* kind : {"RUN", "COPY", "ADD"}) {
    f_->lookups->Add({{"kind", kind}});
    f_->hits->Add({{"kind", kind}});
  }
  for (const char* outcome : {"succeeded", "failed", "requeued", "cancelled"}) {
    f_->jobs->Add({{"outcome", outcome}});
  }
}

CoordinatorMetrics::~CoordinatorMetrics() = default;

void CoordinatorMetrics::cacheLookup(std::string_view kind, bool hit) {
  const prometheus::Labels labels{{"kind", std::string(kind)}};
  f_->lookups->Add(labels).Increment();
  if (hit) f_->hits->Add(labels).Increment();
}

void CoordinatorMetrics::jobEnded(std::string_view outcome) {
  f_->jobs->Add({{"outcome", std::string(outcome)}}).Increment();
}

void CoordinatorMetrics::jobSubmitted(bool deduplicated) {
  (deduplicated ? f_->deduplicated : f_->submitted)->Increment();
}

void CoordinatorMetrics::setQueue(size_t ready, size_t running) {
  f_->queue_depth->Set(static_cast<double>(ready));
  f_->jobs_running->Set(static_cast<double>(running));
}

void CoordinatorMetrics::setWorkers(size_t workers, size_t free_slots) {
  f_->workers->Set(static_cast<double>(workers));
  f_->free_slots->Set(static_cast<double>(free_slots));
}

void CoordinatorMetrics::buildStarted() { f_->builds_running->Increment(); }

void CoordinatorMetrics::buildFinished(std::string_view state, double seconds) {
  f_->builds_running->Decrement();
  const prometheus::Labels labels{{"state", std::string(state)}};
  f_->builds->Add(labels).Increment();
  static const prometheus::Histogram::BucketBoundaries kBuckets{0.01, 0.05, 0.1, 0.5, 1,  5,
                                                               10,   30,   60,  300, 1800};
  f_->build_seconds->Add(labels, kBuckets).Observe(seconds);
}

void CoordinatorMetrics::httpRequest(unsigned status) {
  const std::string klass = std::to_string(status / 100) + "xx";
  f_->http->Add({{"code", klass}}).Increment();
}

void CoordinatorMetrics::layerVariantCompressed(uint64_t uncompressed_bytes) {
  f_->variant_bytes->Increment(static_cast<double>(uncompressed_bytes));
}

void CoordinatorMetrics::layerVariantReused() { f_->variant_reuses->Increment(); }

void CoordinatorMetrics::contextFileBytes(uint64_t received, uint64_t reused) {
  f_->context_received->Increment(static_cast<double>(received));
  f_->context_reused->Increment(static_cast<double>(reused));
}

std::string CoordinatorMetrics::serialize() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace lf::coordinator
