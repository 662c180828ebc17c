#pragma once

// StateStore: the coordinator's durable state in RocksDB — the layer-cache index, aliases,
// builds, jobs, images with their history, build contexts and layer variants (the compressed
// copies of uncompressed build layers made at push/export), one column family each.
//
// Durability: the WAL is always on. Every state change (puts, batches) is a sync write
// (WriteOptions::sync, one fdatasync of the WAL per commit; concurrent commits share one through
// RocksDB's group commit), so once a call returns ok the record survives a crash of the process
// and of the machine. Cost: a sync commit takes one disk flush (~0.1-10 ms depending on the
// device; on the development VM about 4 ms: 240 synced puts/s from one thread, ~1100/s from four
// sharing flushes, bench/state_bench.cpp); StateStoreOptions::sync_writes = false trades that for
// losing the last writes on a power cut (never on a process crash: the WAL is in the page cache).
// Cache hits are the exception, see recordHit().
//
// A cache entry is written only after its layer blob is confirmed in the blob store
// (BlobStore::stat with the expected size): an entry never points at a blob that is not there.
// The first entry written for a key wins; a later put for the same key keeps the stored one and
// returns it, so builds that already used the key and builds that use it later agree.
//
// Thread-safety: all methods may be called from any thread concurrently (RocksDB is thread-safe;
// the only locks here, striped by cache key, serialise the check-then-write of cache-entry puts
// for the same key). A Batch is used by one thread. The blocking calls (every method) belong on the
// coordinator's blocking thread pool, not the io_context thread.
//
// Errors: rocksdb::Status is converted at this boundary; messages name the column family and
// key ("state builds b-12: ..."). A stored record that does not decode gives kDataLoss naming its
// key, never a crash. Opening a directory another process has open gives kFailedPrecondition.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/digest/digest.h"
#include "common/oci/descriptor.h"
#include "coordinator/state/state_records.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class WriteBatch;
}  // namespace rocksdb

namespace lf::coordinator {

struct StateStoreOptions {
  // The RocksDB directory; created when missing.
  std::filesystem::path dir;
  // Sync every state change to disk before returning (see the header comment). Default: on.
  bool sync_writes = true;
  // Shared block cache for all column families, in bytes. Default: 64 MiB.
  size_t block_cache_bytes = 64u << 20;
};

// Confirms a layer blob before its cache entry is written: ok when the blob exists with this
// size; kFailedPrecondition (or the store's error) otherwise.
using BlobCheck = std::function<Status(const LayerDescriptor& layer)>;
// The BlobCheck over a blob store (stat). The store must outlive the returned function.
BlobCheck blobCheckFor(blob::BlobStore& blobs);

struct CacheStats {
  uint64_t entries = 0;
  uint64_t total_bytes = 0;      // sum of layer sizes
  uint64_t hits = 0;             // sum of hit counts
  uint64_t corrupt_entries = 0;  // skipped: records that do not decode
  struct PerKind {
    uint64_t entries = 0;
    uint64_t total_bytes = 0;
    uint64_t hits = 0;
  };
  PerKind run, copy, add, other;
};

struct ListBuildsOptions {
  std::string tenant;  // empty = every tenant
  size_t limit = 50;   // 0 = no limit
  // Only builds created strictly before this time (a page cursor); 0 = no bound.
  int64_t created_before_unix_ms = 0;
};

// What recoverRunningBuilds() found and did.
struct RecoveryReport {
  std::vector<BuildRecord> builds;        // queued/running at crash time, after the action
  std::vector<std::string> lost_job_ids;  // jobs that were queued/running, now kLost
  std::vector<Status> damaged;  // kDataLoss for unfinished builds whose record does not decode
};

enum class RecoveryAction {
  kResume,  // leave the builds queued/running; their steps reset to pending; the caller replans
  kFail,    // mark them failed with kRestartReason
};

inline constexpr std::string_view kRestartReason = "coordinator restarted during the build";

class StateStore {
 public:
  // A set of writes committed atomically (one WriteBatch, one sync). Uncommitted = discarded.
  // Refers to its StateStore, which must outlive it.
  class Batch {
   public:
    Batch(Batch&&) noexcept;
    Batch& operator=(Batch&&) noexcept;
    ~Batch();

