#include "coordinator/builds/context_cache.h"

#include <algorithm>

#include "common/context/context_manifest.h"
#include "common/context/dockerignore.h"
#include "coordinator/builds/context_file.h"

namespace lf::coordinator {
namespace {

// Sets files->worker_manifest: `manifest` (blob `digest`) without the builder-only entries,
// stored when it differs (content-addressed, so storing it again is harmless).
Status storeWorkerManifest(blob::BlobStore& blobs, const Digest& digest,
                           context::ContextManifest manifest, ContextFiles* files) {
  const auto& builder_only = files->snapshot.builderOnly();
  if (builder_only.empty()) {
    LF_ASSIGN_OR_RETURN(auto info, blobs.stat(digest));
    if (!info) return dataLoss("context manifest " + digest.toString() + " is not in the store");
    files->worker_manifest = digest;
    files->worker_manifest_size = info->size;
    return Status::ok();
  }
  std::erase_if(manifest.entries, [&](const context::ManifestEntry& m) {
    return std::any_of(builder_only.begin(), builder_only.end(),
                       [&](const context::ContextEntry& e) { return e.path == m.entry.path; });
  });
  const std::string bytes = context::encodeContextManifest(manifest);
  const Digest trimmed = Digest::sha256Of(bytes);
  LF_ASSIGN_OR_RETURN(auto info, blobs.stat(trimmed));
  if (!info) {
    LF_RETURN_IF_ERROR(
        blobs.putBytes(bytes, trimmed)
            .status()
            .withContext("storing the workers' view of context " + digest.toString()));
  }
  files->worker_manifest = trimmed;
  files->worker_manifest_size = bytes.size();
  return Status::ok();
}

}  // namespace

Result<std::shared_ptr<const ContextFiles>> ContextCache::get(blob::BlobStore& blobs,
                                                              const Digest& digest,
                                                              const std::string& dockerfile_path,
                                                              uint64_t max_dockerfile_bytes) {
  Key key{digest, dockerfile_path};
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.second);
      return it->second.first;
    }
  }
  auto files = std::make_shared<ContextFiles>();
  LF_ASSIGN_OR_RETURN(context::ContextManifest manifest, loadContextManifest(blobs, digest));
  LF_ASSIGN_OR_RETURN(
      files->dockerfile_text,
      readContextFile(blobs, digest, manifest, dockerfile_path, max_dockerfile_bytes));
  // The Dockerfile path as readContextTar() took it: one outside the context splits nothing.
  auto df = context::normalizeContextPath(dockerfile_path);
  auto snapshot = context::snapshotOfManifest(
      manifest, df.isOk() ? *df : std::string(), [&](const Digest& file) {
        return blobs.getBytes(file, context::DockerIgnore::kMaxFileBytes);
      });
  if (!snapshot.isOk()) return snapshot.status().withContext("context " + digest.toString());
  files->snapshot = std::move(snapshot).value();
  LF_RETURN_IF_ERROR(storeWorkerManifest(blobs, digest, std::move(manifest), files.get()));
  std::shared_ptr<const ContextFiles> result = std::move(files);
  if (capacity_ == 0) return result;
  std::lock_guard lock(mu_);
  if (entries_.count(key) == 0) {
    lru_.push_front(key);
    entries_.emplace(key, std::make_pair(result, lru_.begin()));
    while (entries_.size() > capacity_) {
      entries_.erase(lru_.back());
      lru_.pop_back();
    }
  }
  return result;
}

}  // namespace lf::coordinator
