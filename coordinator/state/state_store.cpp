// StateStore: opening the database, the layer cache, aliases, jobs, images and contexts.
// Builds and startup recovery are in state_builds.cpp, batches in state_batch.cpp, layer
// variants in state_variants.cpp.

#include "coordinator/state/state_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <charconv>
#include <set>

#include "coordinator/state/hit_merge_operator.h"
#include "coordinator/state/record_codec.h"
#include "coordinator/state/rocks_status.h"
#include "coordinator/state/state_store_internal.h"

namespace lf::coordinator {
namespace {

constexpr std::string_view kOurColumnFamilies[] = {kCfCache,      kCfAliases,      kCfBuilds,
                                                   kCfBuildIndex, kCfJobs,         kCfImages,
                                                   kCfContexts,   kCfLayerVariants};

rocksdb::ColumnFamilyOptions columnFamilyOptions(std::string_view name,
                                                 const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions cf;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  if (name == kCfCache || name == kCfAliases) {
    // Point lookups for keys that are mostly absent on a cold build: a bloom filter answers
    // "not cached" without reading a data block.
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  }
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  if (name == kCfCache) {
    cf.merge_operator = newHitMergeOperator();
  }
  return cf;
}

// Column families present on disk (none for a new database). Unknown ones (a newer
// coordinator's) are opened too, as RocksDB requires, and left alone.
std::set<std::string> existingColumnFamilies(const rocksdb::DBOptions& options,
                                             const std::string& dir) {
  std::vector<std::string> names;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(options, dir, &names);
  // Not ok for a directory without a database yet; Open() reports anything worse.
  return s.ok() ? std::set<std::string>(names.begin(), names.end()) : std::set<std::string>();
}

Status checkSchemaVersion(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* meta, bool sync) {
  std::string value;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), meta, kSchemaVersionKey, &value);
  if (s.IsNotFound()) {
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    return fromRocks(db->Put(wo, meta, kSchemaVersionKey, std::to_string(kSchemaVersion)),
                     recordContext("default", kSchemaVersionKey));
  }
  LF_RETURN_IF_ERROR(fromRocks(s, recordContext("default", kSchemaVersionKey)));
  int version = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), version);
  if (ec != std::errc() || end != value.data() + value.size()) {
    return dataLoss(recordContext("default", kSchemaVersionKey) + ": not a number: " + value);
  }
  if (version > kSchemaVersion) {
    return failedPrecondition("state schema version " + std::to_string(version) +
                              " was written by a newer coordinator; this one reads up to " +
                              std::to_string(kSchemaVersion));
  }
  return Status::ok();
}

}  // namespace

StateStore::Handles::~Handles() {
  for (rocksdb::ColumnFamilyHandle* h : owned) {
    // Destroying a handle only releases memory; its status is always ok for an open database.
    db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  }
}

rocksdb::ColumnFamilyHandle* StateStore::Handles::byName(std::string_view name) const {
  for (rocksdb::ColumnFamilyHandle* h : owned) {
    if (h->GetName() == name) {
      return h;
    }
  }
  return nullptr;
}

BlobCheck blobCheckFor(blob::BlobStore& blobs) {
  return [&blobs](const LayerDescriptor& layer) -> Status {
    LF_ASSIGN_OR_RETURN(std::optional<blob::BlobInfo> info, blobs.stat(layer.digest));
    if (!info) {
      return failedPrecondition("layer blob " + layer.digest.toString() +
                                " is not in the blob store");
    }
    if (info->size != layer.size) {
      return failedPrecondition("layer blob " + layer.digest.toString() + " has " +
                                std::to_string(info->size) + " bytes in the blob store, the " +
                                "descriptor says " + std::to_string(layer.size));
    }
    return Status::ok();
  };
}