    // Cache entries are checked against the BlobCheck at commit(), before anything is written.
    void putCacheEntry(const CacheEntry& entry);
    void putAlias(const Alias& alias);
    void putBuild(const BuildRecord& build);
    void putJob(const JobRecord& job);
    void deleteJob(std::string_view job_id);
    void putImage(const ImageRecord& image);
    void putContext(const ContextRecord& context);

    size_t size() const;  // operations added so far
    // Writes everything or nothing. Fails before writing when a cache entry's blob is not
    // confirmed by `check` (needed only if the batch holds cache entries) or a record is invalid.
    // A cache entry whose key is already stored with the same layer is dropped from the batch
    // (the stored one, with its hits, stays); with a different layer the commit fails with
    // kAlreadyExists and writes nothing, because the batch's other records (a build step) name
    // the losing layer: the caller looks the key up and builds the batch again with the stored
    // entry. After a successful commit the batch is empty and may be reused.
    Status commit(const BlobCheck& check = nullptr);

   private:
    friend class StateStore;
    struct Impl;
    explicit Batch(StateStore* store);
    std::unique_ptr<Impl> impl_;
  };

  static Result<std::unique_ptr<StateStore>> open(StateStoreOptions options);
  ~StateStore();  // closes the database; pending writes are already in the WAL
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  Batch newBatch();

  // --- layer cache ---

  // Writes `entry` once `check` confirms its blob; returns the stored entry (an existing entry
  // for the same key is kept and returned unchanged; a damaged one is replaced).
  Result<CacheEntry> putCacheEntry(const CacheEntry& entry, const BlobCheck& check);
  Result<CacheEntry> putCacheEntry(const CacheEntry& entry, blob::BlobStore& blobs);
  // nullopt when the key has no entry. Does not count a hit.
  Result<std::optional<CacheEntry>> lookup(const Digest& key);
  // One read for many keys (planning a build looks up every step); results in `keys` order.
  Result<std::vector<std::optional<CacheEntry>>> lookupMany(std::span<const Digest> keys);
  // Counts a hit: hit_count += 1, last_hit = max(last_hit, now). A RocksDB merge operand, not a
  // read-modify-write, and not synced: a hit costs one memtable insert plus a WAL append, and a
  // power cut may lose the last hits (never an entry). Hits on a key without an entry are
  // ignored by readers.
  Status recordHit(const Digest& key, int64_t now_unix_ms);
  Status recordHits(std::span<const Digest> keys, int64_t now_unix_ms);
  // Removes the entry (cache eviction); its blob is the caller's to remove after.
  Status removeCacheEntry(const Digest& key);
  // Calls `fn` for every entry in key order until it returns false. kDataLoss at a corrupt one.
  Status forEachCacheEntry(const std::function<bool(const CacheEntry&)>& fn);
  Result<uint64_t> countCacheEntries();
  // A full scan, O(entries): 0.6-1 s per 100k entries on the (loaded, 2-core) development
  // machine, so callers cache the answer rather than scan per request. Corrupt records are
  // counted, not fatal.
  Result<CacheStats> cacheStats();

  // --- aliases ---
  Status putAlias(const Alias& alias);
  Result<std::optional<Alias>> lookupAlias(const Digest& parent_chain_id,
                                           const Digest& instruction_digest);
  // The entry the alias points at; nullopt when there is no alias or its entry is gone.
  Result<std::optional<CacheEntry>> lookupByAlias(const Digest& parent_chain_id,
                                                  const Digest& instruction_digest);

