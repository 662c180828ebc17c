#include "worker/layer_store/layer_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <fstream>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "common/context/context_manifest.h"
#include "common/layer/unique_fd.h"
#include "worker/layer_store/context_materialize.h"
#include "worker/layer_store/layer_dirs.h"
#include "worker/layer_store/layer_meta.h"
#include "worker/layer_store/layer_store_impl.h"

namespace lf::worker {
namespace {

namespace fs = std::filesystem;
using layer::UniqueFd;
using Staging = LayerDirs::Staging;

int64_t realtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Removes a staging dir of ours at scope exit unless it was published (its name is then empty).
class StagingGuard {
 public:
  StagingGuard(const LayerDirs& dirs, Staging staging)
      : dirs_(dirs), staging_(std::move(staging)) {}
  ~StagingGuard() {
    dirs_.removeStaging(staging_).ignore();  // best effort; the caller reports its own error
  }
  Staging& get() { return staging_; }

 private:
  const LayerDirs& dirs_;
  Staging staging_;
};

// The kernel's id of this boot: it changes exactly when the page cache may have been lost.
Result<std::string> readBootId() {
  constexpr const char* kPath = "/proc/sys/kernel/random/boot_id";
  std::ifstream in(kPath);
  std::string id;
  if (!in || !std::getline(in, id) || id.empty()) {
    return unavailable(std::string("cannot read ") + kPath);
  }
  return id;
}

bool isValidBootId(const std::string& id) {
  return !id.empty() && id.find_first_of(" \t\n") == std::string::npos;
}

}  // namespace

std::string LayerStore::layerName(const Digest& diff_id) { return diff_id.hex().substr(0, 32); }

LayerMeta LayerStore::Impl::newMeta(const LayerRef& ref, uint64_t bytes) const {
  return LayerMeta{ref.diff_id, ref.digest, ref.media_type, bytes,
                   sync_each_publish ? std::string() : boot_id};
}

// Indexes every layer with sound metadata; moves out and deletes the ones whose metadata is
// missing or corrupt (unless another process holds them, which it cannot do for long: it would
// fail on their metadata too) and the ones an earlier boot left pending. Other failures only skip
// a layer: a transient error must not cost a good layer, and a worker must start despite a dir it
// cannot delete.
Status LayerStore::Impl::loadIndex() {
  LF_ASSIGN_OR_RETURN(auto names, dirs.listLayers());
  for (const std::string& name : names) {
    auto file = dirs.readMeta(name);
    if (!file.isOk() && file.status().code() != StatusCode::kNotFound &&
        file.status().code() != StatusCode::kDataLoss) {
      spdlog::warn("layer store skips a layer it cannot read layer={} error={}", dirs.where(name),
                   file.status().toString());
      continue;
    }
    if (file.isOk() && layerName(file->meta.diff_id) == name && dirs.hasFsDir(name)) {
      Durability d = durability(name, file->meta);
      if (d != Durability::kLost) {
        std::lock_guard lock(mu);
        insertLocked(name, std::move(file->meta), file->mtime_ns, d == Durability::kPending);
        last_stamp_ns = std::max(last_stamp_ns, file->mtime_ns);
        continue;
      }
      spdlog::info("layer store discards a layer not synced before a reboot layer={} boot={}",
                   dirs.where(name), file->meta.boot_id);
    }
    Staging trash;
    auto moved = dirs.moveOut(name, &trash);
    Status removed = !moved.isOk()                                ? moved.status()
                     : *moved == LayerDirs::MoveOutResult::kMoved ? dirs.removeStaging(trash)
                                                                  : Status::ok();
    if (!removed.isOk()) {
      spdlog::warn("layer store cannot delete a broken layer layer={} error={}", dirs.where(name),
                   removed.toString());
    }
  }
  return Status::ok();
}

Result<std::unique_ptr<LayerStore>> LayerStore::open(const LayerStoreOptions& options,
                                                     blob::BlobStore& blobs) {
  bool each_publish = options.sync && options.sync_mode == LayerSyncMode::kEachPublish;
  std::string boot_id = options.boot_id;
  if (!boot_id.empty() && !isValidBootId(boot_id)) {
    return invalidArgument("layer store boot_id '" + boot_id + "' holds whitespace");
  }
  if (boot_id.empty()) {
    auto read = readBootId();
    if (read.isOk() && isValidBootId(*read)) {
      boot_id = *read;
    } else {
      // Without it a reboot cannot be told from a restart: only syncing first is safe.
      spdlog::warn("layer store syncs before each publish: no boot id root={} error={}",
                   options.root.string(), read.status().toString());
      each_publish = options.sync;
      boot_id = "unknown";
    }
  }
  LF_ASSIGN_OR_RETURN(LayerDirs dirs, LayerDirs::open(options.root, each_publish, options.sync_fs));
  // Leftovers and eviction failures cost disk space, not correctness: warn and go on.
  Status cleaned = dirs.cleanStaging();
  if (!cleaned.isOk()) {
    spdlog::warn("layer store cannot clean leftovers root={} error={}", dirs.root().string(),
                 cleaned.toString());
  }
  auto impl = std::make_unique<Impl>(options, blobs, std::move(dirs));
  impl->boot_id = std::move(boot_id);
  impl->sync_each_publish = each_publish;
  impl->deferred = options.sync && !each_publish;
  LF_RETURN_IF_ERROR(impl->loadIndex());
  std::unique_ptr<LayerStore> store(new LayerStore(std::move(impl)));
  Status evicted = store->impl_->evict(/*only_if_over=*/false);
  if (!evicted.isOk()) {
    spdlog::warn("layer store eviction failed root={} error={}", store->impl_->dirs.root().string(),
                 evicted.toString());
  }
  if (store->impl_->deferred && options.sync_interval_ms > 0) {
    Impl* raw = store->impl_.get();
    raw->flusher = std::thread([raw] { raw->flusherLoop(); });
  }
  return store;
}

LayerStore::LayerStore(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)), layers_dir_(impl_->dirs.layersDir()) {}

