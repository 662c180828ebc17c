#include "worker/layer_store/layer_dirs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <utility>

#include "common/layer/secure_fs.h"

namespace lf::worker {
namespace {

namespace fs = std::filesystem;
using layer::UniqueFd;

constexpr size_t kNameHexChars = 32;
// mkdtemp names are random; needing more than a couple of tries means something else is wrong.
constexpr int kStagingAttempts = 16;

Status makeDir(const fs::path& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return errnoStatus(errno, "create directory '" + path.string() + "'");
  }
  return Status::ok();
}

Result<UniqueFd> openDir(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    return errnoStatus(errno, "open '" + path.string() + "'");
  }
  return fd;
}

int flockRetry(int fd, int op) {
  int rc;
  do {
    rc = flock(fd, op);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

enum class Lock { kLocked, kBusy, kGone, kNotDir };
struct Locked {
  Lock outcome;
  UniqueFd fd;
};

// Opens directory `name` in `dir_fd`, flocks it with `op` and checks that `name` still refers to
// it (it may have been renamed away between the open and the lock).
Result<Locked> lockAt(int dir_fd, const std::string& name, int op, const std::string& where) {
  UniqueFd fd(openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) {
      return Locked{Lock::kGone, UniqueFd()};
    }
    if (errno == ENOTDIR || errno == ELOOP) {
      return Locked{Lock::kNotDir, UniqueFd()};
    }
    return errnoStatus(errno, "open '" + where + "'");
  }
  if (flockRetry(fd.get(), op) != 0) {
    if (errno == EWOULDBLOCK) {
      return Locked{Lock::kBusy, UniqueFd()};
    }
    return errnoStatus(errno, "lock '" + where + "'");
  }
  struct stat held, now;
  if (fstat(fd.get(), &held) != 0) {
    return errnoStatus(errno, "stat '" + where + "'");
  }
  if (fstatat(dir_fd, name.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) {
      return Locked{Lock::kGone, UniqueFd()};
    }
    return errnoStatus(errno, "stat '" + where + "'");
  }
  if (held.st_dev != now.st_dev || held.st_ino != now.st_ino) {
    return Locked{Lock::kGone, UniqueFd()};
  }
  return Locked{Lock::kLocked, std::move(fd)};
}

}  // namespace

Result<LayerDirs> LayerDirs::open(const fs::path& root, bool sync_before_publish, SyncFn sync_fs) {
  LayerDirs dirs;
  dirs.sync_before_publish_ = sync_before_publish;
  dirs.sync_fs_ = std::move(sync_fs);
  std::error_code ec;
  dirs.root_ = fs::absolute(root, ec).lexically_normal();
  if (ec || root.empty()) {
    return invalidArgument("layer store root '" + root.string() + "' is not usable");
  }
  if (dirs.root_.filename().empty()) {
    dirs.root_ = dirs.root_.parent_path();
  }
  dirs.layers_dir_ = dirs.root_ / "l";
  dirs.tmp_dir_ = dirs.root_ / "tmp";
  fs::create_directories(dirs.root_.parent_path(), ec);  // a failure shows in makeDir below
  LF_RETURN_IF_ERROR(makeDir(dirs.root_));
  LF_RETURN_IF_ERROR(makeDir(dirs.layers_dir_));
  LF_RETURN_IF_ERROR(makeDir(dirs.tmp_dir_));
  LF_ASSIGN_OR_RETURN(dirs.layers_fd_, openDir(dirs.layers_dir_));
  LF_ASSIGN_OR_RETURN(dirs.tmp_fd_, openDir(dirs.tmp_dir_));
  return dirs;
}

std::string LayerDirs::where(const std::string& name, const char* child) const {
  fs::path p = layers_dir_ / name;
  return (child != nullptr ? p / child : p).string();
}

