#pragma once

// LayerStore: the worker's local store of unpacked layers, keyed by diff ID.
//
// A step's parent chain is materialized from here: each layer lives unpacked once on local disk
// in overlayfs lower-dir format (whiteouts as 0:0 character devices, opaque directories as
// trusted.overlay.opaque=y), so a chain's dirs can be handed to overlayfs as lowerdirs directly.
// Missing layers are fetched from the blob store (blob digest and diff ID both verified) and
// unpacked; layers in use are pinned by a Lease; unpinned layers are evicted least-recently-used
// when the store exceeds its byte budget; the index is rebuilt from disk on open(). The layer a
// step just produced is adopt()ed by renaming its overlay upper dir (made in a makeScratchDir()
// on the store's filesystem) into the store, so the next step of the stage starts at once.
//
// Layout under options.root (created 0700: layers hold setuid files and must not be reachable by
// other host users):
//   l/<name>/                 one layer; <name> = the first 32 hex chars of the diff ID (128 bits;
//                             short because overlay mount options are limited to one page: mount
//                             with cwd = l/ and overlayLowerDirs() to fit ~110 layers). The full
//                             diff ID is in the metadata and checked on every load.
//   l/<name>/fs/              the unpacked layer: what dirs() returns
//   l/<name>/meta             metadata, text: format line, full diff ID, blob digest, media type,
//                             size in bytes. Its mtime is the layer's last use (LRU key), set
//                             with utimensat on acquire and release: one syscall, atomic, and
//                             kept across restarts. Format 2 adds the boot id of its publish.
//   l/<name>/synced           empty; present once the layer's data is known to be on disk
//   tmp/<prefix>-XXXXXX/      staging dirs: unpacks and adoptions in progress, evicted layers
//                             being deleted
// A layer is built in a staging dir (fs/ and meta) and published with one
// renameat2(RENAME_NOREPLACE) onto l/<name>, so l/<name> either holds a complete layer with its
// metadata or does not exist. Eviction renames l/<name> into a staging dir and deletes it there,
// so a crash mid-delete leaves nothing under a valid name. The layer size is the sum of the sizes
// of its regular files and symlinks (hard-linked inodes once), computed by one walk when the
// layer is created; directories and inode overhead are not counted. An adopted layer is the
// step's upper dir as it is: its mtimes are not clamped as in the blob, and it keeps the xattrs
// overlayfs put there (trusted.overlay.origin/impure, ignored in lower layers).
//
// Processes (several `layerfarm-worker exec` may share one root; details in layer_dirs.h). All
// locks are flock(2) on the directories themselves, released by the kernel when a process dies:
//   - A staging dir belongs to the process holding a shared lock on it. open() deletes every
//     entry of tmp/ whose exclusive lock it can take without waiting: leftovers of dead
//     processes, never another live process's unpack.
//   - A pinned layer's l/<name> is held open with a shared lock (one open file per layer per
//     process, while that process's pin count is > 0). After locking, the pinner checks that
//     l/<name> is still the inode it locked (an evictor may have moved it in between) and treats
//     the layer as missing if not.
//   - An evictor takes an exclusive, non-blocking lock on l/<name>; if that fails the layer is in
//     use (here or elsewhere) and is skipped. Holding it, it checks the inode and renames the dir
//     into a staging dir of its own. Nobody removes or replaces l/<name> without that lock.
//   - A publisher holds the shared lock of its staging dir across the rename onto l/<name>, so a
//     fresh layer cannot be evicted before its first lease. If the rename fails with EEXIST,
//     another process published the same diff ID first: the staged copy is deleted and theirs is
//     used.
//   Within a process, one unpack per layer runs at a time (callers wanting a layer that is being
//   unpacked wait for it); two processes may unpack the same layer at once, and one copy is
//   discarded.
//   Each process keeps an in-memory index, loaded at open() and updated by its own operations
//   and by misses that find a layer another process published; eviction rescans l/ (a listing
//   plus metadata of unknown layers, no walks) so it sees all processes' layers and their LRU
//   times. A hit costs no directory walk and no metadata read: a lookup, and for the first pin
//   in this process an open, a flock and two stats; then one utimensat.
//
// A step, in short:
//   LF_ASSIGN_OR_RETURN(auto lease, store.acquire(parent_chain));      // pinned until destroyed
//   LF_ASSIGN_OR_RETURN(auto scratch, store.makeScratchDir());          // upper/, work/ go here
//   mount("overlay", rootfs, "overlay", 0, "lowerdir=" + join(lease.overlayLowerDirs(), ":") +
//         ",upperdir=" + scratch/upper + ",workdir=" + scratch/work)   // with cwd = layersDir()
//   ... run the step, unmount ...
//   info = layer::writeLayer(scratch/upper, {.overlay_upper = true, ...}, blobs);
//   store.adopt({info.digest, info.diff_id, info.size, info.media_type}, scratch/upper);
//   // kAlreadyExists is fine: the store has that layer already. scratch deletes the rest.
// An empty chain (FROM scratch) gives no lower dirs; overlayfs needs one: use an empty dir.
//
// Build contexts: a LayerRef with media type context::kContextManifestMediaType (digest == diff ID
// == the manifest blob's digest) is not unpacked but materialized from the manifest and the file
// blobs it names (context_materialize.h), then published, pinned and evicted like any layer; its
// size is the sum of its regular files' sizes. A context sent as a tar (context::kContextMediaType)
// is unpacked as a layer.
//
// Thread-safety: all methods are thread-safe. Unpacking runs outside the store mutex.
// Ownership: the store must outlive its Leases and the BlobStore must outlive the store.
// Errors: a blob missing from the blob store is kNotFound naming its digest; a layer whose
// uncompressed tar does not hash to its diff ID (or a blob that does not hash to its digest) is
// kDataLoss naming both digests; a failed unpack leaves nothing behind. LRU times (mtimes) are
// never synced. flock on NFS is not relied on: the root must be a local filesystem.
//
// Durability (options.sync, options.sync_mode). The unpacked layers are a cache: the blob store
// holds the truth (its blobs are fsynced when committed), so a layer lost to a power cut can be
// made again, but a layer whose files silently lost their data must never be used. Flushing
// before every publish (LayerSyncMode::kEachPublish: one syncfs per unpack, adoption or
// materialized context) guarantees that, but costs ~70 ms after writing 20 MB on an idle disk
// and up to 600 ms on a busy one, on the critical path of every step. The default,
// LayerSyncMode::kDeferred, publishes without syncing and relies on this: data in the page cache
// survives the death of any process (kill -9 included) and is lost only when the kernel goes down
// (power loss, OS crash), after which the machine boots again with a new
// /proc/sys/kernel/random/boot_id. So:
//   - Each layer's metadata records the boot id it was published in (format 2; a format-1 layer
//     predates deferral and was synced before it was published).
//   - flush() (and a background thread every options.sync_interval_ms while layers are pending)
//     takes a shared flock on each pending layer it knows of, calls syncfs once, then creates an
//     empty file l/<name>/synced through the locked directory's fd and drops the locks. The marker
//     is created after syncfs returned, so whenever it exists on disk (after any crash) the
//     layer's data does too; if the marker itself is lost the layer merely counts as pending.
//   - Whoever loads a layer from disk (open(), a miss that finds another process's layer, the
//     rescan before eviction) keeps it when it has a marker or comes from the current boot (the
//     page cache still holds whatever was not written back), and discards it when it is pending
//     from another boot: it may have lost data.
// Why a marker per layer rather than a store-wide "synced through publish N" file: several
// processes publish into one root (layer_dirs.h), so a sequence number would have to be shared
// between them (a counter file, plus care when a power loss rolls it back), and a layer that
// survived a reboot would have to stay matched to its boot's counter forever. A marker concerns
// one directory, is created through a locked fd (so it can never land on a newer layer that
// replaced an evicted one under the same name), travels with the layer when it is evicted, and
// any process's flush may mark any process's layers: syncfs covers the whole filesystem.
// The flock held across syncfs makes evictors skip the layers being marked (they need the
// exclusive lock), so a flush never races a delete. A syncfs that fails (a writeback error)
// marks nothing; the pending layers nobody uses are then discarded, and the ones in use stay
// pending, never marked by this process (a later syncfs on the same fd would no longer report
// the error), so they are discarded after a reboot. A marker that cannot be created is not
// retried by this process either (the flusher would syncfs every interval for it).

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/digest/digest.h"
#include "common/layer/layer_reader.h"
#include "common/layer/unique_fd.h"

