#pragma once

// The driver of one build (internal to BuildManager): everything from reading the context to the
// final record, on the build's own thread. See build_manager.h for the contract.
//
// Threads: BuildManager::Run is shared between the driver (its only writer of `record`) and
// the manager's threads (readers, the JobListener filling `inbox`, cancel() setting
// `cancel_requested`); `mu` guards those fields. Everything in BuildDriver belongs to the
// driver's thread.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "common/context/context_snapshot.h"
#include "common/dockerfile/ast.h"
#include "coordinator/builds/base_resolver.h"
#include "coordinator/builds/build_event_log.h"
#include "coordinator/builds/build_manager.h"
#include "coordinator/builds/step_specs.h"

namespace lf::coordinator {

using InboundEvent = std::variant<JobAssigned, JobLogBatch, JobEvent>;

struct BuildManager::Run {
  std::string id;
  bool resumed = false;  // recovered after a restart
  std::shared_ptr<BuildEventLog> log;

  mutable std::mutex mu;
  std::condition_variable wake;     // inbox, cancel_requested or stop_requested changed
  std::condition_variable changed;  // record changed (cancel() waits on it)
  BuildRecord record;
  std::deque<InboundEvent> inbox;
  // Atomics so waits on either mutex (the manager's slots, `wake`) can read them; set under `mu`.
  std::atomic<bool> cancel_requested{false};
  std::atomic<bool> stop_requested{false};  // the manager stops: leave the record for recover()
  bool finished = false;                    // the record is final
};

class BuildDriver {
 public:
  BuildDriver(BuildManager& manager, BuildManager::Run& run);
  // Waits for a build slot, then runs the build to its end (or until the manager stops).
  void drive();

 private:
  // Per plan step of a needed stage (FROM entries have none).
  struct StepTrack {
    int stage = -1;
    int pos = -1;        // index in plan::Stage::steps
    int record = -1;     // index in BuildRecord::steps
    bool known = false;  // its layer is known (cached or built), or it is a metadata step
    bool submitted = false;
    std::optional<BuiltLayer> layer;
    int64_t layer_created_unix_ms = 0;  // when the layer's cache entry was first written
  };
  struct StageTrack {
    bool needed = false;
    int from_record = -1;
    std::vector<int> steps;                   // indexes into steps_
    std::optional<BaseImageInfo> base_image;  // FROM <image>
    std::string base_repository;              // for push mounts
    bool complete = false;
  };

  // Setup (build_driver.cpp).
  Status run();
  Status prepare();
  Status planBuild();
  Status resolveImages(const std::vector<std::string>& refs, plan::PlanInput& input);
  Status makeSteps();
  Status lookupCache();

  // Jobs (build_jobs.cpp).
  Status runJobs();
  Status submitReady(bool& progressed);
  Status submitStep(int index);
  bool stepReady(const StepTrack& step) const;
  LayerChainInfo chainBefore(const StepTrack& step) const;
  LayerChainInfo stageChain(int stage) const;
  LayerChainInfo baseChain(int stage) const;
  void updateCompletion();
  bool allComplete() const;
  bool jobsInFlight() const;
  Status handle(const InboundEvent& event);
  void onAssigned(const JobAssigned& assigned);
  void onLog(const JobLogBatch& batch);
  Status onJobEvent(const JobEvent& event);
  Status onSucceeded(const JobEvent& event, const std::vector<int>& steps);
  std::string stepName(const StepTrack& step) const;

  // Finish (build_finish.cpp).
  Status finish();
  Result<AssembledImage> assembleStage(int stage);
  int64_t imageCreatedSeconds() const;
  Status pushImage(const AssembledImage& image);
  Status exportImage(const AssembledImage& image);
  void endBuild(BuildState state, std::string reason);

  // Record and events (build_driver.cpp).
  void setStepState(int record, StepState state);
  void emitStep(int record, int attempt = 0);
  void message(std::string_view text);
  // Copies the record to run_.record and the state store; `final` marks the build finished.
  void publish(bool final = false);
  bool cancelRequested() const;
  bool stopRequested() const;

  BuildManager& m_;
  BuildManager::Run& run_;
  BuildRecord rec_;  // the driver's copy; publish() copies it to run_.record and the store

  dockerfile::Dockerfile dockerfile_;
  std::shared_ptr<const ContextFiles> context_;  // Dockerfile text and snapshot
  Digest context_manifest_;    // the manifest blob the request's context id resolves to
  plan::Platform platform_;
  std::map<std::string, ResolvedBase> bases_;  // by the reference as written
  plan::BuildPlan plan_;
  std::vector<StepTrack> steps_;
  std::vector<StageTrack> stages_;                     // by stage index
  std::map<std::string, std::vector<int>> job_steps_;  // job id -> steps_ indexes
  std::map<int, AssembledImage> assembled_;            // by stage index
  int64_t source_date_epoch_ = 0;
  bool source_date_epoch_given_ = false;  // SOURCE_DATE_EPOCH build arg
  bool submitted_any_ = false;
  std::vector<std::string> pushed_;
  std::optional<BuildRecord> published_;  // what publish() stored last
  bool counted_running_ = false;          // metrics->buildStarted() was called
};

}  // namespace lf::coordinator