LayerStore::~LayerStore() {
  // A live Lease would unpin through a dangling pointer later.
  LF_CHECK(impl_->pinned == 0, "LayerStore destroyed while a Lease is alive");
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->flusher_cv.notify_all();
  if (impl_->flusher.joinable()) {
    impl_->flusher.join();
  }
  // What this process published should not be lost to a reboot that follows its exit.
  Status flushed = impl_->flush();
  if (!flushed.isOk()) {
    spdlog::warn("layer store flush at close failed root={} error={}", impl_->dirs.root().string(),
                 flushed.toString());
  }
}

int64_t LayerStore::Impl::stampLocked() {
  // Strictly increasing, so two uses in the same nanosecond still have an order.
  last_stamp_ns = std::max(realtimeNs(), last_stamp_ns + 1);
  return last_stamp_ns;
}

Status LayerStore::Impl::collision(const std::string& name, const Digest& held,
                                   const Digest& wanted) const {
  return internalError("layer store name collision: '" + dirs.where(name) + "' holds " +
                       held.toString() + ", wanted " + wanted.toString());
}

// Adds an unpinned layer (or refreshes one already indexed).
void LayerStore::Impl::insertLocked(const std::string& name, LayerMeta meta, int64_t last_use_ns,
                                    bool pending) {
  auto [it, inserted] = index.try_emplace(name);
  Entry& e = it->second;
  if (!inserted) {
    total_bytes -= e.meta.bytes;
  }
  total_bytes += meta.bytes;
  e.meta = std::move(meta);
  e.last_use_ns = std::max(e.last_use_ns, last_use_ns);
  e.pending = pending;
}

// `lock_fd` holds the shared lock when the entry is not pinned yet; it is dropped otherwise.
void LayerStore::Impl::pinLocked(const std::string& name, Entry& e, UniqueFd lock_fd) {
  if (e.pins++ == 0) {
    e.lock_fd = std::move(lock_fd);
    ++pinned;
  }
  e.last_use_ns = stampLocked();
  dirs.touch(name, e.last_use_ns);
}

void LayerStore::Impl::eraseLocked(const std::string& name) {
  auto it = index.find(name);
  if (it != index.end()) {
    total_bytes -= it->second.meta.bytes;
    index.erase(it);
  }
}

