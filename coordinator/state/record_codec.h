#pragma once

// Stored form of the state records: each struct of state_records.h <-> its protobuf message of
// proto/layerfarm/v1/state.proto, serialized. Internal to coordinator/state.
//
// decode*() never trust the bytes: a value that does not parse, or a digest field that is not
// "sha256:<64 hex>", gives kDataLoss saying which field; the caller adds the column family and
// key. Unknown fields (written by a newer coordinator) are ignored. Stateless and thread-safe.

#include <string>
#include <string_view>

#include "common/base/status.h"
#include "coordinator/state/state_records.h"

namespace lf::coordinator::codec {

std::string encode(const CacheEntry& entry);
Result<CacheEntry> decodeCacheEntry(std::string_view bytes);

// A merge operand of the "cache" column family (hit_merge_operator.h).
std::string encodeHitDelta(uint64_t count, int64_t last_hit_unix_ms);

std::string encode(const Alias& alias);
Result<Alias> decodeAlias(std::string_view bytes);

std::string encode(const BuildRecord& build);
Result<BuildRecord> decodeBuild(std::string_view bytes);

std::string encode(const JobRecord& job);
Result<JobRecord> decodeJob(std::string_view bytes);

std::string encode(const ImageRecord& image);
Result<ImageRecord> decodeImage(std::string_view bytes);

std::string encode(const ContextRecord& context);
Result<ContextRecord> decodeContext(std::string_view bytes);

}  // namespace lf::coordinator::codec