Result<std::unique_ptr<StateStore>> StateStore::open(StateStoreOptions options) {
  if (options.dir.empty()) {
    return invalidArgument("state store: no directory given");
  }
  const std::string dir = options.dir.string();
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.keep_log_file_num = 5;
  std::shared_ptr<rocksdb::Cache> cache = rocksdb::NewLRUCache(options.block_cache_bytes);

  std::set<std::string> names = existingColumnFamilies(db_options, dir);
  names.insert(rocksdb::kDefaultColumnFamilyName);
  for (std::string_view name : kOurColumnFamilies) {
    names.insert(std::string(name));
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : names) {
    descriptors.emplace_back(name, columnFamilyOptions(name, cache));
  }
  std::vector<rocksdb::ColumnFamilyHandle*> raw_handles;
  rocksdb::DB* raw_db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir, descriptors, &raw_handles, &raw_db);
  LF_RETURN_IF_ERROR(fromRocks(s, "open state store " + dir));
  std::unique_ptr<rocksdb::DB> db(raw_db);

  auto handles = std::make_unique<Handles>();
  handles->db = db.get();
  handles->owned = std::move(raw_handles);
  handles->meta = handles->byName(rocksdb::kDefaultColumnFamilyName);
  handles->cache = handles->byName(kCfCache);
  handles->aliases = handles->byName(kCfAliases);
  handles->builds = handles->byName(kCfBuilds);
  handles->build_index = handles->byName(kCfBuildIndex);
  handles->jobs = handles->byName(kCfJobs);
  handles->images = handles->byName(kCfImages);
  handles->contexts = handles->byName(kCfContexts);
  handles->layer_variants = handles->byName(kCfLayerVariants);
  // Open() returned a handle for every descriptor, and we asked for all of ours.
  LF_CHECK(handles->cache && handles->contexts && handles->layer_variants && handles->meta,
           "column family handle missing");

  Status version = checkSchemaVersion(db.get(), handles->meta, options.sync_writes);
  if (!version.isOk()) {
    handles.reset();  // before the database closes
    return version.withContext("open state store " + dir);
  }
  return std::unique_ptr<StateStore>(
      new StateStore(std::move(options), std::move(db), std::move(handles)));
}

StateStore::StateStore(StateStoreOptions options, std::unique_ptr<rocksdb::DB> db,
                       std::unique_ptr<Handles> handles)
    : options_(std::move(options)), db_(std::move(db)), handles_(std::move(handles)) {}

StateStore::~StateStore() {
  handles_.reset();
  // Every committed write is already in the WAL; Close() only flushes memtables early and
  // reports background errors nobody could act on at this point.
  db_->Close().PermitUncheckedError();
}

StateStore::Batch StateStore::newBatch() { return Batch(this); }

Status StateStore::write(rocksdb::WriteBatch& batch, bool sync, std::string_view what) {
  rocksdb::WriteOptions wo;
  wo.sync = sync && options_.sync_writes;
  return fromRocks(db_->Write(wo, &batch), what);
}

Status StateStore::putRawForTesting(std::string_view column_family, std::string_view key,
                                    std::string_view value) {
  rocksdb::ColumnFamilyHandle* cf = handles_->byName(column_family);
  if (cf == nullptr) {
    return notFound("state store has no column family " + std::string(column_family));
  }
  rocksdb::WriteBatch batch;
  LF_RETURN_IF_ERROR(fromRocks(batch.Put(cf, key, value), recordContext(column_family, key)));
  return write(batch, true, recordContext(column_family, key));
}

Status StateStore::compact() {
  for (rocksdb::ColumnFamilyHandle* cf : handles_->owned) {
    LF_RETURN_IF_ERROR(
        fromRocks(db_->CompactRange(rocksdb::CompactRangeOptions(), cf, nullptr, nullptr),
                  "state " + cf->GetName() + ": compact"));
  }
  return Status::ok();
}

// --- layer cache ---