void LayerStore::Impl::finishFlightLocked(const std::string& name, const Status& status) {
  auto it = in_flight.find(name);
  if (it != in_flight.end()) {
    it->second->done = true;
    it->second->status = status;
    in_flight.erase(it);
  }
  cv.notify_all();
}

// Unpacks the layer's blob into a staging dir and publishes it. Outside the mutex.
Result<LayerStore::Impl::Pinned> LayerStore::Impl::fetch(const LayerRef& ref,
                                                         const std::string& name) {
  if (ref.digest.empty()) {
    return invalidArgument("layer " + ref.diff_id.toString() +
                           " is not in the layer store and has no blob digest to fetch it by");
  }
  if (ref.media_type == context::kContextManifestMediaType) {
    return fetchContext(ref, name);
  }
  const std::string what =
      "layer " + ref.diff_id.toString() + " (blob " + ref.digest.toString() + ")";
  auto reader = blobs.openReader(ref.digest);
  if (!reader.isOk()) {
    if (reader.status().code() == StatusCode::kNotFound) {
      return notFound("blob " + ref.digest.toString() + " of layer " + ref.diff_id.toString() +
                      " is not in the blob store");
    }
    return reader.status().withContext("fetch " + what);
  }
  LF_ASSIGN_OR_RETURN(Staging made, dirs.makeStaging("unpack"));
  StagingGuard staging(dirs, std::move(made));
  fs::path fs_dir = dirs.tmpDir() / staging.get().name / LayerDirs::kFsDir;
  if (mkdir(fs_dir.c_str(), 0755) != 0) {
    return errnoStatus(errno, "create directory '" + fs_dir.string() + "'");
  }
  layer::ApplyOptions apply;
  apply.whiteouts = layer::WhiteoutMode::kOverlay;
  apply.devices = options.devices;
  apply.expected_diff_id = ref.diff_id;
  auto applied = layer::applyLayer(**reader, fs_dir, apply);
  if (!applied.isOk()) {
    return applied.status().withContext("unpack " + what);
  }
  LF_ASSIGN_OR_RETURN(uint64_t bytes, treeBytes(fs_dir));
  LayerMeta meta = newMeta(ref, bytes);
  LF_RETURN_IF_ERROR(dirs.writeMeta(staging.get(), meta));
  return publishOrUseExisting(staging.get(), std::move(meta), name);
}

// A build context given by its manifest (context_materialize.h): built from the file blobs into a
// staging dir and published like an unpacked layer. Outside the mutex.
Result<LayerStore::Impl::Pinned> LayerStore::Impl::fetchContext(const LayerRef& ref,
                                                                const std::string& name) {
  // The tree's identity is the manifest's digest: a ref naming another diff ID would publish
  // this tree under a name that promises different contents.
  if (ref.digest != ref.diff_id) {
    return invalidArgument("context manifest " + ref.digest.toString() +
                           ": its diff ID must be its digest, not " + ref.diff_id.toString());
  }
  LF_ASSIGN_OR_RETURN(context::ContextManifest manifest, readContextManifest(blobs, ref.digest));
  LF_ASSIGN_OR_RETURN(Staging made, dirs.makeStaging("context"));
  StagingGuard staging(dirs, std::move(made));
  fs::path fs_dir = dirs.tmpDir() / staging.get().name / LayerDirs::kFsDir;
  if (mkdir(fs_dir.c_str(), 0755) != 0) {
    return errnoStatus(errno, "create directory '" + fs_dir.string() + "'");
  }
  UniqueFd fs_fd(::open(fs_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fs_fd) {
    return errnoStatus(errno, "open directory '" + fs_dir.string() + "'");
  }
  auto made_tree = materializeContext(manifest, blobs, fs_fd.get(), {options.devices});
  if (!made_tree.isOk()) {
    return made_tree.status().withContext("materialize context " + ref.digest.toString());
  }
  // The budget counts the files' bytes, known from the manifest: no walk.
  LayerMeta meta = newMeta(ref, made_tree->file_bytes);
  LF_RETURN_IF_ERROR(dirs.writeMeta(staging.get(), meta));
  return publishOrUseExisting(staging.get(), std::move(meta), name);
}

// Publishes a staged layer, or pins the copy another process published first (ours is then
// deleted by the caller's guard). That copy may be evicted before we lock it; then ours goes in
// after all, so the loop ends unless other processes keep publishing and evicting this layer.
Result<LayerStore::Impl::Pinned> LayerStore::Impl::publishOrUseExisting(Staging& staging,
                                                                        LayerMeta meta,
                                                                        const std::string& name) {
  constexpr int kAttempts = 100;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    LF_ASSIGN_OR_RETURN(auto published, dirs.publish(staging, name));
    if (published) {
      bool pending = !meta.boot_id.empty();
      return Pinned{std::move(meta), std::move(*published), true, pending};
    }
    LF_ASSIGN_OR_RETURN(auto existing, lockExisting(name));
    if (existing) {
      existing->fetched = true;
      return std::move(*existing);
    }
  }
  return unavailable("layer '" + dirs.where(name) + "': other processes published and evicted it " +
                     std::to_string(kAttempts) + " times while this one tried to publish it");
}

