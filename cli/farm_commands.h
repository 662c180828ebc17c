#pragma once

// The read-mostly farm commands (cli/farm_commands.cpp): `layerfarm history REF`, `builds`,
// `logs BUILD`, `cancel BUILD`, `workers`, `cache stats`. The formatting of each answer is a pure
// function of the coordinator's JSON (docs/http-api.md) and the current time, so tests check the
// tables without a server. Malformed or missing fields print as empty cells, never crash.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace lf::cli {

// `docker history` layout, newest first: IMAGE CREATED CREATED BY SIZE COMMENT. IMAGE is the
// image ID (config digest, 12 hex unless no_trunc) on the newest row and <missing> below, as
// docker shows for layers it did not pull as images; CREATED BY is cut to 45 characters unless
// no_trunc.
std::string formatHistory(const nlohmann::json& answer, int64_t now_ms, bool no_trunc);
// The same rows as JSON lines (docker's --format json keys: ID, CreatedAt, CreatedSince,
// CreatedBy, Size, Comment).
std::string formatHistoryJson(const nlohmann::json& answer, int64_t now_ms);

// ID STATE TAGS CREATED DURATION CACHED ("5/7").
std::string formatBuilds(const nlohmann::json& answer, int64_t now_ms);
// ID PLATFORM SLOTS RUNNING DRAINING HELD LAYERS.
std::string formatWorkers(const nlohmann::json& answer);
// Totals, then a KIND ENTRIES SIZE HITS table.
std::string formatCacheStats(const nlohmann::json& answer);

}  // namespace lf::cli
