#pragma once

// What `layerfarm history REF` prints, shaped like `docker history`: IMAGE, CREATED, CREATED BY,
// SIZE, COMMENT, newest first. Two steps so the coordinator can store the history once
// (HistoryEntry in coordinator/state/state_records.h, with each layer's size) and format it
// whenever asked:
//   historyEntries(config, layer sizes) -> stored in the ImageRecord at assembly time
//   historyRows(entries, options)       -> the table, relative to `now`
// Formatting follows the Docker CLI: sizes as units.HumanSizeWithPrecision(size, 3) ("0B",
// "1.23MB", decimal units), ages as units.HumanDuration(now - created) + " ago" ("5 minutes ago",
// "About an hour ago"), CREATED BY with tabs turned into spaces and cut to 45 characters with
// "…" unless no_trunc, IMAGE the image ID on the newest row and "<missing>" on the others (what
// Docker shows for images it did not build step by step itself). Pure functions, thread-safe.

#include <cstdint>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/oci/image_config.h"
#include "coordinator/assembly/image_assembly.h"
#include "coordinator/state/state_records.h"

namespace lf::coordinator {

// One history entry per config history entry (oldest first). layer_sizes[i] is the size of the
// i-th layer (manifest order); entries with empty_layer get 0. Errors (kInvalidArgument) when the
// history names more layers than there are sizes or an entry's `created` is not RFC 3339; a
// missing `created` gives 0.
Result<std::vector<HistoryEntry>> historyEntries(const oci::ImageConfig& config,
                                                 const std::vector<uint64_t>& layer_sizes);

// The ImageRecord to store after assembly (StateStore), so `layerfarm history` can answer later:
// digests, media type, platform ("linux/arm64/v8"), created time and historyEntries() with each
// layer's blob size as the given image lists it (pass the local image: uncompressed sizes for the
// build's own layers, as `docker history` shows; base layers as they came).
Result<ImageRecord> imageRecordOf(const AssembledImage& image, std::vector<std::string> references,
                                  std::string build_id);

struct HistoryRow {
  std::string image;       // image ID on the newest row ("sha256:..." or 12 hex when truncated)
  std::string created;     // "5 minutes ago"; "N/A" when the entry has no creation time
  std::string created_by;  // "RUN /bin/sh -c make # buildkit"
  std::string size;        // "1.23MB", "0B"
  std::string comment;     // "buildkit.dockerfile.v0"
  // Unformatted, for --format / JSON output.
  int64_t created_unix_ms = 0;
  uint64_t size_bytes = 0;
  bool empty_layer = false;
};

struct HistoryOptions {
  int64_t now_unix_ms = 0;
  // The image ID shown on the newest row: Docker shows the config digest.
  std::string image_id;
  bool no_trunc = false;  // docker history --no-trunc
};

// Newest first.
std::vector<HistoryRow> historyRows(const std::vector<HistoryEntry>& entries,
                                    const HistoryOptions& options);

// units.HumanSizeWithPrecision(bytes, 3): "0B", "512B", "1.5kB", "1.23MB".
std::string humanSize(uint64_t bytes);
// units.HumanDuration: "Less than a second", "5 minutes", "About an hour", "3 days", ...
std::string humanDuration(int64_t ms);
// Parses RFC 3339 ("2026-11-27T18:00:00Z", fractions and offsets allowed) to ms since the epoch.
Result<int64_t> parseRfc3339Ms(std::string_view text);

}  // namespace lf::coordinator