// l/<name> as another process published it, locked, or nullopt when there is no usable layer
// there: none, or one that is damaged or was left pending by an earlier boot, which is deleted.
// Outside the mutex.
Result<std::optional<LayerStore::Impl::Pinned>> LayerStore::Impl::lockExisting(
    const std::string& name) {
  LF_ASSIGN_OR_RETURN(auto locked, dirs.lockShared(name));
  if (!locked) {
    return std::optional<Pinned>();
  }
  auto file = dirs.readMeta(name);
  Status bad;
  if (!file.isOk()) {
    bad = file.status();  // published dirs always carry whole metadata: this one is damaged
  } else if (Durability d = durability(name, file->meta); d != Durability::kLost) {
    return std::optional<Pinned>(
        Pinned{std::move(file->meta), std::move(*locked), false, d == Durability::kPending});
  } else {
    bad = dataLoss("layer '" + dirs.where(name) + "' was not synced before boot " +
                   file->meta.boot_id + " ended");
  }
  locked->reset();
  Staging trash;
  LF_ASSIGN_OR_RETURN(auto moved, dirs.moveOut(name, &trash));
  if (moved == LayerDirs::MoveOutResult::kMoved) {
    LF_RETURN_IF_ERROR(dirs.removeStaging(trash));
  } else if (moved == LayerDirs::MoveOutResult::kBusy) {
    return bad.withContext("layer in use by another process");
  }
  return std::optional<Pinned>();
}

// Outside the mutex: the layer may be on disk already (another process published it since our
// index was loaded); otherwise fetch it.
Result<LayerStore::Impl::Pinned> LayerStore::Impl::loadOrFetch(const LayerRef& ref,
                                                               const std::string& name) {
  LF_ASSIGN_OR_RETURN(auto existing, lockExisting(name));
  if (existing) {
    return std::move(*existing);
  }
  return fetch(ref, name);
}

// Pins one layer, fetching it if needed; true when it was fetched.
Result<bool> LayerStore::Impl::pinOne(const LayerRef& ref, const std::string& name) {
  std::unique_lock lock(mu);
  while (true) {
    auto it = index.find(name);
    if (it != index.end()) {
      Entry& e = it->second;
      if (e.meta.diff_id != ref.diff_id) {
        return collision(name, e.meta.diff_id, ref.diff_id);
      }
      if (e.pins == 0) {
        // Brief syscalls under the mutex: the only wait is for another process's evictor,
        // which holds its exclusive lock for a check and a rename.
        LF_ASSIGN_OR_RETURN(auto locked, dirs.lockShared(name));
        if (!locked) {
          eraseLocked(name);  // evicted by another process
          continue;
        }
        pinLocked(name, e, std::move(*locked));
      } else {
        pinLocked(name, e, UniqueFd());
      }
      ++hits;
      return false;
    }
    if (auto f = in_flight.find(name); f != in_flight.end()) {
      std::shared_ptr<InFlight> flight = f->second;
      cv.wait(lock, [&] { return flight->done; });
      if (!flight->status.isOk()) {
        return flight->status;
      }
      continue;
    }
    in_flight.emplace(name, std::make_shared<InFlight>());
    lock.unlock();
    auto got = loadOrFetch(ref, name);
    lock.lock();
    finishFlightLocked(name, got.status());
    if (!got.isOk()) {
      return got.status();
    }
    if (got->meta.diff_id != ref.diff_id) {
      return collision(name, got->meta.diff_id, ref.diff_id);
    }
    ++(got->fetched ? misses : hits);
    insertLocked(name, std::move(got->meta), 0, got->pending);
    pinLocked(name, index[name], std::move(got->lock_fd));
    return got->fetched;
  }
}