namespace lf::worker {

class LayerDirs;

// One layer of a chain: its blob (compressed, in the blob store) and its diff ID (the unpacked
// identity, the store's key).
struct LayerRef {
  Digest digest;
  Digest diff_id;
  uint64_t size = 0;  // blob size, informational
  std::string media_type;
};

// How published layers reach the disk; see "Durability" above.
enum class LayerSyncMode {
  kDeferred,     // publish without syncing; flush() in the background
  kEachPublish,  // syncfs before every publish
};

struct LayerStoreOptions {
  // Directory holding the store; created when missing. Must be on the filesystem of the overlay
  // upper dirs that are adopt()ed (adoption is a rename).
  std::filesystem::path root;
  // Unpinned layers are evicted, least recently used first, while the layers' total size is
  // above this many bytes. Pinned layers are never evicted, so the total may exceed it.
  uint64_t budget_bytes = 20ull << 30;
  // Device nodes in layers: skipped by default (a step must not get a host device through a
  // layer; the sandbox provides /dev).
  layer::DevicePolicy devices = layer::DevicePolicy::kSkip;
  // Whether layers are made durable at all (see "Durability" above). false: never sync, for
  // scratch stores in tests; a pending layer from another boot is still discarded on load.
  bool sync = true;
  // With `sync`: how. kDeferred (the default) publishes at once and syncs in the background;
  // kEachPublish syncs before publishing each layer.
  LayerSyncMode sync_mode = LayerSyncMode::kDeferred;
  // kDeferred: the background thread flushes this often (milliseconds) while layers are pending.
  // 0: no thread; only flush() and the destructor flush.
  uint32_t sync_interval_ms = 5000;
  // Test seams. sync_fs flushes the filesystem holding the open directory `fd`; default
  // syncfs(2). boot_id identifies this boot; default /proc/sys/kernel/random/boot_id (if that
  // cannot be read, kDeferred falls back to kEachPublish, with a warning).
  std::function<Status(int fd)> sync_fs;
  std::string boot_id;
};

class LayerStore {
 public:
  // Pins the layers of one acquire() until destroyed or release()d. Movable, not copyable.
  class Lease {
   public:
    Lease() = default;
    ~Lease() { release(); }
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

