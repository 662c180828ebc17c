#pragma once

// FakeBuildService: a BuildService for the HTTP API tests. Contexts go to a real
// DirectoryBlobStore in a temp dir; builds, event logs, exports and images are whatever the test
// puts in; every call the API makes is recorded so tests can assert what reached the service.
// Thread-safe (the server calls it from connection threads).

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/blob/directory_blob_store.h"
#include "coordinator/builds/build_service.h"

namespace lf::coordinator::testing {

class FakeBuildService : public BuildService {
 public:
  explicit FakeBuildService(const std::filesystem::path& blob_root) {
    auto store = blob::DirectoryBlobStore::open(blob_root);
    if (store.isOk()) blobs_ = std::move(*store);
  }

  blob::BlobStore& blobs() override { return *blobs_; }
  Result<bool> hasContext(const Digest& digest) override {
    std::lock_guard lock(mu_);
    return contexts_.count(digest) > 0;
  }
  Status addContext(const Digest& digest, uint64_t size) override {
    std::lock_guard lock(mu_);
    contexts_[digest] = size;
    return Status::ok();
  }

  // The incremental upload runs against the real BuildManager (context_upload_test.cpp).
  Result<ContextUploadStatus> addContextManifest(std::string_view) override {
    return unimplemented("the fake build service takes no context manifests");
  }
  Result<std::map<Digest, uint64_t>> contextManifestFiles(const Digest& id) override {
    return notFound("context manifest " + id.toString() + " was never posted");
  }
  Result<ContextUploadStatus> contextFilesAdded(const Digest& id) override {
    return notFound("context manifest " + id.toString() + " was never posted");
  }

  Result<BuildRecord> submit(const Caller& caller, BuildRequest request) override {
    std::lock_guard lock(mu_);
    if (!submit_error.isOk()) return submit_error;
    last_caller = caller;
    last_request = request;
    BuildRecord b;
    b.id = "b-" + std::to_string(builds_.size() + 1);
    b.tenant = caller.tenant;
    b.request = std::move(request);
    b.created_unix_ms = 1000;
    builds_[b.id] = b;
    return b;
  }
  Result<std::optional<BuildRecord>> getBuild(const std::string& id) override {
    std::lock_guard lock(mu_);
    auto it = builds_.find(id);
    if (it == builds_.end()) return std::optional<BuildRecord>();
    return std::optional<BuildRecord>(it->second);
  }
  Result<std::vector<BuildRecord>> listBuilds(const ListBuildsOptions& options) override {
    std::lock_guard lock(mu_);
    last_list = options;
    std::vector<BuildRecord> out;
    for (const auto& [id, b] : builds_) out.push_back(b);
    return out;
  }
  Result<BuildRecord> cancel(const std::string& id) override {
    std::lock_guard lock(mu_);
    auto it = builds_.find(id);
    if (it == builds_.end()) return notFound("build " + id + " not found");
    if (isFinished(it->second.state)) return failedPrecondition("build " + id + " is finished");
    it->second.state = BuildState::kCancelled;
    return it->second;
  }
  Result<std::shared_ptr<const BuildEventLog>> events(const std::string& id) override {
    std::lock_guard lock(mu_);
    auto it = logs_.find(id);
    if (it == logs_.end()) return notFound("build " + id + " not found");
    return std::shared_ptr<const BuildEventLog>(it->second);
  }
  Result<std::string> exportPath(const std::string& id) override {
    std::lock_guard lock(mu_);
    auto it = exports_.find(id);
    if (it == exports_.end()) return notFound("build " + id + " has no export");
    return it->second;
  }
  Result<std::optional<ImageRecord>> image(const std::string& ref) override {
    std::lock_guard lock(mu_);
    auto it = images_.find(ref);
    if (it == images_.end()) return std::optional<ImageRecord>();
    return std::optional<ImageRecord>(it->second);
  }
  Result<CacheSummary> cacheSummary() override {
    CacheSummary s;
    s.stored.entries = 3;
    s.stored.total_bytes = 300;
    s.stored.hits = 7;
    s.stored.run = {2, 200, 5};
    s.stored.copy = {1, 100, 2};
    s.lookups = 10;
    s.lookup_hits = 7;
    return s;
  }
  std::vector<WorkerView> workers() override {
    return {WorkerView{"w1", "linux/amd64", 4, 1, false, 12}};
  }
  Status ready() override {
    std::lock_guard lock(mu_);
    return ready_status;
  }

  void putBuild(const BuildRecord& b) {
    std::lock_guard lock(mu_);
    builds_[b.id] = b;
  }
  std::shared_ptr<BuildEventLog> addLog(const std::string& id) {
    std::lock_guard lock(mu_);
    auto log = std::make_shared<BuildEventLog>();
    logs_[id] = log;
    return log;
  }
  void putExport(const std::string& id, const std::string& path) {
    std::lock_guard lock(mu_);
    exports_[id] = path;
  }
  void putImage(const std::string& ref, const ImageRecord& image) {
    std::lock_guard lock(mu_);
    images_[ref] = image;
  }
  std::optional<uint64_t> contextSize(const Digest& d) {
    std::lock_guard lock(mu_);
    auto it = contexts_.find(d);
    if (it == contexts_.end()) return std::nullopt;
    return it->second;
  }

  void setSubmitError(Status s) {
    std::lock_guard lock(mu_);
    submit_error = std::move(s);
  }
  void setReady(Status s) {
    std::lock_guard lock(mu_);
    ready_status = std::move(s);
  }

  // Written by the server's threads under mu_; tests read them after the answer arrived (the
  // answer is sent after the write, so the socket orders them).
  Status submit_error;
  Status ready_status;
  Caller last_caller;
  std::optional<BuildRequest> last_request;
  std::optional<ListBuildsOptions> last_list;

 private:
  std::mutex mu_;
  std::unique_ptr<blob::DirectoryBlobStore> blobs_;
  std::map<Digest, uint64_t> contexts_;
  std::map<std::string, BuildRecord> builds_;
  std::map<std::string, std::shared_ptr<BuildEventLog>> logs_;
  std::map<std::string, std::string> exports_;
  std::map<std::string, ImageRecord> images_;
};

}  // namespace lf::coordinator::testing
