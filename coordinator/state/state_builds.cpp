// StateStore: builds, their listing index, and startup recovery.

#include <rocksdb/db.h>

#include "coordinator/state/record_codec.h"
#include "coordinator/state/rocks_status.h"
#include "coordinator/state/state_store.h"
#include "coordinator/state/state_store_internal.h"

namespace lf::coordinator {
namespace {

constexpr size_t kTimeBytes = 8;

void applyFailure(BuildRecord& build, std::string_view reason, int64_t now_unix_ms) {
  build.state = BuildState::kFailed;
  build.failure_reason = std::string(reason);
  build.finished_unix_ms = now_unix_ms;
  for (StepRecord& step : build.steps) {
    if (step.state == StepState::kQueued || step.state == StepState::kRunning) {
      step.state = StepState::kFailed;
      if (step.error.empty()) {
        step.error = std::string(reason);
      }
      step.finished_unix_ms = now_unix_ms;
    } else if (step.state == StepState::kPending) {
      step.state = StepState::kCancelled;
    }
  }
}

// The build goes back to its planned state: steps that finished (cached or done) keep their
// layers, the others will be looked up and scheduled again.
void resetForResume(BuildRecord& build) {
  for (StepRecord& step : build.steps) {
    if (step.state == StepState::kQueued || step.state == StepState::kRunning) {
      step.state = StepState::kPending;
      step.job_id.clear();
      step.worker.clear();
      step.queued_unix_ms = 0;
      step.started_unix_ms = 0;
      step.finished_unix_ms = 0;
    }
  }
}

bool isActive(JobState state) { return state == JobState::kQueued || state == JobState::kRunning; }

}  // namespace

Status StateStore::putBuild(const BuildRecord& build) {
  Batch batch = newBatch();
  batch.putBuild(build);
  return batch.commit();
}

Result<std::optional<BuildRecord>> StateStore::getBuild(std::string_view id) {
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_->builds, id, &value);
  if (s.IsNotFound()) {
    return std::optional<BuildRecord>();
  }
  LF_RETURN_IF_ERROR(fromRocks(s, recordContext(kCfBuilds, id)));
  Result<BuildRecord> build = codec::decodeBuild(value.ToStringView());
  if (!build.isOk()) {
    return build.status().withContext(recordContext(kCfBuilds, id));
  }
  if (build->id != id) {
    return dataLoss(recordContext(kCfBuilds, id) + ": record is for build " + build->id);
  }
  return std::optional<BuildRecord>(std::move(build).value());
}

Result<std::vector<BuildRecord>> StateStore::listBuilds(const ListBuildsOptions& options) {
  const std::string prefix =
      options.tenant.empty() ? std::string("a") : buildIndexTenantPrefix(options.tenant);
  std::string start = prefix;
  if (options.created_before_unix_ms > 0) {
    start += invertedTimeBytes(options.created_before_unix_ms - 1);
  }
  std::vector<BuildRecord> out;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), handles_->build_index));
  for (it->Seek(start); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (options.limit != 0 && out.size() >= options.limit) {
      break;
    }
    std::string_view key = it->key().ToStringView();
    if (key.size() <= prefix.size() + kTimeBytes) {
      return dataLoss(recordContext(kCfBuildIndex, key) + ": index key too short");
    }
    std::string_view id = key.substr(prefix.size() + kTimeBytes);
    LF_ASSIGN_OR_RETURN(std::optional<BuildRecord> build, getBuild(id));
    // An index entry left by an earlier put with another creation time or tenant is stale.
    if (!build ||
        key.substr(prefix.size(), kTimeBytes) != invertedTimeBytes(build->created_unix_ms) ||
        (!options.tenant.empty() && build->tenant != options.tenant)) {
      continue;
    }
    out.push_back(std::move(*build));
  }
  LF_RETURN_IF_ERROR(fromRocks(it->status(), "state build_index: iterate"));
  return out;
}

Result<BuildRecord> StateStore::failBuild(std::string_view id, std::string_view reason,
                                          int64_t now_unix_ms) {
  LF_ASSIGN_OR_RETURN(std::optional<BuildRecord> build, getBuild(id));
  if (!build) {
    return notFound(recordContext(kCfBuilds, id) + ": no such build");
  }
  if (isFinished(build->state)) {
    return std::move(*build);
  }
  applyFailure(*build, reason, now_unix_ms);
  LF_RETURN_IF_ERROR(putBuild(*build));
  return std::move(*build);
}

Result<RecoveryReport> StateStore::recoverRunningBuilds(RecoveryAction action,
                                                        int64_t now_unix_ms) {
  RecoveryReport report;
  Batch batch = newBatch();
  LF_RETURN_IF_ERROR(forEachJob([&](const JobRecord& job) {
    if (isActive(job.state)) {
      JobRecord lost = job;
      lost.state = JobState::kLost;
      lost.finished_unix_ms = now_unix_ms;
      lost.error = std::string(kRestartReason);
      batch.putJob(lost);
      report.lost_job_ids.push_back(job.id);
    }
    return true;
  }));

  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), handles_->build_index));
  const std::string prefix = buildIndexActiveKey("");
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string_view id = it->key().ToStringView().substr(prefix.size());
    Result<std::optional<BuildRecord>> build = getBuild(id);
    if (!build.isOk()) {
      // One damaged record must not keep the coordinator from starting; it is reported.
      report.damaged.push_back(build.status());
      continue;
    }
    if (!build->has_value() || isFinished((*build)->state)) {
      continue;  // the active mark outlived its build; harmless, skipped
    }
    BuildRecord& b = **build;
    if (action == RecoveryAction::kFail) {
      applyFailure(b, kRestartReason, now_unix_ms);
    } else {
      resetForResume(b);
    }
    batch.putBuild(b);
    report.builds.push_back(std::move(b));
  }
  LF_RETURN_IF_ERROR(fromRocks(it->status(), "state build_index: iterate"));
  LF_RETURN_IF_ERROR(batch.commit().withContext("state: recover running builds"));
  return report;
}

}  // namespace lf::coordinator
