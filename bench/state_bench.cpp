// StateStore benchmark: the coordinator's RocksDB layer-cache index with N entries (default
// 100,000). Prints, on one machine and disk:
//   - fill: cache-entry puts in batches of 1,000 (one synced commit per batch), entries/s
//   - synced single puts (putCacheEntry, sync on) from 1 and 4 threads, puts/s (4 threads show
//     RocksDB's group commit sharing fdatasyncs)
//   - point lookups of random present keys, and of absent keys (bloom filter), lookups/s
//   - lookupMany of 50 keys (one build plan), plans/s
//   - recordHit (merge, not synced), hits/s
//   - cacheStats full scan, ms
// The blob check always answers "present": the figures are the index's, not the blob store's.
//
//   state_bench [entries] [synced_puts] [dir]

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/state/state_store.h"

namespace {

namespace fs = std::filesystem;
using lf::Digest;
using lf::coordinator::CacheEntry;
using lf::coordinator::StateStore;
using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

Digest keyOf(uint64_t i) { return Digest::sha256Of("key " + std::to_string(i)); }

CacheEntry entryOf(uint64_t i) {
  CacheEntry e;
  e.key = keyOf(i);
  e.layer.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
  e.layer.digest = Digest::sha256Of("layer " + std::to_string(i));
  e.layer.size = 1000 + i;
  e.diff_id = Digest::sha256Of("diff " + std::to_string(i));
  e.kind = lf::coordinator::InstructionKind::kRun;
  e.created_by = "RUN make -j2 target" + std::to_string(i);
  e.created_by_build = "b-" + std::to_string(i / 20);
  e.created_unix_ms = 1'700'000'000'000 + static_cast<int64_t>(i);
  return e;
}

lf::coordinator::BlobCheck present() {
  return [](const lf::coordinator::LayerDescriptor&) { return lf::Status::ok(); };
}

bool check(const lf::Status& s, const char* what) {
  if (!s.isOk()) {
    std::fprintf(stderr, "%s: %s\n", what, s.toString().c_str());
  }
  return s.isOk();
}

bool fill(StateStore& store, uint64_t entries) {
  auto start = Clock::now();
  for (uint64_t i = 0; i < entries;) {
    StateStore::Batch batch = store.newBatch();
    for (uint64_t end = std::min(entries, i + 1000); i < end; ++i) {
      batch.putCacheEntry(entryOf(i));
    }
    if (!check(batch.commit(present()), "fill")) {
      return false;
    }
  }
  double s = secondsSince(start);
  std::printf("fill            %8llu entries in batches of 1000: %7.2f s  %10.0f entries/s\n",
              static_cast<unsigned long long>(entries), s, static_cast<double>(entries) / s);
  return true;
}

bool syncedPuts(StateStore& store, uint64_t first, uint64_t count, int threads) {
  std::vector<std::thread> pool;
  std::atomic<bool> ok = true;
  auto start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (uint64_t i = first + static_cast<uint64_t>(t); i < first + count;
           i += static_cast<uint64_t>(threads)) {
        if (!store.putCacheEntry(entryOf(i), present()).isOk()) {
          ok = false;
          return;
        }
      }
    });
  }
  for (std::thread& t : pool) {
    t.join();
  }
  double s = secondsSince(start);
  std::printf("synced puts     %8llu, %d thread(s):            %7.2f s  %10.0f puts/s\n",
              static_cast<unsigned long long>(count), threads, s, static_cast<double>(count) / s);
  return ok;
}

bool lookups(StateStore& store, uint64_t entries, bool absent) {
  std::mt19937_64 rng(42);
  const uint64_t n = 100'000;
  uint64_t found = 0;
  auto start = Clock::now();
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t k = absent ? entries * 10 + i : rng() % entries;
    auto e = store.lookup(keyOf(k));
    if (!check(e.status(), "lookup")) {
      return false;
    }
    found += e->has_value() ? 1 : 0;
  }
  double s = secondsSince(start);
  std::printf("lookups %-7s %8llu (found %llu):         %7.2f s  %10.0f lookups/s\n",
              absent ? "absent" : "present", static_cast<unsigned long long>(n),
              static_cast<unsigned long long>(found), s, static_cast<double>(n) / s);
  return true;
}

bool plans(StateStore& store, uint64_t entries) {
  std::mt19937_64 rng(7);
  const int n = 2000;
  auto start = Clock::now();
  for (int p = 0; p < n; ++p) {
    std::vector<Digest> keys;
    for (int i = 0; i < 50; ++i) {
      keys.push_back(keyOf(rng() % entries));
    }
    if (!check(store.lookupMany(keys).status(), "lookupMany")) {
      return false;
    }
  }
  double s = secondsSince(start);
  std::printf("lookupMany(50)  %8d plans:                   %7.2f s  %10.0f plans/s\n", n, s,
              n / s);
  return true;
}

bool hits(StateStore& store, uint64_t entries) {
  const uint64_t n = 100'000;
  auto start = Clock::now();
  for (uint64_t i = 0; i < n; ++i) {
    if (!check(store.recordHit(keyOf(i % entries), static_cast<int64_t>(i)), "recordHit")) {
      return false;
    }
  }
  double s = secondsSince(start);
  std::printf("recordHit       %8llu (not synced):             %7.2f s  %10.0f hits/s\n",
              static_cast<unsigned long long>(n), s, static_cast<double>(n) / s);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t entries = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 100'000;
  uint64_t synced = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 2'000;
  fs::path dir = argc > 3
                     ? fs::path(argv[3])
                     : fs::temp_directory_path() / ("lf-state-bench-" + std::to_string(getpid()));
  if (entries == 0) {
    std::fprintf(stderr, "usage: state_bench [entries>0] [synced_puts] [dir]\n");
    return 2;
  }
  fs::remove_all(dir);
  bool ok = true;
  {
    auto store = StateStore::open({.dir = dir});
    if (!store.isOk()) {
      std::fprintf(stderr, "%s\n", store.status().toString().c_str());
      return 1;
    }
    StateStore& s = **store;
    ok = fill(s, entries) && syncedPuts(s, entries, synced, 1) &&
         syncedPuts(s, entries + synced, synced, 4) && lookups(s, entries, false) &&
         lookups(s, entries, true) && plans(s, entries) && hits(s, entries);
    if (ok) {
      auto start = Clock::now();
      auto stats = s.cacheStats();
      ok = check(stats.status(), "cacheStats");
      if (ok) {
        std::printf("cacheStats      %8llu entries, %llu hits:       %7.3f s\n",
                    static_cast<unsigned long long>(stats->entries),
                    static_cast<unsigned long long>(stats->hits), secondsSince(start));
      }
    }
  }
  fs::remove_all(dir);
  return ok ? 0 : 1;
}