  // --- builds ---
  // Inserts or replaces; created_unix_ms must not change between puts of one build.
  Status putBuild(const BuildRecord& build);
  Result<std::optional<BuildRecord>> getBuild(std::string_view id);
  // Newest first (by created_unix_ms; builds created in the same millisecond by id ascending).
  Result<std::vector<BuildRecord>> listBuilds(const ListBuildsOptions& options);
  // Marks the build failed with `reason`: its queued/running steps become failed (with `reason`
  // as their error), its pending steps cancelled. kNotFound when absent; a finished build is left
  // as it is (and returned unchanged). A read-modify-write: the caller must not update the same
  // build concurrently.
  Result<BuildRecord> failBuild(std::string_view id, std::string_view reason, int64_t now_unix_ms);

  // --- jobs ---
  Status putJob(const JobRecord& job);
  Result<std::optional<JobRecord>> getJob(std::string_view id);
  Status deleteJob(std::string_view id);
  Status forEachJob(const std::function<bool(const JobRecord&)>& fn);

  // --- images ---
  // Stores the image under its manifest digest and points each of its references at it.
  Status putImage(const ImageRecord& image);
  // `ref` is a reference ("registry/team/app:1"), "name@sha256:..." or a bare manifest digest.
  Result<std::optional<ImageRecord>> getImage(std::string_view ref);

  // --- contexts ---
  Status putContext(const ContextRecord& context);
  Result<std::optional<ContextRecord>> getContext(const Digest& digest);
  // Sets last_used (read-modify-write; it only moves forward); kNotFound when the context is
  // unknown.
  Status touchContext(const Digest& digest, int64_t now_unix_ms);
  // In digest order until `fn` returns false, for clean-up of contexts unused for a while.
  // kDataLoss at a damaged record.
  Status forEachContext(const std::function<bool(const ContextRecord&)>& fn);
  // Forgets the context (its blob is the caller's to remove after). Absent is not an error.
  Status removeContext(const Digest& digest);

  // --- layer variants (state_variants.cpp) ---
  // Build layers are stored uncompressed; pushing or exporting an image compresses each one once
  // (coordinator/assembly/layer_variants.h) and records the compressed blob here, so the next
  // push of the same layer reuses it. Key: the source blob's digest and the compression's name
  // ("gzip", "zstd"; layer::compressionName). The variant's blob is the caller's to check: a
  // record may outlive its blob (blob store clean-up), then the caller makes it again and puts
  // the new descriptor, which replaces the old. kInvalidArgument for an empty compression name
  // or a descriptor without media type.
  Status putLayerVariant(const Digest& source, std::string_view compression,
                         const oci::Descriptor& variant);
  // nullopt when none is recorded; kDataLoss naming the key when the record does not decode.
  Result<std::optional<oci::Descriptor>> getLayerVariant(const Digest& source,
                                                         std::string_view compression);

  // --- startup ---
  // Run once after open(), before accepting builds. Jobs that were queued or running become
  // kLost (their workers' results will be refused); builds that were queued or running are
  // returned, failed with kRestartReason under kFail, or with their unfinished steps reset to
  // pending under kResume (finished steps stay, and their keys are cache hits when replanned).
  // One atomic batch.
  Result<RecoveryReport> recoverRunningBuilds(RecoveryAction action, int64_t now_unix_ms);

  // Compacts every column family (folds pending hit operands into their entries). For
  // maintenance and tests; RocksDB compacts in the background on its own.
  Status compact();

  const std::filesystem::path& dir() const { return options_.dir; }

  // For tests and tools: writes raw bytes under a key of a column family by name ("cache",
  // "builds", ...), bypassing encoding. Used to check that damaged records give kDataLoss.
  Status putRawForTesting(std::string_view column_family, std::string_view key,
                          std::string_view value);

 private:
  struct Handles;
  StateStore(StateStoreOptions options, std::unique_ptr<rocksdb::DB> db,
             std::unique_ptr<Handles> handles);
  Status write(rocksdb::WriteBatch& batch, bool sync, std::string_view what);

  StateStoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::unique_ptr<Handles> handles_;  // declared after db_: destroyed (closed) before it
};

}  // namespace lf::coordinator
