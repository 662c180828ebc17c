// Deferred durability of the LayerStore (layer_store.h, "Durability"): the rule for layers found
// on disk, flush() and the flusher thread.

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "worker/layer_store/layer_store_impl.h"

namespace lf::worker {

using layer::UniqueFd;
using Staging = LayerDirs::Staging;

LayerStore::Impl::Durability LayerStore::Impl::durability(const std::string& name,
                                                          const LayerMeta& meta) const {
  if (meta.boot_id.empty() || dirs.isSynced(name)) {
    return Durability::kSynced;
  }
  return meta.boot_id == boot_id ? Durability::kPending : Durability::kLost;
}

// Locks each pending layer (so no evictor can move it while it is being marked), syncs the
// filesystem once, then marks each through its locked fd. Every locked layer was published
// before the lock, hence written before the syncfs: the marker never outruns the data.
Status LayerStore::Impl::flush() {
  if (!deferred) {
    return Status::ok();
  }
  std::lock_guard flushing(flush_mu);
  std::vector<std::string> names;
  {
    std::lock_guard lock(mu);
    for (auto& [name, e] : index) {
      if (!e.pending || e.sync_failed) {
        continue;
      }
      if (dirs.isSynced(name)) {
        e.pending = false;  // another process's flush got there first
      } else {
        names.push_back(name);
      }
    }
  }
  std::vector<std::pair<std::string, UniqueFd>> held;
  for (const std::string& name : names) {
    auto locked = dirs.lockShared(name);
    if (!locked.isOk()) {
      spdlog::warn("layer store flush skips a layer layer={} error={}", dirs.where(name),
                   locked.status().toString());
    } else if (*locked) {
      held.emplace_back(name, std::move(**locked));
    }  // else evicted since: nothing to mark
  }
  if (held.empty()) {
    return Status::ok();
  }
  Status synced = dirs.syncFs();
  {
    std::lock_guard lock(mu);
    ++flushes;
  }
  if (!synced.isOk()) {
    std::vector<std::string> flushed;
    for (auto& [name, fd] : held) {
      flushed.push_back(name);
    }
    held.clear();  // unlocks: failedSync needs the exclusive locks
    return failedSync(flushed, synced);
  }
  std::vector<std::pair<std::string, bool>> results;  // name, marked
  Status first;
  for (auto& [name, fd] : held) {
    Status status = dirs.markSynced(fd.get(), name);
    results.emplace_back(name, status.isOk());
    if (!status.isOk() && first.isOk()) {
      first = status;
    }
  }
  held.clear();
  std::lock_guard lock(mu);
  for (const auto& [name, ok] : results) {
    if (auto it = index.find(name); it != index.end()) {
      // A marker that cannot be made (no space, junk in the way) is not retried by this process:
      // the flusher would otherwise syncfs every interval for it. The layer stays usable in this
      // boot; a reboot discards it.
      if (ok) {
        it->second.pending = false;
      } else {
        it->second.sync_failed = true;
      }
    }
  }
  return first;
}

// After a failed syncfs the pending layers' data may never reach the disk, and the error is
// reported once per fd: a later syncfs would succeed without having written them. Those nobody
// uses are deleted; the others are never marked by this process, so a reboot discards them.
Status LayerStore::Impl::failedSync(const std::vector<std::string>& names, const Status& error) {
  std::vector<Staging> trash;
  {
    std::lock_guard lock(mu);
    for (const std::string& name : names) {
      auto it = index.find(name);
      if (it == index.end()) {
        continue;
      }
      if (it->second.pins == 0) {
        Staging moved_to;
        auto moved = dirs.moveOut(name, &moved_to);
        if (moved.isOk() && *moved != LayerDirs::MoveOutResult::kBusy) {
          if (*moved == LayerDirs::MoveOutResult::kMoved) {
            trash.push_back(std::move(moved_to));
          }
          eraseLocked(name);
          continue;
        }
      }
      it->second.sync_failed = true;
    }
  }
  for (Staging& t : trash) {
    dirs.removeStaging(t).ignore();  // unreachable already; leftovers go at the next open()
  }
  return error.withContext("flush layer store '" + dirs.root().string() + "' (" +
                           std::to_string(trash.size()) + " pending layers discarded)");
}

bool LayerStore::Impl::flushDueLocked() const {
  return std::any_of(index.begin(), index.end(),
                     [](const auto& kv) { return kv.second.pending && !kv.second.sync_failed; });
}

void LayerStore::Impl::flusherLoop() {
  const auto interval = std::chrono::milliseconds(options.sync_interval_ms);
  std::unique_lock lock(mu);
  while (!stopping) {
    if (flusher_cv.wait_for(lock, interval, [&] { return stopping; })) {
      break;
    }
    if (!flushDueLocked()) {
      continue;
    }
    lock.unlock();
    Status status = flush();
    if (!status.isOk()) {
      spdlog::error("layer store flush failed root={} error={}", dirs.root().string(),
                    status.toString());
    }
    lock.lock();
  }
}

Status LayerStore::flush() { return impl_->flush(); }

}  // namespace lf::worker