bool LayerDirs::isLayerName(std::string_view name) {
  return name.size() == kNameHexChars && std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

Result<std::vector<std::string>> LayerDirs::listLayers() const {
  LF_ASSIGN_OR_RETURN(auto names, layer::listDirectory(layers_fd_.get(), layers_dir_.string()));
  std::erase_if(names, [](const std::string& n) { return !isLayerName(n); });
  return names;
}

Result<LayerDirs::Staging> LayerDirs::makeStaging(const char* prefix) const {
  for (int attempt = 0; attempt < kStagingAttempts; ++attempt) {
    std::string tmpl = (tmp_dir_ / (std::string(prefix) + "-XXXXXX")).string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      return errnoStatus(errno, "create staging directory in '" + tmp_dir_.string() + "'");
    }
    std::string name = fs::path(tmpl).filename().string();
    // Until the lock is ours, another process's cleanStaging() may take the dir for a leftover
    // and delete it; then the check in lockAt fails and we take another.
    LF_ASSIGN_OR_RETURN(Locked locked, lockAt(tmp_fd_.get(), name, LOCK_SH, tmpl));
    if (locked.outcome == Lock::kLocked) {
      return Staging{std::move(name), std::move(locked.fd)};
    }
  }
  return unavailable("could not create a staging directory in '" + tmp_dir_.string() +
                     "': each one vanished before it could be locked");
}

Status LayerDirs::removeStaging(Staging& staging) const {
  if (staging.name.empty()) {
    return Status::ok();
  }
  Status status = layer::removeAllAt(tmp_fd_.get(), staging.name);
  staging.lock_fd.reset();
  staging.name.clear();
  return status.isOk() ? status : status.withContext("in '" + tmp_dir_.string() + "'");
}

Status LayerDirs::cleanStaging() const {
  LF_ASSIGN_OR_RETURN(auto names, layer::listDirectory(tmp_fd_.get(), tmp_dir_.string()));
  Status first;  // go on past a failure: one stuck entry must not keep the others
  for (const std::string& name : names) {
    std::string where = (tmp_dir_ / name).string();
    auto locked = lockAt(tmp_fd_.get(), name, LOCK_EX | LOCK_NB, where);
    Status status = locked.status();
    if (locked.isOk() && locked->outcome == Lock::kNotDir) {
      // The store only ever creates directories here.
      if (unlinkat(tmp_fd_.get(), name.c_str(), 0) != 0 && errno != ENOENT) {
        status = errnoStatus(errno, "remove '" + where + "'");
      }
    } else if (locked.isOk() && locked->outcome == Lock::kLocked) {
      // Holding the exclusive lock: nobody owns it, and nobody can claim it while we delete.
      status = layer::removeAllAt(tmp_fd_.get(), name);
      if (!status.isOk()) {
        status = status.withContext("clean leftovers in '" + tmp_dir_.string() + "'");
      }
    }
    if (first.isOk() && !status.isOk()) {
      first = status;
    }
  }
  return first;
}

Result<std::optional<UniqueFd>> LayerDirs::publish(Staging& staging,
                                                   const std::string& name) const {
  // One syncfs instead of an fsync per file: unpacking just wrote all of it anyway. Without it a
  // power loss could leave a published layer whose metadata or files lost their data, and a step
  // would build on a damaged parent.
  if (sync_before_publish_) {
    Status synced = syncFs();
    if (!synced.isOk()) {
      return synced.withContext("before publishing layer '" + where(name) + "'");
    }
  }
  if (renameat2(tmp_fd_.get(), staging.name.c_str(), layers_fd_.get(), name.c_str(),
                RENAME_NOREPLACE) != 0) {
    if (errno == EEXIST) {
      return std::optional<UniqueFd>();
    }
    return errnoStatus(errno, "publish layer '" + where(name) + "'");
  }
  staging.name.clear();
  return std::optional<UniqueFd>(std::move(staging.lock_fd));
}