Result<LayerStore::Lease> LayerStore::acquire(const std::vector<LayerRef>& chain) {
  Lease lease;
  lease.store_ = this;
  bool grew = false;
  for (const LayerRef& ref : chain) {
    if (ref.diff_id.empty()) {
      return invalidArgument("acquire: a layer of the chain has no diff ID");
    }
    std::string name = layerName(ref.diff_id);
    LF_ASSIGN_OR_RETURN(bool fetched, impl_->pinOne(ref, name));  // ~Lease unpins on error
    grew = grew || fetched;
    lease.dirs_.push_back(layers_dir_ / name / LayerDirs::kFsDir);
    lease.names_.push_back(std::move(name));
  }
  // After an unpack, the rescan (cheap next to the unpack) also counts what other processes
  // added since, so the budget holds for the whole root, not just for this process's view.
  Status evicted = impl_->evict(/*only_if_over=*/!grew);
  if (!evicted.isOk()) {
    // The chain is ready; a failed eviction must not fail the step. The next one retries.
    spdlog::warn("layer store eviction failed root={} error={}", impl_->dirs.root().string(),
                 evicted.toString());
  }
  return lease;
}

void LayerStore::unpin(const std::vector<std::string>& names) {
  std::lock_guard lock(impl_->mu);
  for (const std::string& name : names) {
    auto it = impl_->index.find(name);
    // A pinned layer stays indexed until unpinned: nothing else erases it (an invariant).
    LF_CHECK(it != impl_->index.end() && it->second.pins > 0, "unpin of a layer not pinned");
    Impl::Entry& e = it->second;
    if (--e.pins == 0) {
      e.last_use_ns = impl_->stampLocked();
      impl_->dirs.touch(name, e.last_use_ns);
      e.lock_fd.reset();
      --impl_->pinned;
    }
  }
}

Status LayerStore::Impl::adoptStaged(const LayerRef& ref, const fs::path& dir,
                                     const std::string& name) {
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return invalidArgument("adopt: '" + dir.string() + "' is not a directory");
  }
  LF_ASSIGN_OR_RETURN(uint64_t bytes, treeBytes(dir));
  LayerMeta meta = newMeta(ref, bytes);
  LF_ASSIGN_OR_RETURN(Staging made, dirs.makeStaging("adopt"));
  StagingGuard staging(dirs, std::move(made));
  LF_RETURN_IF_ERROR(dirs.writeMeta(staging.get(), meta));
  fs::path fs_dir = dirs.tmpDir() / staging.get().name / LayerDirs::kFsDir;
  if (rename(dir.c_str(), fs_dir.c_str()) != 0) {
    if (errno == EXDEV) {
      return invalidArgument("adopt: '" + dir.string() +
                             "' is not on the layer store's filesystem (" + dirs.root().string() +
                             ")");
    }
    return errnoStatus(errno, "adopt: move '" + dir.string() + "' into the layer store");
  }
  auto published = dirs.publish(staging.get(), name);
  if (published.isOk() && *published) {
    std::lock_guard lock(mu);
    int64_t now = stampLocked();
    bool pending = !meta.boot_id.empty();
    insertLocked(name, std::move(meta), now, pending);
    dirs.touch(name, now);
    return Status::ok();  // unpinned from here on; the shared lock goes with `published`
  }
  // Give the caller its dir back; the guard deletes the rest of the staging dir.
  if (rename(fs_dir.c_str(), dir.c_str()) != 0) {
    return errnoStatus(errno, "adopt: move '" + dir.string() + "' back after a failed adoption");
  }
  if (!published.isOk()) {
    return published.status();
  }
  return alreadyExists("adopt: the layer store already has layer " + ref.diff_id.toString());
}

