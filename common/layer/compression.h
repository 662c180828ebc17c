#pragma once

// Layer compression: the formats an OCI layer blob may use, and streaming compressors and
// decompressors for them.
//
// Compressor is a push-style byte sink: write() uncompressed bytes, finish() once; compressed
// bytes go to the Sink given at construction, always in order and always from the calling thread
// (so the sink needs no locking). The gzip compressor deflates fixed 128 KiB blocks on a small
// thread pool (pigz-style: each block primed with the previous block's last 32 KiB, blocks joined
// at byte-aligned sync-flush boundaries, CRC-32s combined), so its output is ONE ordinary gzip
// member that depends only on the input and the level, never on the thread count or timing.
// Memory stays bounded: at most a few blocks per thread are in flight.
//
// Decompressor auto-detects gzip (1f 8b) and zstd (28 b5 2f fd) by magic bytes and passes
// anything else through unchanged (an uncompressed tar).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include "common/base/status.h"

namespace lf::layer {

enum class Compression { kGzip, kZstd, kNone };

// "gzip", "zstd", "none".
std::string_view compressionName(Compression compression);
// The OCI layer media type: application/vnd.oci.image.layer.v1.tar(+gzip|+zstd).
std::string_view layerMediaType(Compression compression);
// Inverse of layerMediaType; also accepts the Docker v2 schema 2 layer media types.
std::optional<Compression> compressionFromMediaType(std::string_view media_type);
// Looks at the first bytes of a blob: gzip and zstd by magic, anything else kNone.
Compression detectCompression(const void* data, size_t size);

// Receives output bytes in order.
using Sink = std::function<Status(const void* data, size_t size)>;

struct CompressorOptions {
  // Threads that compress (gzip blocks / zstd workers). 0 = std::thread::hardware_concurrency().
  int threads = 0;
  // zlib level 1..9 (default 6, like gzip and pigz); zstd level 1..19 (default 3).
  int gzip_level = 6;
  int zstd_level = 3;
};

class Compressor {
 public:
  virtual ~Compressor() = default;
  virtual Status write(const void* data, size_t size) = 0;
  // Flushes everything and writes the trailer. Call once; write() after finish() is an error.
  virtual Status finish() = 0;
};

Result<std::unique_ptr<Compressor>> makeCompressor(Compression compression,
                                                   const CompressorOptions& options, Sink sink);

// Pull-style decompressor over a pull-style source. `read` returns 0 at the end of the input.
using Source = std::function<Result<size_t>(void* data, size_t size)>;

class Decompressor {
 public:
  virtual ~Decompressor() = default;
  // Up to `size` decompressed bytes; 0 at the end. Fails with kDataLoss on corrupt or truncated
  // input (bad CRC, stream ends early) and kInvalidArgument on trailing garbage.
  virtual Result<size_t> read(void* data, size_t size) = 0;
  // The format detected from the first bytes (valid after the first read()).
  virtual Compression detected() const = 0;
};

std::unique_ptr<Decompressor> makeDecompressor(Source source);

}  // namespace lf::layer