    // Unpacked layer dirs, bottom-first (the chain's order), absolute, overlay lower format.
    const std::vector<std::filesystem::path>& dirs() const { return dirs_; }
    // The same dirs relative to layersDir() ("<name>/fs"), for short overlay option strings.
    std::vector<std::string> relativeDirs() const;
    // The overlayfs lowerdir list: relative to layersDir(), TOP-first (overlay's order), each
    // layer once. overlayfs refuses a dir given twice (ELOOP), and a layer repeated in a chain
    // is kept at its topmost place only, which changes nothing: each of its lower copies is
    // entirely shadowed by it (same entries, same whiteouts, higher up).
    std::vector<std::string> overlayLowerDirs() const;
    // Unpins now; the lease is then empty.
    void release();

   private:
    friend class LayerStore;
    LayerStore* store_ = nullptr;
    std::vector<std::string> names_;
    std::vector<std::filesystem::path> dirs_;
  };

  // A private directory on the store's filesystem (below tmp/) for a step's overlay upper and
  // work dirs, so that the upper dir can be adopt()ed by a rename. Deleted with whatever is left
  // in it when destroyed (unmount first), or by a later open() if the process dies. Movable; must
  // not outlive the store.
  class ScratchDir {
   public:
    ScratchDir() = default;
    ~ScratchDir();
    ScratchDir(ScratchDir&& other) noexcept;
    ScratchDir& operator=(ScratchDir&& other) noexcept;
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    // Deletes it now, reporting errors the destructor would drop.
    Status remove();