Status LayerStore::adopt(const LayerRef& ref, const fs::path& dir) {
  if (ref.diff_id.empty()) {
    return invalidArgument("adopt: the layer has no diff ID");
  }
  std::string name = layerName(ref.diff_id);
  {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->index.find(name);
    if (it != impl_->index.end() && it->second.pins == 0 && !impl_->dirs.hasFsDir(name)) {
      impl_->eraseLocked(name);  // evicted by another process: adopting it again is welcome
    } else if (it != impl_->index.end() || impl_->in_flight.count(name) != 0) {
      return alreadyExists("adopt: the layer store already has layer " + ref.diff_id.toString());
    }
    impl_->in_flight.emplace(name, std::make_shared<Impl::InFlight>());
  }
  Status status = impl_->adoptStaged(ref, dir, name);
  {
    std::lock_guard lock(impl_->mu);
    // Waiters retry from the index (and, if adoption failed, unpack themselves).
    impl_->finishFlightLocked(name, Status::ok());
  }
  LF_RETURN_IF_ERROR(status);
  return impl_->evict(/*only_if_over=*/false);  // see acquire()
}

// Brings the index up to date with l/: layers other processes published or evicted, and their
// last use. A listing plus one stat per layer; metadata is read only for unknown layers.
void LayerStore::Impl::rescanLocked() {
  auto names = dirs.listLayers();
  if (!names.isOk()) {
    return;  // keep the current view; eviction then works from it
  }
  std::unordered_set<std::string> on_disk(names->begin(), names->end());
  for (const std::string& name : *names) {
    auto it = index.find(name);
    if (it != index.end()) {
      if (it->second.pins == 0) {  // another process may have used it since
        it->second.last_use_ns = std::max(it->second.last_use_ns, dirs.lastUse(name).value_or(0));
      }
    } else if (in_flight.count(name) == 0) {  // in flight: its owner indexes it
      auto file = dirs.readMeta(name);
      if (file.isOk() && layerName(file->meta.diff_id) == name) {
        // A layer lost to a reboot is left out; whoever wants it replaces it (lockExisting).
        Durability d = durability(name, file->meta);
        if (d != Durability::kLost) {
          insertLocked(name, std::move(file->meta), file->mtime_ns, d == Durability::kPending);
        }
      }
    }
  }
  for (auto it = index.begin(); it != index.end();) {
    if (it->second.pins == 0 && on_disk.count(it->first) == 0) {
      total_bytes -= it->second.meta.bytes;
      it = index.erase(it);
    } else {
      ++it;
    }
  }
}

Status LayerStore::Impl::evict(bool only_if_over) {
  std::vector<Staging> trash;
  Status status;
  {
    std::lock_guard lock(mu);
    if (only_if_over && total_bytes <= options.budget_bytes) {
      return Status::ok();
    }
    rescanLocked();
    std::vector<std::pair<int64_t, std::string>> candidates;
    for (const auto& [name, e] : index) {
      if (e.pins == 0) {
        candidates.emplace_back(e.last_use_ns, name);
      }
    }
    std::sort(candidates.begin(), candidates.end());
    for (const auto& [ns, name] : candidates) {
      if (total_bytes <= options.budget_bytes) {
        break;
      }
      Staging moved_to;
      auto moved = dirs.moveOut(name, &moved_to);
      if (!moved.isOk()) {
        status = moved.status();
        break;
      }
      if (*moved == LayerDirs::MoveOutResult::kBusy) {
        continue;  // pinned by another process
      }
      if (*moved == LayerDirs::MoveOutResult::kMoved) {
        trash.push_back(std::move(moved_to));
        ++evictions;
      }
      eraseLocked(name);
    }
  }
  // Deleting can take long; it runs outside the mutex, on dirs nobody can reach any more.
  for (Staging& t : trash) {
    Status removed = dirs.removeStaging(t);
    if (status.isOk() && !removed.isOk()) {
      status = removed.withContext("delete an evicted layer");
    }
  }
  return status;
}

