#pragma once

// LayerStore::Impl, shared by the files of the layer store (layer_store.cpp: the index, fetching,
// pinning, adoption and eviction; layer_store_flush.cpp: deferred durability). Internal: include
// it only from worker/layer_store. Every member is guarded by `mu` unless it says otherwise;
// methods named ...Locked() expect `mu` held.

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/layer/unique_fd.h"
#include "worker/layer_store/layer_dirs.h"
#include "worker/layer_store/layer_meta.h"
#include "worker/layer_store/layer_store.h"

namespace lf::worker {

struct LayerStore::Impl {
  struct Entry {
    LayerMeta meta;
    int64_t last_use_ns = 0;
    uint32_t pins = 0;
    layer::UniqueFd lock_fd;   // l/<name>, flock(LOCK_SH) while pins > 0
    bool pending = false;      // not known to be on disk yet (no l/<name>/synced)
    bool sync_failed = false;  // its syncfs or marker failed: never marked by this process
  };
  // Whether a layer found on disk may be used (layer_store.h, "Durability").
  enum class Durability { kSynced, kPending, kLost };
  // One unpack or adoption of a layer in progress in this process; others wanting it wait.
  struct InFlight {
    bool done = false;
    Status status;
  };
  // A layer dir locked (shared) and verified, with its metadata.
  struct Pinned {
    LayerMeta meta;
    layer::UniqueFd lock_fd;
    bool fetched = false;
    bool pending = false;
  };

  Impl(const LayerStoreOptions& o, blob::BlobStore& b, LayerDirs d)
      : options(o), blobs(b), dirs(std::move(d)) {}

  Status loadIndex();
  Durability durability(const std::string& name, const LayerMeta& meta) const;
  LayerMeta newMeta(const LayerRef& ref, uint64_t bytes) const;
  Result<std::optional<Pinned>> lockExisting(const std::string& name);
  Status flush();
  Status failedSync(const std::vector<std::string>& names, const Status& error);
  void flusherLoop();
  bool flushDueLocked() const;
  Result<bool> pinOne(const LayerRef& ref, const std::string& name);
  Result<Pinned> loadOrFetch(const LayerRef& ref, const std::string& name);
  Result<Pinned> fetch(const LayerRef& ref, const std::string& name);
  Result<Pinned> fetchContext(const LayerRef& ref, const std::string& name);
  Result<Pinned> publishOrUseExisting(LayerDirs::Staging& staging, LayerMeta meta,
                                      const std::string& name);
  Status adoptStaged(const LayerRef& ref, const std::filesystem::path& dir,
                     const std::string& name);
  void rescanLocked();
  Status evict(bool only_if_over);
  void insertLocked(const std::string& name, LayerMeta meta, int64_t last_use_ns, bool pending);
  void pinLocked(const std::string& name, Entry& e, layer::UniqueFd lock_fd);
  void eraseLocked(const std::string& name);
  void finishFlightLocked(const std::string& name, const Status& status);
  int64_t stampLocked();
  Status collision(const std::string& name, const Digest& held, const Digest& wanted) const;

  LayerStoreOptions options;
  blob::BlobStore& blobs;
  LayerDirs dirs;
  std::string boot_id;             // this boot's
  bool deferred = false;           // sync in flush(), not before each publish
  bool sync_each_publish = false;  // metadata then carries no boot id (format 1: synced)

  mutable std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<std::string, Entry> index;
  std::unordered_map<std::string, std::shared_ptr<InFlight>> in_flight;
  uint64_t total_bytes = 0, pinned = 0, hits = 0, misses = 0, evictions = 0, flushes = 0;
  int64_t last_stamp_ns = 0;

  std::mutex flush_mu;  // one flush at a time; taken before mu, never while holding it
  std::condition_variable flusher_cv;
  bool stopping = false;  // under mu
  std::thread flusher;
};

}  // namespace lf::worker
