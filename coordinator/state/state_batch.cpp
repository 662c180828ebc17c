// StateStore::Batch, key encodings and record validation (state_store_internal.h).

#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <map>
#include <set>

#include "coordinator/state/record_codec.h"
#include "coordinator/state/rocks_status.h"
#include "coordinator/state/state_store.h"
#include "coordinator/state/state_store_internal.h"

namespace lf::coordinator {

// --- keys ---

std::string invertedTimeBytes(int64_t created_unix_ms) {
  // Big-endian INT64_MAX - t: ascending bytes = descending time. Negative times (never written
  // by the coordinator, refused by validate()) would not fit.
  uint64_t v = static_cast<uint64_t>(INT64_MAX - created_unix_ms);
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[static_cast<size_t>(i)] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

std::string aliasKey(const Digest& parent_chain_id, const Digest& instruction_digest) {
  return parent_chain_id.toString() + " " + instruction_digest.toString();
}

std::string buildIndexAllKey(int64_t created_unix_ms, std::string_view id) {
  return "a" + invertedTimeBytes(created_unix_ms) + std::string(id);
}

std::string buildIndexTenantPrefix(std::string_view tenant) {
  std::string out = "t" + std::string(tenant);
  out.push_back('\0');
  return out;
}

std::string buildIndexTenantKey(std::string_view tenant, int64_t created_unix_ms,
                                std::string_view id) {
  return buildIndexTenantPrefix(tenant) + invertedTimeBytes(created_unix_ms) + std::string(id);
}

std::string buildIndexActiveKey(std::string_view id) { return "r" + std::string(id); }

std::string imageManifestKey(const Digest& digest) { return "m/" + digest.toString(); }
std::string imageRefKey(std::string_view ref) { return "r/" + std::string(ref); }

std::string recordContext(std::string_view cf, std::string_view key) {
  return "state " + std::string(cf) + " " + std::string(key);
}

// --- validation ---

Status validate(const CacheEntry& entry) {
  if (entry.key.empty()) {
    return invalidArgument("state cache: entry without a key");
  }
  const std::string ctx = recordContext(kCfCache, entry.key.toString());
  if (entry.layer.digest.empty()) {
    return invalidArgument(ctx + ": layer.digest is empty");
  }
  if (entry.layer.media_type.empty()) {
    return invalidArgument(ctx + ": layer.media_type is empty");
  }
  return Status::ok();
}

Status validate(const Alias& alias) {
  if (alias.parent_chain_id.empty() || alias.instruction_digest.empty() ||
      alias.cache_key.empty()) {
    return invalidArgument(
        "state aliases: parent_chain_id, instruction_digest and cache_key are all required");
  }
  return Status::ok();
}

Status validate(const BuildRecord& build) {
  if (build.id.empty()) {
    return invalidArgument("state builds: build without an id");
  }
  if (build.tenant.find('\0') != std::string::npos) {
    return invalidArgument(recordContext(kCfBuilds, build.id) + ": tenant contains a NUL byte");
  }
  if (build.created_unix_ms < 0) {
    return invalidArgument(recordContext(kCfBuilds, build.id) + ": created_unix_ms is negative");
  }
  return Status::ok();
}

Status validate(const JobRecord& job) {
  if (job.id.empty()) {
    return invalidArgument("state jobs: job without an id");
  }
  return Status::ok();
}

Status validate(const ImageRecord& image) {
  if (image.manifest_digest.empty()) {
    return invalidArgument("state images: image without a manifest digest");
  }
  for (const std::string& ref : image.references) {
    if (ref.empty() || ref.find('@') != std::string::npos || ref.starts_with("sha256:")) {
      return invalidArgument(recordContext(kCfImages, image.manifest_digest.toString()) +
                             ": reference \"" + ref + "\" is not a name:tag reference");
    }
  }
  return Status::ok();
}

Status validate(const ContextRecord& context) {
  if (context.digest.empty()) {
    return invalidArgument("state contexts: context without a digest");
  }
  return Status::ok();
}

Result<std::optional<CacheEntry>> decodeStoredCacheEntry(std::string_view key,
                                                         std::string_view value) {
  if (value.empty()) {
    return std::optional<CacheEntry>();
  }
  Result<CacheEntry> entry = codec::decodeCacheEntry(value);
  if (!entry.isOk()) {
    return entry.status().withContext(recordContext(kCfCache, key));
  }
  if (entry->key.toString() != key) {
    return dataLoss(recordContext(kCfCache, key) + ": record is for key " + entry->key.toString());
  }
  return std::optional<CacheEntry>(std::move(entry).value());
}

Result<std::optional<CacheEntry>> lookupForPut(StateStore& store, const Digest& key) {
  Result<std::optional<CacheEntry>> existing = store.lookup(key);
  if (existing.status().code() == StatusCode::kDataLoss) {
    spdlog::warn("state cache entry damaged, replacing it key={} error={}", key.toString(),
                 existing.status().message());
    return std::optional<CacheEntry>();
  }
  return existing;
}

// --- Batch ---

struct StateStore::Batch::Impl {
  StateStore* store = nullptr;
  rocksdb::WriteBatch batch;
  std::vector<CacheEntry> cache_entries;
  Status error;  // the first invalid record; commit() returns it
  size_t ops = 0;

  void fail(Status status) {
    if (error.isOk()) {
      error = std::move(status);
    }
  }
  void put(rocksdb::ColumnFamilyHandle* cf, std::string_view cf_name, std::string_view key,
           std::string_view value) {
    fail(fromRocks(batch.Put(cf, key, value), recordContext(cf_name, key)));
  }
  void del(rocksdb::ColumnFamilyHandle* cf, std::string_view cf_name, std::string_view key) {
    fail(fromRocks(batch.Delete(cf, key), recordContext(cf_name, key)));
  }
};

StateStore::Batch::Batch(StateStore* store) : impl_(std::make_unique<Impl>()) {
  impl_->store = store;
}
StateStore::Batch::Batch(Batch&&) noexcept = default;
StateStore::Batch& StateStore::Batch::operator=(Batch&&) noexcept = default;
StateStore::Batch::~Batch() = default;

size_t StateStore::Batch::size() const { return impl_->ops; }

void StateStore::Batch::putCacheEntry(const CacheEntry& entry) {
  ++impl_->ops;
  impl_->fail(validate(entry));
  impl_->cache_entries.push_back(entry);
}

void StateStore::Batch::putAlias(const Alias& alias) {
  ++impl_->ops;
  impl_->fail(validate(alias));
  impl_->put(impl_->store->handles_->aliases, kCfAliases,
             aliasKey(alias.parent_chain_id, alias.instruction_digest), codec::encode(alias));
}

void StateStore::Batch::putBuild(const BuildRecord& build) {
  ++impl_->ops;
  Status valid = validate(build);
  if (!valid.isOk()) {
    impl_->fail(std::move(valid));
    return;
  }
  const Handles& h = *impl_->store->handles_;
  impl_->put(h.builds, kCfBuilds, build.id, codec::encode(build));
  impl_->put(h.build_index, kCfBuildIndex, buildIndexAllKey(build.created_unix_ms, build.id), "");
  impl_->put(h.build_index, kCfBuildIndex,
             buildIndexTenantKey(build.tenant, build.created_unix_ms, build.id), "");
  if (isFinished(build.state)) {
    impl_->del(h.build_index, kCfBuildIndex, buildIndexActiveKey(build.id));
  } else {
    impl_->put(h.build_index, kCfBuildIndex, buildIndexActiveKey(build.id), "");
  }
}

void StateStore::Batch::putJob(const JobRecord& job) {
  ++impl_->ops;
  impl_->fail(validate(job));
  impl_->put(impl_->store->handles_->jobs, kCfJobs, job.id, codec::encode(job));
}

void StateStore::Batch::deleteJob(std::string_view job_id) {
  ++impl_->ops;
  impl_->del(impl_->store->handles_->jobs, kCfJobs, job_id);
}

void StateStore::Batch::putImage(const ImageRecord& image) {
  ++impl_->ops;
  Status valid = validate(image);
  if (!valid.isOk()) {
    impl_->fail(std::move(valid));
    return;
  }
  const Handles& h = *impl_->store->handles_;
  impl_->put(h.images, kCfImages, imageManifestKey(image.manifest_digest), codec::encode(image));
  for (const std::string& ref : image.references) {
    impl_->put(h.images, kCfImages, imageRefKey(ref), image.manifest_digest.toString());
  }
}

void StateStore::Batch::putContext(const ContextRecord& context) {
  ++impl_->ops;
  impl_->fail(validate(context));
  impl_->put(impl_->store->handles_->contexts, kCfContexts, context.digest.toString(),
             codec::encode(context));
}

Status StateStore::Batch::commit(const BlobCheck& check) {
  Impl& b = *impl_;
  LF_RETURN_IF_ERROR(b.error);
  if (b.cache_entries.empty()) {
    LF_RETURN_IF_ERROR(b.store->write(b.batch, true, "state: commit batch"));
    b.batch.Clear();
    b.ops = 0;
    return Status::ok();
  }
  // Blobs are confirmed before anything is written, outside the lock (a stat may be a network
  // round trip to a registry-backed store).
  for (const CacheEntry& entry : b.cache_entries) {
    const std::string ctx = recordContext(kCfCache, entry.key.toString());
    if (!check) {
      return invalidArgument(ctx + ": the batch holds a cache entry but no blob check was given");
    }
    LF_RETURN_IF_ERROR(check(entry.layer).withContext(ctx));
  }
  Handles& h = *b.store->handles_;
  // The stripes of every key in the batch, locked in index order so two batches cannot
  // deadlock.
  std::set<size_t> stripes;
  for (const CacheEntry& entry : b.cache_entries) {
    stripes.insert(std::hash<Digest>()(entry.key) % Handles::kCachePutStripes);
  }
  std::vector<std::unique_lock<std::mutex>> locks;
  for (size_t stripe : stripes) {
    locks.emplace_back(h.cache_put_mu[stripe]);
  }
  // The cache puts go into a copy, so a failed commit leaves the batch as the caller built it.
  rocksdb::WriteBatch wb = b.batch;
  std::map<Digest, Digest> in_batch;  // key -> layer digest, for a key put twice in one batch
  for (const CacheEntry& entry : b.cache_entries) {
    const std::string key = entry.key.toString();
    std::optional<Digest> stored_layer;
    if (auto it = in_batch.find(entry.key); it != in_batch.end()) {
      stored_layer = it->second;
    } else {
      LF_ASSIGN_OR_RETURN(std::optional<CacheEntry> existing, lookupForPut(*b.store, entry.key));
      if (existing) {
        stored_layer = existing->layer.digest;
      }
    }
    if (stored_layer && *stored_layer != entry.layer.digest) {
      return alreadyExists(recordContext(kCfCache, key) + ": already stored with layer " +
                           stored_layer->toString() + ", not " + entry.layer.digest.toString() +
                           "; nothing in the batch was written");
    }
    if (!stored_layer) {
      LF_RETURN_IF_ERROR(
          fromRocks(wb.Put(h.cache, key, codec::encode(entry)), recordContext(kCfCache, key)));
      in_batch.emplace(entry.key, entry.layer.digest);
    }
  }
  LF_RETURN_IF_ERROR(b.store->write(wb, true, "state: commit batch"));
  b.batch.Clear();
  b.cache_entries.clear();
  b.ops = 0;
  return Status::ok();
}

}  // namespace lf::coordinator