Result<std::optional<UniqueFd>> LayerDirs::lockShared(const std::string& name) const {
  // Blocking: an exclusive lock on l/<name> is held only for a check and a rename (moveOut).
  LF_ASSIGN_OR_RETURN(Locked locked, lockAt(layers_fd_.get(), name, LOCK_SH, where(name)));
  if (locked.outcome == Lock::kLocked) {
    return std::optional<UniqueFd>(std::move(locked.fd));
  }
  if (locked.outcome == Lock::kNotDir) {
    return dataLoss("layer '" + where(name) + "' is not a directory");
  }
  return std::optional<UniqueFd>();
}

Result<LayerDirs::MoveOutResult> LayerDirs::moveOut(const std::string& name, Staging* trash) const {
  LF_ASSIGN_OR_RETURN(Locked locked,
                      lockAt(layers_fd_.get(), name, LOCK_EX | LOCK_NB, where(name)));
  if (locked.outcome == Lock::kBusy) {
    return MoveOutResult::kBusy;
  }
  if (locked.outcome == Lock::kGone) {
    return MoveOutResult::kGone;
  }
  // Locked, or not a directory (junk nobody can pin): either way it goes. The layer is moved
  // below a staging dir of ours, so cleanStaging() in other processes leaves it alone while we
  // delete it; pinners waiting for its lock then find l/<name> gone.
  LF_ASSIGN_OR_RETURN(*trash, makeStaging("evicted"));
  std::string target = trash->name + "/layer";
  if (renameat(layers_fd_.get(), name.c_str(), tmp_fd_.get(), target.c_str()) != 0) {
    int err = errno;
    removeStaging(*trash).ignore();  // an empty dir of ours; the rename error matters
    if (err == ENOENT) {
      return MoveOutResult::kGone;
    }
    return errnoStatus(err, "move layer '" + where(name) + "' out for deletion");
  }
  return MoveOutResult::kMoved;
}

Result<LayerMetaFile> LayerDirs::readMeta(const std::string& name) const {
  return readLayerMeta(layers_fd_.get(), name + "/" + kMetaFile, where(name, kMetaFile));
}

Status LayerDirs::writeMeta(const Staging& staging, const LayerMeta& meta) const {
  return writeLayerMeta(tmp_fd_.get(), staging.name + "/" + kMetaFile, meta,
                        (tmp_dir_ / staging.name / kMetaFile).string());
}

std::optional<int64_t> LayerDirs::lastUse(const std::string& name) const {
  struct stat st;
  if (fstatat(layers_fd_.get(), (name + "/" + kMetaFile).c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return std::nullopt;
  }
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

void LayerDirs::touch(const std::string& name, int64_t ns) const {
  timespec times[2];
  times[0].tv_sec = times[1].tv_sec = ns / 1'000'000'000;
  times[0].tv_nsec = times[1].tv_nsec = ns % 1'000'000'000;
  // Best effort: a lost update only makes the layer look older to LRU in other processes and
  // after a restart; it cannot make a pinned layer evictable.
  utimensat(layers_fd_.get(), (name + "/" + kMetaFile).c_str(), times, AT_SYMLINK_NOFOLLOW);
}

bool LayerDirs::hasFsDir(const std::string& name) const {
  struct stat st;
  return fstatat(layers_fd_.get(), (name + "/" + kFsDir).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
         S_ISDIR(st.st_mode);
}

Status LayerDirs::syncFs() const {
  if (sync_fs_) {
    return sync_fs_(tmp_fd_.get());
  }
  if (syncfs(tmp_fd_.get()) != 0) {
    return errnoStatus(errno, "sync the filesystem of '" + tmp_dir_.string() + "'");
  }
  return Status::ok();
}

bool LayerDirs::isSynced(const std::string& name) const {
  struct stat st;
  return fstatat(layers_fd_.get(), (name + "/" + kSyncedFile).c_str(), &st, AT_SYMLINK_NOFOLLOW) ==
             0 &&
         S_ISREG(st.st_mode);
}

Status LayerDirs::markSynced(int layer_fd, const std::string& name) const {
  UniqueFd fd(openat(layer_fd, kSyncedFile, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) {
    return errnoStatus(errno, "create '" + where(name, kSyncedFile) + "'");
  }
  return Status::ok();
}

}  // namespace lf::worker
