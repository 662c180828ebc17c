#pragma once

// LayerDirs: the on-disk half of the LayerStore: its directories, flocks and renames.
//
// layer_store.h describes the layout and the protocol between processes; this class implements
// its steps and keeps no state but the directory fds, so every call is thread-safe and several
// processes may use one root at once. Locks are flock(2) locks on the directories themselves:
//   - tmp/<x> belongs to whoever holds a shared lock on it (its creator, from mkdtemp until it is
//     published or deleted); anything in tmp/ whose exclusive lock can be taken is a leftover of
//     a dead process and is deleted by cleanStaging().
//   - l/<name> is pinned while someone holds a shared lock on it; moveOut() needs the exclusive
//     lock without waiting.
// After taking a lock on a directory opened by name, every step checks that the name still
// refers to the locked inode, since another process may have moved it between open and flock.
// Errors are Status values naming the path; a layer or staging dir that vanished is not an
// error but a result (nullopt, kGone).

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/layer/unique_fd.h"
#include "worker/layer_store/layer_meta.h"

namespace lf::worker {

class LayerDirs {
 public:
  // tmp/<name>, ours while lock_fd holds its shared lock.
  struct Staging {
    std::string name;
    layer::UniqueFd lock_fd;
  };
  enum class MoveOutResult { kMoved, kBusy, kGone };

  static constexpr const char* kFsDir = "fs";
  static constexpr const char* kMetaFile = "meta";
  static constexpr const char* kSyncedFile = "synced";
  // Flushes the filesystem holding the open directory fd (syncfs(2) by default).
  using SyncFn = std::function<Status(int fd)>;

  // Creates <root>, <root>/l and <root>/tmp (0700) when missing and opens them. With
  // `sync_before_publish`, publish() first flushes the filesystem (syncFs), so a layer is never
  // visible before its data is on disk. An empty `sync_fs` means syncfs(2).
  static Result<LayerDirs> open(const std::filesystem::path& root, bool sync_before_publish,
                                SyncFn sync_fs = {});

  const std::filesystem::path& root() const { return root_; }
  const std::filesystem::path& layersDir() const { return layers_dir_; }
  const std::filesystem::path& tmpDir() const { return tmp_dir_; }
  // The path of l/<name> (and its children), for messages.
  std::string where(const std::string& name, const char* child = nullptr) const;

  // Whether `name` could be a layer directory name (32 lowercase hex chars).
  static bool isLayerName(std::string_view name);
  // The layer dir names in l/ (other entries are ignored).
  Result<std::vector<std::string>> listLayers() const;

  // Makes a fresh, locked staging dir tmp/<prefix>-XXXXXX.
  Result<Staging> makeStaging(const char* prefix) const;
  // Deletes a staging dir of ours, then releases it.
  Status removeStaging(Staging& staging) const;
  // Deletes what dead processes left in tmp/ (entries nobody holds).
  Status cleanStaging() const;

  // Renames tmp/<staging> onto l/<name> unless that exists (nullopt then, and staging stays
  // ours). On success returns the staging lock, now a shared lock on the published layer, so
  // the layer cannot be evicted before the caller pins it.
  Result<std::optional<layer::UniqueFd>> publish(Staging& staging, const std::string& name) const;

  // Opens l/<name> with a shared lock (blocking briefly while an evictor holds it) and checks it
  // is still the layer at that name. nullopt when there is no such layer any more.
  Result<std::optional<layer::UniqueFd>> lockShared(const std::string& name) const;

  // Moves l/<name> out of l/ into a staging dir (*trash, ours to delete) if nobody holds it.
  Result<MoveOutResult> moveOut(const std::string& name, Staging* trash) const;

  // Metadata of l/<name>.
  Result<LayerMetaFile> readMeta(const std::string& name) const;
  Status writeMeta(const Staging& staging, const LayerMeta& meta) const;
  // mtime of l/<name>/meta in ns (the layer's last use), nullopt if it cannot be read.
  std::optional<int64_t> lastUse(const std::string& name) const;
  // Sets the last use; best effort (see layer_store.cpp).
  void touch(const std::string& name, int64_t ns) const;
  // Whether l/<name>/fs is a directory.
  bool hasFsDir(const std::string& name) const;

  // Flushes the store's filesystem: everything written before the call is on disk after it.
  Status syncFs() const;
  // Whether l/<name>/synced is a regular file (the layer's data is on disk; layer_store.h).
  bool isSynced(const std::string& name) const;
  // Creates <layer_fd>/synced; layer_fd is l/<name> open and locked by the caller, so the marker
  // lands in that very layer even if the name has been reused since. `name` is for messages.
  Status markSynced(int layer_fd, const std::string& name) const;

 private:
  std::filesystem::path root_, layers_dir_, tmp_dir_;
  layer::UniqueFd layers_fd_, tmp_fd_;
  bool sync_before_publish_ = true;
  SyncFn sync_fs_;
};

}  // namespace lf::worker