   private:
    friend class LayerStore;
    const LayerDirs* dirs_ = nullptr;
    std::string name_;
    layer::UniqueFd lock_fd_;  // the shared lock that marks it as ours (see layer_dirs.h)
    std::filesystem::path path_;
  };

  struct Stats {
    uint64_t layers = 0;     // layers in this process's index
    uint64_t bytes = 0;      // their total size
    uint64_t pinned = 0;     // layers pinned by this process
    uint64_t hits = 0;       // layers acquired without fetching (present, or found on disk)
    uint64_t misses = 0;     // layers fetched from the blob store and unpacked
    uint64_t evictions = 0;  // layers this process evicted
    uint64_t pending = 0;    // indexed layers not known to be on disk yet (kDeferred)
    uint64_t flushes = 0;    // syncfs calls made by flush()
  };

  // Opens (creating if needed) the store at options.root, rebuilds the index from disk, deletes
  // layers with missing or corrupt metadata, layers left pending by an earlier boot and the
  // staging dirs of dead processes, then evicts to the budget. Starts the flusher thread
  // (kDeferred with a sync_interval_ms).
  static Result<std::unique_ptr<LayerStore>> open(const LayerStoreOptions& options,
                                                  blob::BlobStore& blobs);
  // Stops the flusher thread, then flushes what is pending (kDeferred; errors are logged).
  ~LayerStore();
  LayerStore(const LayerStore&) = delete;
  LayerStore& operator=(const LayerStore&) = delete;

  // Makes every layer of the chain available, fetching and unpacking missing ones (verified
  // against digest and diff_id; a layer wanted by several threads at once is unpacked once), and
  // pins them all. On error nothing stays pinned. Evicts to the budget afterwards.
  Result<Lease> acquire(const std::vector<LayerRef>& chain);

  // Adopts `dir`, a directory holding layer `ref` in overlay format (a step's upper dir that was
  // just written out as that layer; its contents are trusted, not re-verified), by renaming it
  // into the store. kAlreadyExists when the store has that diff ID already (dir is then left where
  // it was, for the caller to delete); `dir` must be on the store's filesystem.
  Status adopt(const LayerRef& ref, const std::filesystem::path& dir);

  Result<ScratchDir> makeScratchDir();

  // Whether a layer with this diff ID is in this process's index (no disk access).
  bool contains(const Digest& diff_id) const;

  // The diff IDs of the layers in this process's index (no disk access, no order), e.g. for a
  // worker telling the coordinator which parent chains it holds unpacked.
  std::vector<Digest> diffIds() const;

  Stats stats() const;

  // Evicts unpinned layers (of all processes sharing the root), least recently used first,
  // until the total size is within the budget or nothing more can be evicted. Also run after
  // every adopt() and every acquire() that unpacked a layer (both rescan l/, so they count other
  // processes' layers), and after an acquire() of present layers if this process's view of the
  // total is over budget. A long-lived process whose acquires all hit should call it now and
  // then to account for layers other processes added.
  Status evictToBudget();

  // kDeferred: makes every pending layer in this process's index durable (one syncfs) and marks
  // it so (see "Durability" above). No syncfs when nothing is pending; one flush at a time. A
  // failed syncfs is returned, after discarding the pending layers nobody uses. A no-op in the
  // other modes.
  Status flush();

  // <root>/l: the directory relativeDirs() are relative to.
  const std::filesystem::path& layersDir() const { return layers_dir_; }
  // The directory name of a diff ID under layersDir().
  static std::string layerName(const Digest& diff_id);

 private:
  struct Impl;
  explicit LayerStore(std::unique_ptr<Impl> impl);
  void unpin(const std::vector<std::string>& names);

  std::unique_ptr<Impl> impl_;
  std::filesystem::path layers_dir_;
};

}  // namespace lf::worker
