#pragma once

// The merge operator of the "cache" column family: it folds cache-hit deltas (hit count += n,
// last hit = max) into a stored CacheEntryRecord, so recordHit() is a blind write (one memtable
// insert and WAL append) instead of a read-modify-write under a lock. Internal to
// coordinator/state.
//
// Why a merge and not an in-memory counter flushed later: hits reach disk with the WAL on every
// call and survive a process crash, and there is no flusher thread to stop at shutdown. Reads of
// an entry with pending operands fold them in (one protobuf parse and serialize per read until
// compaction folds them for good), which costs little next to the RocksDB read itself.
//
// Never fails a merge: RocksDB stops compactions (and turns the database read-only) on a failed
// merge, so damaged input is handled instead: a damaged stored value is kept as it is (readers
// then report kDataLoss for that key), damaged operands are dropped, and hits on a key without an
// entry produce an empty value, which readers treat as "no entry". Stateless, thread-safe.

#include <rocksdb/merge_operator.h>

#include <memory>

namespace lf::coordinator {

std::shared_ptr<rocksdb::MergeOperator> newHitMergeOperator();

}  // namespace lf::coordinator