Result<CacheEntry> StateStore::putCacheEntry(const CacheEntry& entry, const BlobCheck& check) {
  LF_RETURN_IF_ERROR(validate(entry));
  const std::string key = entry.key.toString();
  if (!check) {
    return invalidArgument(recordContext(kCfCache, key) + ": no blob check given");
  }
  LF_RETURN_IF_ERROR(check(entry.layer).withContext(recordContext(kCfCache, key)));
  std::lock_guard<std::mutex> lock(handles_->cachePutLock(entry.key));
  LF_ASSIGN_OR_RETURN(std::optional<CacheEntry> existing, lookupForPut(*this, entry.key));
  if (existing) {
    return *existing;
  }
  rocksdb::WriteBatch batch;
  LF_RETURN_IF_ERROR(fromRocks(batch.Put(handles_->cache, key, codec::encode(entry)),
                               recordContext(kCfCache, key)));
  LF_RETURN_IF_ERROR(write(batch, true, recordContext(kCfCache, key)));
  return entry;
}

Result<CacheEntry> StateStore::putCacheEntry(const CacheEntry& entry, blob::BlobStore& blobs) {
  return putCacheEntry(entry, blobCheckFor(blobs));
}

Result<std::optional<CacheEntry>> StateStore::lookup(const Digest& key) {
  const std::string k = key.toString();
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_->cache, k, &value);
  if (s.IsNotFound()) {
    return std::optional<CacheEntry>();
  }
  LF_RETURN_IF_ERROR(fromRocks(s, recordContext(kCfCache, k)));
  return decodeStoredCacheEntry(k, value.ToStringView());
}

Result<std::vector<std::optional<CacheEntry>>> StateStore::lookupMany(
    std::span<const Digest> keys) {
  std::vector<std::string> key_strings;
  std::vector<rocksdb::Slice> slices;
  key_strings.reserve(keys.size());
  for (const Digest& key : keys) {
    key_strings.push_back(key.toString());
  }
  slices.assign(key_strings.begin(), key_strings.end());
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  db_->MultiGet(rocksdb::ReadOptions(), handles_->cache, keys.size(), slices.data(), values.data(),
                statuses.data());
  std::vector<std::optional<CacheEntry>> out(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (statuses[i].IsNotFound()) {
      continue;
    }
    LF_RETURN_IF_ERROR(fromRocks(statuses[i], recordContext(kCfCache, key_strings[i])));
    LF_ASSIGN_OR_RETURN(out[i], decodeStoredCacheEntry(key_strings[i], values[i].ToStringView()));
  }
  return out;
}

Status StateStore::recordHit(const Digest& key, int64_t now_unix_ms) {
  return recordHits(std::span<const Digest>(&key, 1), now_unix_ms);
}

Status StateStore::recordHits(std::span<const Digest> keys, int64_t now_unix_ms) {
  if (keys.empty()) {
    return Status::ok();
  }
  const std::string delta = codec::encodeHitDelta(1, now_unix_ms);
  rocksdb::WriteBatch batch;
  for (const Digest& key : keys) {
    LF_RETURN_IF_ERROR(fromRocks(batch.Merge(handles_->cache, key.toString(), delta),
                                 recordContext(kCfCache, key.toString())));
  }
  // Not synced: see recordHit() in the header.
  return write(batch, false, recordContext(kCfCache, keys.front().toString()) + ": record hits");
}

Status StateStore::removeCacheEntry(const Digest& key) {
  std::lock_guard<std::mutex> lock(handles_->cachePutLock(key));
  rocksdb::WriteBatch batch;
  const std::string k = key.toString();
  LF_RETURN_IF_ERROR(fromRocks(batch.Delete(handles_->cache, k), recordContext(kCfCache, k)));
  return write(batch, true, recordContext(kCfCache, k));
}

