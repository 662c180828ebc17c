#include "coordinator/builds/context_cache.h"

#include "common/context/context_manifest.h"
#include "common/context/dockerignore.h"
#include "coordinator/builds/context_file.h"

namespace lf::coordinator {

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