Status LayerStore::evictToBudget() { return impl_->evict(/*only_if_over=*/false); }

bool LayerStore::contains(const Digest& diff_id) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->index.find(layerName(diff_id));
  return it != impl_->index.end() && it->second.meta.diff_id == diff_id;
}

std::vector<Digest> LayerStore::diffIds() const {
  std::lock_guard lock(impl_->mu);
  std::vector<Digest> ids;
  ids.reserve(impl_->index.size());
  for (const auto& [name, entry] : impl_->index) {
    ids.push_back(entry.meta.diff_id);
  }
  return ids;
}

LayerStore::Stats LayerStore::stats() const {
  std::lock_guard lock(impl_->mu);
  Stats stats{impl_->index.size(),
              impl_->total_bytes,
              impl_->pinned,
              impl_->hits,
              impl_->misses,
              impl_->evictions,
              0,
              impl_->flushes};
  for (const auto& [name, entry] : impl_->index) {
    stats.pending += entry.pending ? 1 : 0;
  }
  return stats;
}

LayerStore::Lease::Lease(Lease&& other) noexcept
    : store_(std::exchange(other.store_, nullptr)),
      names_(std::move(other.names_)),
      dirs_(std::move(other.dirs_)) {
  other.names_.clear();
  other.dirs_.clear();
}

LayerStore::Lease& LayerStore::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    release();
    store_ = std::exchange(other.store_, nullptr);
    names_ = std::move(other.names_);
    dirs_ = std::move(other.dirs_);
    other.names_.clear();
    other.dirs_.clear();
  }
  return *this;
}

void LayerStore::Lease::release() {
  if (store_ != nullptr && !names_.empty()) {
    store_->unpin(names_);
  }
  store_ = nullptr;
  names_.clear();
  dirs_.clear();
}

std::vector<std::string> LayerStore::Lease::relativeDirs() const {
  std::vector<std::string> out;
  out.reserve(names_.size());
  for (const std::string& name : names_) {
    out.push_back(name + "/" + LayerDirs::kFsDir);
  }
  return out;
}

std::vector<std::string> LayerStore::Lease::overlayLowerDirs() const {
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  for (auto it = names_.rbegin(); it != names_.rend(); ++it) {
    if (seen.insert(*it).second) {
      out.push_back(*it + "/" + LayerDirs::kFsDir);
    }
  }
  return out;
}

Result<LayerStore::ScratchDir> LayerStore::makeScratchDir() {
  LF_ASSIGN_OR_RETURN(Staging staging, impl_->dirs.makeStaging("scratch"));
  ScratchDir scratch;
  scratch.dirs_ = &impl_->dirs;
  scratch.path_ = impl_->dirs.tmpDir() / staging.name;
  scratch.name_ = std::move(staging.name);
  scratch.lock_fd_ = std::move(staging.lock_fd);
  return scratch;
}

LayerStore::ScratchDir::~ScratchDir() {
  remove().ignore();  // best effort; callers that care call remove() themselves
}

LayerStore::ScratchDir::ScratchDir(ScratchDir&& other) noexcept
    : dirs_(std::exchange(other.dirs_, nullptr)),
      name_(std::exchange(other.name_, {})),
      lock_fd_(std::move(other.lock_fd_)),
      path_(std::exchange(other.path_, {})) {}

LayerStore::ScratchDir& LayerStore::ScratchDir::operator=(ScratchDir&& other) noexcept {
  if (this != &other) {
    remove().ignore();  // best effort, as in the destructor
    dirs_ = std::exchange(other.dirs_, nullptr);
    name_ = std::exchange(other.name_, {});
    lock_fd_ = std::move(other.lock_fd_);
    path_ = std::exchange(other.path_, {});
  }
  return *this;
}

Status LayerStore::ScratchDir::remove() {
  if (dirs_ == nullptr) {
    return Status::ok();
  }
  Staging staging{std::move(name_), std::move(lock_fd_)};
  const LayerDirs* dirs = std::exchange(dirs_, nullptr);
  path_.clear();
  return dirs->removeStaging(staging);
}

}  // namespace lf::worker
