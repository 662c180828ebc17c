#pragma once

// BuildService: what the HTTP API (coordinator/api) asks of the builds. Implemented by
// BuildManager (coordinator/builds/build_manager.h); HTTP tests use a fake.
//
// Thread-safety: every method may be called from any thread. Calls may block on RocksDB or the
// blob store (milliseconds), never on a build's progress.
// Errors carry the codes docs/http-api.md maps to HTTP statuses (kInvalidArgument 400,
// kPermissionDenied 403, kNotFound 404, kFailedPrecondition 409, kUnavailable 503).

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/digest/digest.h"
#include "coordinator/builds/build_event_log.h"
#include "coordinator/scheduler/scheduler.h"
#include "coordinator/state/state_records.h"
#include "coordinator/state/state_store.h"

namespace lf::coordinator {

// Who is asking: decided by the HTTP layer from the bearer token (coordinator config `clients`).
struct Caller {
  std::string tenant = "default";
  // Namespaces (first path component of a repository, "team" in registry/team/app) the caller
  // may push to; empty with any_namespace=false means none.
  std::vector<std::string> namespaces;
  bool any_namespace = true;      // no client tokens configured: anything except library/
  bool may_push_library = false;  // admins: library/ too
  // Sees, follows, exports and cancels every tenant's builds: admins, and everyone when no client
  // tokens are configured. Others only their own tenant's (another tenant's build is "not found").
  bool all_tenants = true;
};

// Where an incremental context upload stands: the answer of POST /v1/contexts and of
// PUT /v1/contexts/<id>/files (docs/http-api.md, "Contexts").
struct ContextUploadStatus {
  Digest digest;                // the context's id: the manifest's digest
  uint64_t files = 0;           // regular file entries in the manifest
  uint64_t bytes = 0;           // their total size
  std::vector<Digest> missing;  // distinct file digests the blob store lacks, sorted; [] = ready
  uint64_t missing_bytes = 0;   // sum of the sizes of `missing`
  // POST: the manifest blob was newly stored (201, else 200). PUT files: the context became
  // ready with this call (201, else 200).
  bool created = false;
};

struct CacheSummary {
  CacheStats stored;     // from the index (recomputed at most every few seconds)
  uint64_t lookups = 0;  // step lookups since the coordinator started
  uint64_t lookup_hits = 0;
};

class BuildService {
 public:
  virtual ~BuildService() = default;

  // The blob store contexts are uploaded into (the HTTP layer streams PUT bodies into it).
  virtual blob::BlobStore& blobs() = 0;
  // Whether a context is ready for builds: its record exists (under a manifest id or a legacy
  // tar digest), names a manifest, and the manifest and all its files are in the store.
  virtual Result<bool> hasContext(const Digest& digest) = 0;
  // Records a legacy context tar whose blob the HTTP layer just committed to blobs(): converts
  // it (every regular file into its own blob, a manifest blob) and records it READY under the
  // tar digest and the manifest id. kInvalidArgument naming the entry for a tar that is not a
  // valid context.
  virtual Status addContext(const Digest& digest, uint64_t size) = 0;
  // POST /v1/contexts: validates the encoded manifest (kInvalidArgument naming the entry,
  // kResourceExhausted over the limits), stores it as a blob and answers which files are
  // missing; with none missing the context is recorded READY.
  virtual Result<ContextUploadStatus> addContextManifest(std::string_view manifest_bytes) = 0;
  // The distinct file digests manifest `id` lists with their sizes, for checking the entries of
  // PUT .../files. kNotFound when the manifest was never POSTed.
  virtual Result<std::map<Digest, uint64_t>> contextManifestFiles(const Digest& id) = 0;
  // After PUT /v1/contexts/<id>/files stored its entries: what is still missing; records the
  // context READY when nothing is (created = it became ready now). kNotFound as above.
  virtual Result<ContextUploadStatus> contextFilesAdded(const Digest& id) = 0;

  // Validates the request (context known, tags well-formed and pushable by the caller, output
  // spec), stores the build as queued and starts it. Returns the stored record.
  virtual Result<BuildRecord> submit(const Caller& caller, BuildRequest request) = 0;
  virtual Result<std::optional<BuildRecord>> getBuild(const std::string& id) = 0;
  virtual Result<std::vector<BuildRecord>> listBuilds(const ListBuildsOptions& options) = 0;
  // kNotFound for an unknown build, kFailedPrecondition for a finished one.
  virtual Result<BuildRecord> cancel(const std::string& id) = 0;
  // The build's event log: live for builds in flight; for finished builds rebuilt from the
  // record (closed). kNotFound for an unknown build.
  virtual Result<std::shared_ptr<const BuildEventLog>> events(const std::string& id) = 0;
  // The exported tarball of a build submitted with an output spec; kNotFound before it exists.
  virtual Result<std::string> exportPath(const std::string& id) = 0;

  virtual Result<std::optional<ImageRecord>> image(const std::string& ref) = 0;
  virtual Result<CacheSummary> cacheSummary() = 0;
  virtual std::vector<WorkerView> workers() = 0;
  // Ready to accept builds (state open, not shutting down); otherwise kUnavailable with why.
  virtual Status ready() = 0;
};

}  // namespace lf::coordinator
