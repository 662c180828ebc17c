#pragma once

// What the StateStore's .cpp files share: the column family handles, key encodings and record
// validation. Internal to coordinator/state.
//
// Keys (every column family is ordered bytewise):
//   cache        "sha256:<hex>" (the cache key)              -> CacheEntryRecord
//   aliases      "<parent chain id> <instruction digest>"    -> AliasRecord
//   builds       build id                                    -> BuildRecordProto
//   build_index  "a" <be64 inverted created> <id>            -> "" (all builds, newest first)
//                "t" <tenant> NUL <be64 inverted created> <id> -> "" (one tenant's)
//                "r" <id>                                    -> "" (queued or running builds)
//   jobs         job id                                      -> JobRecordProto
//   images       "m/<manifest digest>"                       -> ImageRecordProto
//                "r/<reference>"                             -> "<manifest digest>"
//   contexts     "sha256:<hex>"                              -> ContextRecordProto
//   layer_variants "<source digest> <compression name>"      -> the variant's descriptor, as
//                                                               OCI descriptor JSON
//   default      "schema_version"                            -> decimal

#include <rocksdb/db.h>

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/state/state_store.h"

namespace lf::coordinator {

inline constexpr std::string_view kCfCache = "cache";
inline constexpr std::string_view kCfAliases = "aliases";
inline constexpr std::string_view kCfBuilds = "builds";
inline constexpr std::string_view kCfBuildIndex = "build_index";
inline constexpr std::string_view kCfJobs = "jobs";
inline constexpr std::string_view kCfImages = "images";
inline constexpr std::string_view kCfContexts = "contexts";
inline constexpr std::string_view kCfLayerVariants = "layer_variants";

inline constexpr std::string_view kSchemaVersionKey = "schema_version";
inline constexpr int kSchemaVersion = 1;

struct StateStore::Handles {
  rocksdb::DB* db = nullptr;                        // not owned
  std::vector<rocksdb::ColumnFamilyHandle*> owned;  // every open handle, released in ~Handles
  rocksdb::ColumnFamilyHandle* meta = nullptr;      // the default column family
  rocksdb::ColumnFamilyHandle* cache = nullptr;
  rocksdb::ColumnFamilyHandle* aliases = nullptr;
  rocksdb::ColumnFamilyHandle* builds = nullptr;
  rocksdb::ColumnFamilyHandle* build_index = nullptr;
  rocksdb::ColumnFamilyHandle* jobs = nullptr;
  rocksdb::ColumnFamilyHandle* images = nullptr;
  rocksdb::ColumnFamilyHandle* contexts = nullptr;
  rocksdb::ColumnFamilyHandle* layer_variants = nullptr;
  // Serialise "is this cache key stored? if not, write it" so the first entry for a key wins.
  // Striped by key, not one lock: a put holds its lock across the synced write, and one lock
  // would serialise the fdatasyncs that RocksDB's group commit otherwise shares.
  static constexpr size_t kCachePutStripes = 64;
  std::array<std::mutex, kCachePutStripes> cache_put_mu;
  std::mutex& cachePutLock(const Digest& key) {
    return cache_put_mu[std::hash<Digest>()(key) % kCachePutStripes];
  }

  ~Handles();
  rocksdb::ColumnFamilyHandle* byName(std::string_view name) const;
};

// Keys.
std::string aliasKey(const Digest& parent_chain_id, const Digest& instruction_digest);
std::string buildIndexAllKey(int64_t created_unix_ms, std::string_view id);
std::string buildIndexTenantPrefix(std::string_view tenant);
std::string buildIndexTenantKey(std::string_view tenant, int64_t created_unix_ms,
                                std::string_view id);
std::string buildIndexActiveKey(std::string_view id);
// The "a"/"t" index keys order by this, ascending = newest first.
std::string invertedTimeBytes(int64_t created_unix_ms);
std::string imageManifestKey(const Digest& digest);
std::string imageRefKey(std::string_view ref);

// "state <cf> <key>": the context every error about a record carries.
std::string recordContext(std::string_view cf, std::string_view key);

// kInvalidArgument naming the field when a record cannot be stored.
Status validate(const CacheEntry& entry);
Status validate(const Alias& alias);
Status validate(const BuildRecord& build);
Status validate(const JobRecord& job);
Status validate(const ImageRecord& image);
Status validate(const ContextRecord& context);

// Decodes a stored cache value; nullopt for the empty value hits leave on a key without an entry
// (hit_merge_operator.h). kDataLoss naming the key when damaged or stored under another key.
Result<std::optional<CacheEntry>> decodeStoredCacheEntry(std::string_view key,
                                                         std::string_view value);

// lookup() for a put: a damaged stored entry counts as absent (the put replaces it, with a
// warning in the log), so one damaged record does not block its key for good.
Result<std::optional<CacheEntry>> lookupForPut(StateStore& store, const Digest& key);

}  // namespace lf::coordinator
