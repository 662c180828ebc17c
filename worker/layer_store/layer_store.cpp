#include "worker/layer_store/layer_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "common/layer/secure_fs.h"
#include "common/layer/unique_fd.h"
#include "worker/layer_store/layer_meta.h"

namespace lf::worker {
namespace {

namespace fs = std::filesystem;
using layer::UniqueFd;

constexpr size_t kNameHexChars = 32;
constexpr const char* kFsDir = "fs";
constexpr const char* kMetaFile = "meta";

bool isLayerName(std::string_view name) {
  return name.size() == kNameHexChars && std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

int64_t realtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

bool sameInode(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

Result<UniqueFd> openDir(const fs::path& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    return errnoStatus(errno, "open '" + path.string() + "'");
  }
  return fd;
}

Status makeDir(const fs::path& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
    return errnoStatus(errno, "create directory '" + path.string() + "'");
  }
  return Status::ok();
}

int flockRetry(int fd, int op) {
  int rc;
  do {
    rc = flock(fd, op);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

}  // namespace

struct LayerStore::Impl {
  struct Entry {
    LayerMeta meta;
    int64_t last_use_ns = 0;
    uint32_t pins = 0;
    UniqueFd lock_fd;  // l/<name>, flock(LOCK_SH) while pins > 0
  };
  // One unpack or adoption of a layer in progress in this process; others wanting it wait.
  struct InFlight {
    bool done = false;
    Status status;
  };
  // What a locked-and-verified layer dir yields.
  struct Pinned {
    LayerMeta meta;
    UniqueFd lock_fd;
    bool fetched = false;
  };
  enum class RemoveResult { kRemoved, kBusy, kGone };

  Impl(const LayerStoreOptions& o, blob::BlobStore& b) : options(o), blobs(b) {}

  Status openDirs();
  Status cleanStaging();
  Status loadIndex();
  Status pinOne(const LayerRef& ref, const std::string& name);
  Result<Pinned> loadOrFetch(const LayerRef& ref, const std::string& name);
  Result<Pinned> fetch(const LayerRef& ref, const std::string& name);
  Result<std::optional<UniqueFd>> lockShared(const std::string& name);
  Result<std::optional<UniqueFd>> publish(const std::string& staging, const std::string& name);
  Result<std::string> makeStaging(const char* prefix);
  Result<RemoveResult> removeLayerDir(const std::string& name, std::string* trash);
  Status adoptStaged(const LayerRef& ref, const fs::path& dir, const std::string& name);
  void rescanLocked();
  Status evict(bool only_if_over);
  void insertLocked(const std::string& name, LayerMeta meta, UniqueFd lock_fd, uint32_t pins);
  void pinLocked(const std::string& name, Entry& e, UniqueFd lock_fd);
  void eraseLocked(const std::string& name);
  void finishFlightLocked(const std::string& name, const Status& status);
  int64_t stampLocked();
  void touch(const std::string& name, int64_t ns);
  std::string where(const std::string& name) const { return (layers_dir / name).string(); }

  LayerStoreOptions options;
  blob::BlobStore& blobs;
  fs::path root, layers_dir, tmp_dir;
  UniqueFd layers_fd, tmp_fd, store_lock_fd;

  mutable std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<std::string, Entry> index;
  std::unordered_map<std::string, std::shared_ptr<InFlight>> in_flight;
  uint64_t total_bytes = 0, pinned = 0, hits = 0, misses = 0, evictions = 0;
  int64_t last_stamp_ns = 0;
};

std::string LayerStore::layerName(const Digest& diff_id) {
  return diff_id.hex().substr(0, kNameHexChars);
}

Status LayerStore::Impl::openDirs() {
  std::error_code ec;
  root = fs::absolute(options.root, ec).lexically_normal();
  if (ec || root.empty()) {
    return invalidArgument("layer store root '" + options.root.string() + "' is not usable");
  }
  if (root.filename().empty()) {
    root = root.parent_path();
  }
  layers_dir = root / "l";
  tmp_dir = root / "tmp";
  fs::create_directories(root.parent_path(), ec);  // a failure shows in makeDir below
  LF_RETURN_IF_ERROR(makeDir(root, 0700));
  LF_RETURN_IF_ERROR(makeDir(layers_dir, 0700));
  LF_RETURN_IF_ERROR(makeDir(tmp_dir, 0700));
  LF_ASSIGN_OR_RETURN(layers_fd, openDir(layers_dir, O_RDONLY));
  LF_ASSIGN_OR_RETURN(tmp_fd, openDir(tmp_dir, O_RDONLY));
  fs::path lock_path = root / "lock";
  store_lock_fd.reset(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!store_lock_fd) {
    return errnoStatus(errno, "open layer store lock '" + lock_path.string() + "'");
  }
  return Status::ok();
}

// Staging dirs belong to processes that have the store open; only when no other process has it
// open (the exclusive lock succeeds) can they all be leftovers of crashes.
Status LayerStore::Impl::cleanStaging() {
  if (flockRetry(store_lock_fd.get(), LOCK_EX | LOCK_NB) == 0) {
    LF_ASSIGN_OR_RETURN(auto names, layer::listDirectory(tmp_fd.get(), tmp_dir.string()));
    for (const std::string& name : names) {
      Status removed = layer::removeAllAt(tmp_fd.get(), name);
      if (!removed.isOk()) {
        return removed.withContext("clean layer store staging dir '" + tmp_dir.string() + "'");
      }
    }
  } else if (errno != EWOULDBLOCK) {
    return errnoStatus(errno, "lock '" + (root / "lock").string() + "'");
  }
  // Downgrading is not atomic; another opener may clean tmp/ in between, which is fine: this
  // process has staged nothing yet.
  if (flockRetry(store_lock_fd.get(), LOCK_SH) != 0) {
    return errnoStatus(errno, "lock '" + (root / "lock").string() + "'");
  }
  return Status::ok();
}

Status LayerStore::Impl::loadIndex() {
  LF_ASSIGN_OR_RETURN(auto names, layer::listDirectory(layers_fd.get(), layers_dir.string()));
  std::vector<std::string> trash;
  for (const std::string& name : names) {
    if (!isLayerName(name)) {
      // Nothing the store writes; only ever seen if someone put it there. Leave it alone rather
      // than delete unknown data, but never index it.
      continue;
    }
    auto file = readLayerMeta(layers_fd.get(), name + "/" + kMetaFile, where(name) + "/meta");
    struct stat st;
    bool ok =
        file.isOk() && LayerStore::layerName(file->meta.diff_id) == name &&
        fstatat(layers_fd.get(), (name + "/" + kFsDir).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISDIR(st.st_mode);
    if (ok) {
      std::lock_guard lock(mu);
      insertLocked(name, file->meta, UniqueFd(), 0);
      index[name].last_use_ns = file->mtime_ns;
      last_stamp_ns = std::max(last_stamp_ns, file->mtime_ns);
      continue;
    }
    std::string trashed;
    LF_ASSIGN_OR_RETURN(RemoveResult removed, removeLayerDir(name, &trashed));
    if (removed == RemoveResult::kRemoved) {
      trash.push_back(trashed);
    }
  }
  for (const std::string& t : trash) {
    LF_RETURN_IF_ERROR(layer::removeAllAt(tmp_fd.get(), t));
  }
  return Status::ok();
}

Result<std::unique_ptr<LayerStore>> LayerStore::open(const LayerStoreOptions& options,
                                                     blob::BlobStore& blobs) {
  auto impl = std::make_unique<Impl>(options, blobs);
  LF_RETURN_IF_ERROR(impl->openDirs());
  LF_RETURN_IF_ERROR(impl->cleanStaging());
  LF_RETURN_IF_ERROR(impl->loadIndex());
  std::unique_ptr<LayerStore> store(new LayerStore(std::move(impl)));
  LF_RETURN_IF_ERROR(store->impl_->evict(/*only_if_over=*/false));
  return store;
}

LayerStore::LayerStore(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)), layers_dir_(impl_->layers_dir) {}

LayerStore::~LayerStore() {
  // A live Lease would unpin through a dangling pointer later.
  LF_CHECK(impl_->pinned == 0, "LayerStore destroyed while a Lease is alive");
}

int64_t LayerStore::Impl::stampLocked() {
  // Strictly increasing, so two uses in the same nanosecond still have an order.
  last_stamp_ns = std::max(realtimeNs(), last_stamp_ns + 1);
  return last_stamp_ns;
}

void LayerStore::Impl::touch(const std::string& name, int64_t ns) {
  timespec times[2];
  times[0].tv_sec = times[1].tv_sec = ns / 1'000'000'000;
  times[0].tv_nsec = times[1].tv_nsec = ns % 1'000'000'000;
  // Best effort: a lost update only makes this layer look older to LRU in other processes and
  // after a restart; it cannot make a pinned layer evictable.
  utimensat(layers_fd.get(), (name + "/" + kMetaFile).c_str(), times, AT_SYMLINK_NOFOLLOW);
}

void LayerStore::Impl::insertLocked(const std::string& name, LayerMeta meta, UniqueFd lock_fd,
                                    uint32_t pins) {
  auto [it, inserted] = index.try_emplace(name);
  Entry& e = it->second;
  if (!inserted) {
    total_bytes -= e.meta.bytes;
  }
  total_bytes += meta.bytes;
  e.meta = std::move(meta);
  if (pins > 0) {
    pinLocked(name, e, std::move(lock_fd));
  }
}

// `lock_fd` holds the shared lock when the entry is not pinned yet; it is dropped otherwise.
void LayerStore::Impl::pinLocked(const std::string& name, Entry& e, UniqueFd lock_fd) {
  if (e.pins++ == 0) {
    e.lock_fd = std::move(lock_fd);
    ++pinned;
  }
  e.last_use_ns = stampLocked();
  touch(name, e.last_use_ns);
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

// Opens l/<name>, takes the shared lock and checks that l/<name> is still that directory.
// nullopt when there is no such layer (or an evictor moved it away before the lock).
Result<std::optional<UniqueFd>> LayerStore::Impl::lockShared(const std::string& name) {
  UniqueFd fd(
      openat(layers_fd.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) {
      return std::optional<UniqueFd>();
    }
    return errnoStatus(errno, "open layer '" + where(name) + "'");
  }
  if (flockRetry(fd.get(), LOCK_SH) != 0) {
    return errnoStatus(errno, "lock layer '" + where(name) + "'");
  }
  struct stat held, now;
  if (fstat(fd.get(), &held) != 0) {
    return errnoStatus(errno, "stat layer '" + where(name) + "'");
  }
  if (fstatat(layers_fd.get(), name.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) {
      return std::optional<UniqueFd>();
    }
    return errnoStatus(errno, "stat layer '" + where(name) + "'");
  }
  if (!sameInode(held, now)) {
    return std::optional<UniqueFd>();
  }
  return std::optional<UniqueFd>(std::move(fd));
}

Result<std::string> LayerStore::Impl::makeStaging(const char* prefix) {
  std::string tmpl = (tmp_dir / (std::string(prefix) + "-XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr) {
    return errnoStatus(errno, "create staging directory in '" + tmp_dir.string() + "'");
  }
  return fs::path(tmpl).filename().string();
}

// Renames tmp/<staging> onto l/<name> unless that exists, holding a shared lock across the
// rename so the fresh layer cannot be evicted before its first pin. nullopt on EEXIST.
Result<std::optional<UniqueFd>> LayerStore::Impl::publish(const std::string& staging,
                                                          const std::string& name) {
  UniqueFd fd(
      openat(tmp_fd.get(), staging.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    return errnoStatus(errno, "open staging dir '" + (tmp_dir / staging).string() + "'");
  }
  if (flockRetry(fd.get(), LOCK_SH) != 0) {
    return errnoStatus(errno, "lock staging dir '" + (tmp_dir / staging).string() + "'");
  }
  if (renameat2(tmp_fd.get(), staging.c_str(), layers_fd.get(), name.c_str(), RENAME_NOREPLACE) !=
      0) {
    if (errno == EEXIST) {
      return std::optional<UniqueFd>();
    }
    return errnoStatus(errno, "publish layer '" + where(name) + "'");
  }
  return std::optional<UniqueFd>(std::move(fd));
}

// Moves l/<name> into tmp/ (under *trash) if nobody holds it. The caller deletes *trash.
Result<LayerStore::Impl::RemoveResult> LayerStore::Impl::removeLayerDir(const std::string& name,
                                                                        std::string* trash) {
  UniqueFd fd(
      openat(layers_fd.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) {
      return RemoveResult::kGone;
    }
    return errnoStatus(errno, "open layer '" + where(name) + "'");
  }
  if (flockRetry(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return RemoveResult::kBusy;
    }
    return errnoStatus(errno, "lock layer '" + where(name) + "'");
  }
  struct stat held, now;
  if (fstat(fd.get(), &held) != 0) {
    return errnoStatus(errno, "stat layer '" + where(name) + "'");
  }
  if (fstatat(layers_fd.get(), name.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? Result<RemoveResult>(RemoveResult::kGone)
                           : Result<RemoveResult>(errnoStatus(errno, "stat '" + where(name) + "'"));
  }
  if (!sameInode(held, now)) {
    // Evicted and published again since we opened it: that newer dir is not ours to judge.
    return RemoveResult::kBusy;
  }
  // Renaming onto an empty directory replaces it: mkdtemp gives a name unique across processes.
  LF_ASSIGN_OR_RETURN(*trash, makeStaging("evicted"));
  if (renameat(layers_fd.get(), name.c_str(), tmp_fd.get(), trash->c_str()) != 0) {
    int err = errno;
    unlinkat(tmp_fd.get(), trash->c_str(), AT_REMOVEDIR);  // best effort: an empty dir
    return errnoStatus(err, "move layer '" + where(name) + "' out for deletion");
  }
  return RemoveResult::kRemoved;
}

Result<LayerStore::Impl::Pinned> LayerStore::Impl::fetch(const LayerRef& ref,
                                                         const std::string& name) {
  if (ref.digest.empty()) {
    return invalidArgument("layer " + ref.diff_id.toString() +
                           " is not in the layer store and has no blob digest to fetch it by");
  }
  LF_ASSIGN_OR_RETURN(std::string staging, makeStaging("unpack"));
  struct Cleanup {
    Impl* impl;
    std::string name;
    bool armed = true;
    ~Cleanup() {
      if (armed) {
        layer::removeAllAt(impl->tmp_fd.get(), name).ignore();  // best effort; the error wins
      }
    }
  } cleanup{this, staging};
  fs::path fs_dir = tmp_dir / staging / kFsDir;
  LF_RETURN_IF_ERROR(makeDir(fs_dir, 0755));
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
  layer::ApplyOptions apply;
  apply.whiteouts = layer::WhiteoutMode::kOverlay;
  apply.devices = options.devices;
  apply.expected_diff_id = ref.diff_id;
  auto applied = layer::applyLayer(**reader, fs_dir, apply);
  if (!applied.isOk()) {
    return applied.status().withContext("unpack " + what);
  }
  LF_ASSIGN_OR_RETURN(uint64_t bytes, treeBytes(fs_dir));
  LayerMeta meta{ref.diff_id, ref.digest, ref.media_type, bytes};
  UniqueFd staging_fd(openat(tmp_fd.get(), staging.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!staging_fd) {
    return errnoStatus(errno, "open '" + (tmp_dir / staging).string() + "'");
  }
  LF_RETURN_IF_ERROR(
      writeLayerMeta(staging_fd.get(), kMetaFile, meta, (tmp_dir / staging / kMetaFile).string()));
  LF_ASSIGN_OR_RETURN(auto published, publish(staging, name));
  if (published) {
    cleanup.armed = false;
    return Pinned{std::move(meta), std::move(*published), true};
  }
  // Another process published this layer while we unpacked: use theirs (ours is removed).
  LF_ASSIGN_OR_RETURN(auto locked, lockShared(name));
  if (!locked) {
    return unavailable("layer '" + where(name) + "' was published and evicted at once; retry");
  }
  LF_ASSIGN_OR_RETURN(
      auto file, readLayerMeta(layers_fd.get(), name + "/" + kMetaFile, where(name) + "/meta"));
  return Pinned{std::move(file.meta), std::move(*locked), true};
}

// Outside the mutex: the layer may be on disk already (another process published it since our
// index was loaded); otherwise fetch it.
Result<LayerStore::Impl::Pinned> LayerStore::Impl::loadOrFetch(const LayerRef& ref,
                                                               const std::string& name) {
  LF_ASSIGN_OR_RETURN(auto locked, lockShared(name));
  if (locked) {
    auto file = readLayerMeta(layers_fd.get(), name + "/" + kMetaFile, where(name) + "/meta");
    if (file.isOk()) {
      return Pinned{std::move(file->meta), std::move(*locked), false};
    }
    // Published dirs always carry whole metadata, so this one is damaged: replace it.
    locked->reset();
    std::string trash;
    LF_ASSIGN_OR_RETURN(RemoveResult removed, removeLayerDir(name, &trash));
    if (removed == RemoveResult::kRemoved) {
      LF_RETURN_IF_ERROR(layer::removeAllAt(tmp_fd.get(), trash));
    } else if (removed == RemoveResult::kBusy) {
      return file.status().withContext("layer in use by another process");
    }
  }
  return fetch(ref, name);
}

Status LayerStore::Impl::pinOne(const LayerRef& ref, const std::string& name) {
  std::unique_lock lock(mu);
  while (true) {
    auto it = index.find(name);
    if (it != index.end()) {
      Entry& e = it->second;
      if (e.meta.diff_id != ref.diff_id) {
        return internalError("layer store name collision: '" + where(name) + "' holds " +
                             e.meta.diff_id.toString() + ", wanted " + ref.diff_id.toString());
      }
      if (e.pins == 0) {
        // Brief syscalls under the mutex: the only wait is for another process's evictor,
        // which holds its exclusive lock for one rename.
        LF_ASSIGN_OR_RETURN(auto locked, lockShared(name));
        if (!locked) {
          eraseLocked(name);  // evicted by another process
          continue;
        }
        pinLocked(name, e, std::move(*locked));
      } else {
        pinLocked(name, e, UniqueFd());
      }
      ++hits;
      return Status::ok();
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
    auto pinned_layer = loadOrFetch(ref, name);
    lock.lock();
    finishFlightLocked(name, pinned_layer.status());
    if (!pinned_layer.isOk()) {
      return pinned_layer.status();
    }
    if (pinned_layer->meta.diff_id != ref.diff_id) {
      return internalError("layer store name collision: '" + where(name) + "' holds " +
                           pinned_layer->meta.diff_id.toString() + ", wanted " +
                           ref.diff_id.toString());
    }
    ++(pinned_layer->fetched ? misses : hits);
    insertLocked(name, std::move(pinned_layer->meta), std::move(pinned_layer->lock_fd), 1);
    return Status::ok();
  }
}

Result<LayerStore::Lease> LayerStore::acquire(const std::vector<LayerRef>& chain) {
  Lease lease;
  lease.store_ = this;
  for (const LayerRef& ref : chain) {
    if (ref.diff_id.empty()) {
      return invalidArgument("acquire: a layer of the chain has no diff ID");
    }
    std::string name = layerName(ref.diff_id);
    LF_RETURN_IF_ERROR(impl_->pinOne(ref, name));  // ~Lease unpins what was pinned so far
    lease.dirs_.push_back(layers_dir_ / name / kFsDir);
    lease.names_.push_back(std::move(name));
  }
  Status evicted = impl_->evict(/*only_if_over=*/true);
  if (!evicted.isOk()) {
    // The chain is ready; a failed eviction must not fail the step. The next one retries.
    spdlog::warn("layer store eviction failed root={} error={}", impl_->root.string(),
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
      impl_->touch(name, e.last_use_ns);
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
  LF_ASSIGN_OR_RETURN(std::string staging, makeStaging("adopt"));
  UniqueFd staging_fd(openat(tmp_fd.get(), staging.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  LayerMeta meta{ref.diff_id, ref.digest, ref.media_type, bytes};
  Status status = staging_fd ? writeLayerMeta(staging_fd.get(), kMetaFile, meta,
                                              (tmp_dir / staging / kMetaFile).string())
                             : errnoStatus(errno, "open '" + (tmp_dir / staging).string() + "'");
  if (status.isOk() && renameat(AT_FDCWD, dir.c_str(), staging_fd.get(), kFsDir) != 0) {
    status = errno == EXDEV ? invalidArgument("adopt: '" + dir.string() +
                                              "' is not on the layer store's filesystem (" +
                                              root.string() + ")")
                            : errnoStatus(errno, "adopt: move '" + dir.string() + "'");
  }
  if (!status.isOk()) {
    layer::removeAllAt(tmp_fd.get(), staging).ignore();  // dir was not moved; staging is ours
    return status;
  }
  auto published = publish(staging, name);
  if (published.isOk() && *published) {
    std::lock_guard lock(mu);
    insertLocked(name, meta, UniqueFd(), 0);
    index[name].last_use_ns = stampLocked();
    touch(name, index[name].last_use_ns);
    return Status::ok();
  }
  // Give the caller its dir back, then drop the staging dir.
  if (renameat(staging_fd.get(), kFsDir, AT_FDCWD, dir.c_str()) != 0) {
    return errnoStatus(errno, "adopt: move '" + dir.string() + "' back after a failed adoption");
  }
  layer::removeAllAt(tmp_fd.get(), staging).ignore();  // only our meta file remains
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
    if (impl_->index.count(name) != 0 || impl_->in_flight.count(name) != 0) {
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
  return impl_->evict(/*only_if_over=*/true);
}

// Brings the index up to date with l/: layers other processes published or evicted, and their
// last use. A listing plus one stat per layer; metadata is read only for unknown layers.
void LayerStore::Impl::rescanLocked() {
  auto names = layer::listDirectory(layers_fd.get(), layers_dir.string());
  if (!names.isOk()) {
    return;  // keep the current view; eviction then works from it
  }
  std::unordered_set<std::string> on_disk;
  for (const std::string& name : *names) {
    if (!isLayerName(name)) {
      continue;
    }
    on_disk.insert(name);
    auto it = index.find(name);
    if (it == index.end()) {
      if (in_flight.count(name) != 0) {
        continue;  // our own unpack or adoption, just published: its owner indexes it
      }
      auto file = readLayerMeta(layers_fd.get(), name + "/" + kMetaFile, where(name) + "/meta");
      if (file.isOk() && LayerStore::layerName(file->meta.diff_id) == name) {
        insertLocked(name, file->meta, UniqueFd(), 0);
        index[name].last_use_ns = file->mtime_ns;
      }
      continue;
    }
    struct stat st;
    if (it->second.pins == 0 &&
        fstatat(layers_fd.get(), (name + "/" + kMetaFile).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      int64_t ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
      it->second.last_use_ns = std::max(it->second.last_use_ns, ns);
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
  std::vector<std::string> trash;
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
      std::string trashed;
      auto removed = removeLayerDir(name, &trashed);
      if (!removed.isOk()) {
        status = removed.status();
        break;
      }
      if (*removed == RemoveResult::kBusy) {
        continue;  // pinned by another process
      }
      if (*removed == RemoveResult::kRemoved) {
        trash.push_back(std::move(trashed));
        ++evictions;
      }
      eraseLocked(name);
    }
  }
  // Deleting can take long; it runs outside the mutex, on dirs nobody can reach any more.
  for (const std::string& t : trash) {
    Status removed = layer::removeAllAt(tmp_fd.get(), t);
    if (status.isOk() && !removed.isOk()) {
      status = removed.withContext("delete evicted layer in '" + tmp_dir.string() + "'");
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

LayerStore::Stats LayerStore::stats() const {
  std::lock_guard lock(impl_->mu);
  return Stats{impl_->index.size(), impl_->total_bytes, impl_->pinned,
               impl_->hits,         impl_->misses,      impl_->evictions};
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
    out.push_back(name + "/" + kFsDir);
  }
  return out;
}

}  // namespace lf::worker
