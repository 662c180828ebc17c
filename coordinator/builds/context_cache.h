#pragma once

// ContextCache: what a build reads from its uploaded context before planning (the Dockerfile's
// text and the context snapshot with every file's SHA-256), kept for the most recently used
// contexts. Reading them means parsing the context's manifest (one entry per file, up to
// context::kMaxManifestBytes) and reading the Dockerfile's and ignore file's blobs; a burst of
// builds of one context (CI fan-out, fully cached rebuilds) would otherwise redo that per build.
// Contexts are content-addressed (keyed by the manifest digest), so an entry never goes stale.
//
// Thread-safety: thread-safe. Two builds missing the same context at once both read it (no
// single flight: harmless, and rare).

#include <cstddef>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/context/context_snapshot.h"
#include "common/digest/digest.h"

namespace lf::coordinator {

struct ContextFiles {
  std::string dockerfile_text;
  context::ContextSnapshot snapshot;
  // The manifest workers materialize for COPY/ADD and RUN --mount=type=bind: the context without
  // snapshot.builderOnly() (the Dockerfile and ignore file when .dockerignore excludes them:
  // Docker sends them to the builder only, COPY . must not see them). The uploaded manifest
  // itself when nothing is builder-only; else a trimmed copy stored beside it.
  Digest worker_manifest;
  uint64_t worker_manifest_size = 0;
};

class ContextCache {
 public:
  explicit ContextCache(size_t capacity = 16) : capacity_(capacity) {}

  // The Dockerfile at `dockerfile_path` (at most max_dockerfile_bytes) and the snapshot of the
  // context whose manifest blob is `digest`, from the cache or read from `blobs`.
  Result<std::shared_ptr<const ContextFiles>> get(blob::BlobStore& blobs, const Digest& digest,
                                                  const std::string& dockerfile_path,
                                                  uint64_t max_dockerfile_bytes);

 private:
  using Key = std::pair<Digest, std::string>;
  const size_t capacity_;
  std::mutex mu_;
  std::list<Key> lru_;  // most recent first
  std::map<Key, std::pair<std::shared_ptr<const ContextFiles>, std::list<Key>::iterator>> entries_;
};

}  // namespace lf::coordinator