Status StateStore::forEachCacheEntry(const std::function<bool(const CacheEntry&)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), handles_->cache));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    LF_ASSIGN_OR_RETURN(
        std::optional<CacheEntry> entry,
        decodeStoredCacheEntry(it->key().ToStringView(), it->value().ToStringView()));
    if (entry && !fn(*entry)) {
      return Status::ok();
    }
  }
  return fromRocks(it->status(), "state cache: iterate");
}

Result<uint64_t> StateStore::countCacheEntries() {
  uint64_t count = 0;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), handles_->cache));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (!it->value().empty()) {  // empty = hits without an entry
      ++count;
    }
  }
  LF_RETURN_IF_ERROR(fromRocks(it->status(), "state cache: iterate"));
  return count;
}

Result<CacheStats> StateStore::cacheStats() {
  CacheStats stats;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), handles_->cache));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    Result<std::optional<CacheEntry>> entry =
        decodeStoredCacheEntry(it->key().ToStringView(), it->value().ToStringView());
    if (!entry.isOk()) {
      ++stats.corrupt_entries;
      continue;
    }
    if (!entry->has_value()) {
      continue;
    }
    const CacheEntry& e = **entry;
    CacheStats::PerKind* kind = &stats.other;
    switch (e.kind) {
      case InstructionKind::kRun:
        kind = &stats.run;
        break;
      case InstructionKind::kCopy:
        kind = &stats.copy;
        break;
      case InstructionKind::kAdd:
        kind = &stats.add;
        break;
      case InstructionKind::kUnspecified:
        break;
    }
    ++kind->entries;
    kind->total_bytes += e.layer.size;
    kind->hits += e.hit_count;
    ++stats.entries;
    stats.total_bytes += e.layer.size;
    stats.hits += e.hit_count;
  }
  LF_RETURN_IF_ERROR(fromRocks(it->status(), "state cache: iterate"));
  return stats;
}

// --- aliases ---

Status StateStore::putAlias(const Alias& alias) {
  Batch batch = newBatch();
  batch.putAlias(alias);
  return batch.commit();
}

Result<std::optional<Alias>> StateStore::lookupAlias(const Digest& parent_chain_id,
                                                     const Digest& instruction_digest) {
  const std::string key = aliasKey(parent_chain_id, instruction_digest);
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_->aliases, key, &value);
  if (s.IsNotFound()) {
    return std::optional<Alias>();
  }
  LF_RETURN_IF_ERROR(fromRocks(s, recordContext(kCfAliases, key)));
  Result<Alias> alias = codec::decodeAlias(value.ToStringView());
  if (!alias.isOk()) {
    return alias.status().withContext(recordContext(kCfAliases, key));
  }
  return std::optional<Alias>(std::move(alias).value());
}

Result<std::optional<CacheEntry>> StateStore::lookupByAlias(const Digest& parent_chain_id,
                                                            const Digest& instruction_digest) {
  LF_ASSIGN_OR_RETURN(std::optional<Alias> alias, lookupAlias(parent_chain_id, instruction_digest));
  if (!alias) {
    return std::optional<CacheEntry>();
  }
  return lookup(alias->cache_key);
}

// --- jobs ---

Status StateStore::putJob(const JobRecord& job) {
  Batch batch = newBatch();
  batch.putJob(job);
  return batch.commit();
}

Status StateStore::deleteJob(std::string_view id) {
  Batch batch = newBatch();
  batch.deleteJob(id);
  return batch.commit();
}

Result<std::optional<JobRecord>> StateStore::getJob(std::string_view id) {
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_->jobs, id, &value);
  if (s.IsNotFound()) {
    return std::optional<JobRecord>();
  }
  LF_RETURN_IF_ERROR(fromRocks(s, recordContext(kCfJobs, id)));
  Result<JobRecord> job = codec::decodeJob(value.ToStringView());
  if (!job.isOk()) {
    return job.status().withContext(recordContext(kCfJobs, id));
  }
  return std::optional<JobRecord>(std::move(job).value());
}

