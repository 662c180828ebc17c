#pragma once

// The one place rocksdb::Status becomes an lf::Status (STYLE.md: convert foreign errors once).
// Internal to coordinator/state.

#include <rocksdb/status.h>

#include <string_view>

#include "common/base/status.h"

namespace lf::coordinator {

// "<context>: <rocksdb message>", with a code chosen from the RocksDB code: Corruption ->
// kDataLoss, NotFound -> kNotFound, NoSpace -> kResourceExhausted, a held LOCK file ->
// kFailedPrecondition, Busy/TimedOut/TryAgain -> kUnavailable, InvalidArgument ->
// kInvalidArgument, anything else -> kInternal.
Status fromRocks(const rocksdb::Status& status, std::string_view context);

}  // namespace lf::coordinator
