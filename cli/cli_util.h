#pragma once

// Small pieces the coordinator-facing commands share, kept apart so tests can check them without
// a server: where the server is, parsing --build-arg and --output, and the human formatting
// `docker history` and friends use (sizes "1.23MB", ages "2 minutes ago", aligned tables).
// Pure functions, thread-safe.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace lf::cli {

inline constexpr std::string_view kDefaultServer = "http://127.0.0.1:7070";

// The coordinator's base URL: the --server flag, else $LAYERFARM_SERVER, else kDefaultServer.
std::string resolveServer(const std::string& flag);

// --build-arg K=V (repeatable) into a map; a bare "K" takes K's value from the environment (as
// docker build does) and is left out when K is unset. `getenv` is injectable for tests.
Result<std::map<std::string, std::string>> parseBuildArgs(
    const std::vector<std::string>& args,
    const std::function<std::optional<std::string>(const std::string&)>& getenv);

// --output type=oci|docker,dest=PATH (buildx syntax, the types the farm exports).
struct BuildOutput {
  std::string type;
  std::string dest;
};
Result<BuildOutput> parseBuildOutput(std::string_view text);

// Decimal sizes with three significant digits, as docker prints them: "0B", "512B", "1.23kB",
// "20.1MB", "4.27GB".
std::string humanSize(uint64_t bytes);

// Go's units.HumanDuration, as `docker ps` and `docker history` print ages: "Less than a
// second", "1 second", "5 seconds", "About a minute", "2 minutes", "About an hour", "3 hours",
// "4 days", "2 weeks", "3 months", "2 years".
std::string humanDuration(int64_t ms);
// humanDuration(now - then) + " ago"; "N/A" when `then_ms` is 0.
std::string timeAgo(int64_t then_ms, int64_t now_ms);

// Cuts `text` to `width` characters (UTF-8 aware enough not to split a sequence), ending in "…".
std::string truncateText(std::string_view text, size_t width);

// Columns separated by three spaces, each as wide as its widest cell (docker's tabwriter
// layout). The last column is not padded.
std::string formatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

}  // namespace lf::cli