Status StateStore::forEachJob(const std::function<bool(const JobRecord&)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), handles_->jobs));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    Result<JobRecord> job = codec::decodeJob(it->value().ToStringView());
    if (!job.isOk()) {
      return job.status().withContext(recordContext(kCfJobs, it->key().ToStringView()));
    }
    if (!fn(*job)) {
      return Status::ok();
    }
  }
  return fromRocks(it->status(), "state jobs: iterate");
}

// --- images ---

Status StateStore::putImage(const ImageRecord& image) {
  Batch batch = newBatch();
  batch.putImage(image);
  return batch.commit();
}

Result<std::optional<ImageRecord>> StateStore::getImage(std::string_view ref) {
  std::string digest_text;
  if (ref.starts_with("sha256:")) {
    digest_text = std::string(ref);
  } else if (size_t at = ref.find('@'); at != std::string_view::npos) {
    digest_text = std::string(ref.substr(at + 1));
  } else {
    const std::string key = imageRefKey(ref);
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_->images, key, &digest_text);
    if (s.IsNotFound()) {
      return std::optional<ImageRecord>();
    }
    LF_RETURN_IF_ERROR(fromRocks(s, recordContext(kCfImages, key)));
  }
  Result<Digest> digest = Digest::parse(digest_text);
  if (!digest.isOk()) {
    return invalidArgument("image reference " + std::string(ref) + ": " +
                           digest.status().message());
  }
  const std::string key = imageManifestKey(*digest);
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_->images, key, &value);
  if (s.IsNotFound()) {
    return std::optional<ImageRecord>();
  }
  LF_RETURN_IF_ERROR(fromRocks(s, recordContext(kCfImages, key)));
  Result<ImageRecord> image = codec::decodeImage(value.ToStringView());
  if (!image.isOk()) {
    return image.status().withContext(recordContext(kCfImages, key));
  }
  return std::optional<ImageRecord>(std::move(image).value());
}

// --- contexts ---

Status StateStore::putContext(const ContextRecord& context) {
  Batch batch = newBatch();
  batch.putContext(context);
  return batch.commit();
}

Result<std::optional<ContextRecord>> StateStore::getContext(const Digest& digest) {
  const std::string key = digest.toString();
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_->contexts, key, &value);
  if (s.IsNotFound()) {
    return std::optional<ContextRecord>();
  }
  LF_RETURN_IF_ERROR(fromRocks(s, recordContext(kCfContexts, key)));
  Result<ContextRecord> context = codec::decodeContext(value.ToStringView());
  if (!context.isOk()) {
    return context.status().withContext(recordContext(kCfContexts, key));
  }
  return std::optional<ContextRecord>(std::move(context).value());
}

Status StateStore::touchContext(const Digest& digest, int64_t now_unix_ms) {
  LF_ASSIGN_OR_RETURN(std::optional<ContextRecord> context, getContext(digest));
  if (!context) {
    return notFound(recordContext(kCfContexts, digest.toString()) + ": no such context");
  }
  if (context->last_used_unix_ms >= now_unix_ms) {
    return Status::ok();
  }
  context->last_used_unix_ms = now_unix_ms;
  return putContext(*context);
}

Status StateStore::forEachContext(const std::function<bool(const ContextRecord&)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), handles_->contexts));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    Result<ContextRecord> context = codec::decodeContext(it->value().ToStringView());
    if (!context.isOk()) {
      return context.status().withContext(recordContext(kCfContexts, it->key().ToStringView()));
    }
    if (!fn(*context)) {
      return Status::ok();
    }
  }
  return fromRocks(it->status(), "state contexts: iterate");
}

Status StateStore::removeContext(const Digest& digest) {
  const std::string key = digest.toString();
  rocksdb::WriteBatch batch;
  LF_RETURN_IF_ERROR(
      fromRocks(batch.Delete(handles_->contexts, key), recordContext(kCfContexts, key)));
  return write(batch, true, recordContext(kCfContexts, key));
}

}  // namespace lf::coordinator
