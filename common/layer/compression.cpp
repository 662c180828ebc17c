#include "common/layer/compression.h"

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/layer/worker_pool.h"

namespace lf::layer {
namespace {

constexpr size_t kGzipBlockBytes = 128 * 1024;
constexpr size_t kDictBytes = 32 * 1024;
constexpr uint8_t kGzipMagic[] = {0x1f, 0x8b};
constexpr uint8_t kZstdMagic[] = {0x28, 0xb5, 0x2f, 0xfd};

int resolveThreads(int threads) {
  if (threads > 0) {
    return threads;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

// One block of the parallel gzip stream: its input, the dictionary it is primed with, and, once
// a worker is done, its raw-deflate output and CRC-32.
struct GzipBlock {
  std::string input;
  std::string dict;
  bool last = false;
  std::string output;
  uint32_t crc = 0;
  Status status;
  bool done = false;
};

// A raw-deflate stream reused across blocks by one thread.
class Deflater {
 public:
  ~Deflater() {
    if (init_) {
      deflateEnd(&zs_);
    }
  }
  Status compress(GzipBlock& block, int level) {
    if (!init_ || level_ != level) {
      if (init_) {
        deflateEnd(&zs_);
      }
      std::memset(&zs_, 0, sizeof(zs_));
      if (deflateInit2(&zs_, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        init_ = false;
        return internalError("gzip: deflateInit2 failed");
      }
      init_ = true;
      level_ = level;
    } else if (deflateReset(&zs_) != Z_OK) {
      return internalError("gzip: deflateReset failed");
    }
    if (!block.dict.empty()) {
      deflateSetDictionary(&zs_, reinterpret_cast<const Bytef*>(block.dict.data()),
                           static_cast<uInt>(block.dict.size()));
    }
    block.output.resize(deflateBound(&zs_, block.input.size()) + 64);
    zs_.next_in = reinterpret_cast<Bytef*>(block.input.data());
    zs_.avail_in = static_cast<uInt>(block.input.size());
    size_t produced = 0;
    const int flush = block.last ? Z_FINISH : Z_SYNC_FLUSH;
    while (true) {
      zs_.next_out = reinterpret_cast<Bytef*>(block.output.data() + produced);
      zs_.avail_out = static_cast<uInt>(block.output.size() - produced);
      int rc = deflate(&zs_, flush);
      produced = block.output.size() - zs_.avail_out;
      if (rc == Z_STREAM_END || (rc == Z_OK && zs_.avail_out != 0 && !block.last)) {
        break;
      }
      if (rc != Z_OK && rc != Z_BUF_ERROR) {
        return internalError("gzip: deflate failed");
      }
      block.output.resize(block.output.size() * 2);
    }
    block.output.resize(produced);
    block.crc = static_cast<uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(block.input.data()), block.input.size()));
    return Status::ok();
  }

 private:
  z_stream zs_{};
  bool init_ = false;
  int level_ = 0;
};

void putLe32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
}

class ParallelGzipCompressor final : public Compressor {
 public:
  ParallelGzipCompressor(const CompressorOptions& options, Sink sink)
      : level_(std::clamp(options.gzip_level, 1, 9)),
        threads_(resolveThreads(options.threads)),
        max_in_flight_(static_cast<size_t>(threads_) * 3),
        sink_(std::move(sink)) {
    if (threads_ > 1) {
      pool_ = std::make_unique<WorkerPool>(threads_);
    }
    current_ = std::make_shared<GzipBlock>();
    current_->input.reserve(kGzipBlockBytes);
  }

  ~ParallelGzipCompressor() override {
    // Workers hold shared_ptrs to blocks, so destroying the pool (joining) is all that is needed.
    pool_.reset();
  }

  Status write(const void* data, size_t size) override {
    if (finished_) {
      return failedPrecondition("gzip: write after finish");
    }
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      size_t take = std::min(size, kGzipBlockBytes - current_->input.size());
      current_->input.append(p, take);
      p += take;
      size -= take;
      if (current_->input.size() == kGzipBlockBytes) {
        LF_RETURN_IF_ERROR(dispatch(false));
      }
    }
    return Status::ok();
  }

  Status finish() override {
    if (finished_) {
      return failedPrecondition("gzip: finish called twice");
    }
    finished_ = true;
    if (!header_written_) {
      LF_RETURN_IF_ERROR(writeHeader());
    }
    LF_RETURN_IF_ERROR(dispatch(true));
    while (!in_flight_.empty()) {
      LF_RETURN_IF_ERROR(emitFront(true));
    }
    std::string trailer;
    putLe32(trailer, crc_);
    putLe32(trailer, static_cast<uint32_t>(total_in_ & 0xffffffffu));
    return sink_(trailer.data(), trailer.size());
  }

 private:
  Status writeHeader() {
    header_written_ = true;
    // mtime 0 and no name, so the stream depends only on the content; OS 255 = unknown.
    const uint8_t xfl = level_ == 9 ? 2 : (level_ == 1 ? 4 : 0);
    const uint8_t header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255};
    return sink_(header, sizeof(header));
  }

  Status dispatch(bool last) {
    if (!header_written_) {
      LF_RETURN_IF_ERROR(writeHeader());
    }
    std::shared_ptr<GzipBlock> block = std::move(current_);
    block->last = last;
    current_ = std::make_shared<GzipBlock>();
    current_->input.reserve(kGzipBlockBytes);
    size_t keep = std::min(block->input.size(), kDictBytes);
    current_->dict.assign(block->input.data() + block->input.size() - keep, keep);
    in_flight_.push_back(block);
    if (pool_) {
      pool_->submit([this, block] {
        thread_local Deflater deflater;
        Status s = deflater.compress(*block, level_);
        std::lock_guard<std::mutex> lock(mu_);
        block->status = std::move(s);
        block->done = true;
        done_cv_.notify_all();
      });
    } else {
      block->status = deflater_.compress(*block, level_);
      block->done = true;
    }
    // Emit what is ready in order; block when too much is in flight (bounded memory).
    while (!in_flight_.empty()) {
      bool must_wait = in_flight_.size() >= max_in_flight_;
      if (!must_wait && !frontDone()) {
        break;
      }
      LF_RETURN_IF_ERROR(emitFront(true));
    }
    return Status::ok();
  }

  bool frontDone() {
    std::lock_guard<std::mutex> lock(mu_);
    return in_flight_.front()->done;
  }

  Status emitFront(bool wait) {
    std::shared_ptr<GzipBlock> block = in_flight_.front();
    {
      std::unique_lock<std::mutex> lock(mu_);
      done_cv_.wait(lock, [&] { return block->done; });
    }
    in_flight_.pop_front();
    LF_RETURN_IF_ERROR(block->status);
    crc_ = static_cast<uint32_t>(crc32_combine(crc_, block->crc, block->input.size()));
    total_in_ += block->input.size();
    return sink_(block->output.data(), block->output.size());
  }

  const int level_;
  const int threads_;
  const size_t max_in_flight_;
  Sink sink_;
  std::unique_ptr<WorkerPool> pool_;
  Deflater deflater_;  // used when running single-threaded
  std::shared_ptr<GzipBlock> current_;
  std::deque<std::shared_ptr<GzipBlock>> in_flight_;
  std::mutex mu_;
  std::condition_variable done_cv_;
  uint32_t crc_ = 0;
  uint64_t total_in_ = 0;
  bool header_written_ = false;
  bool finished_ = false;
};

class ZstdCompressor final : public Compressor {
 public:
  explicit ZstdCompressor(Sink sink) : sink_(std::move(sink)), out_(ZSTD_CStreamOutSize(), '\0') {}
  ~ZstdCompressor() override { ZSTD_freeCCtx(cctx_); }

  Status init(const CompressorOptions& options) {
    cctx_ = ZSTD_createCCtx();
    if (cctx_ == nullptr) {
      return resourceExhausted("zstd: cannot allocate a compression context");
    }
    // Always at least one worker: zstd's output is identical for any nbWorkers >= 1, but differs
    // between 0 and 1, and the digest must not depend on the thread count.
    const int workers = resolveThreads(options.threads);
    const int level = std::clamp(options.zstd_level, 1, 19);
    if (ZSTD_isError(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_nbWorkers, workers))) {
      return internalError("zstd: cannot set compression parameters (built without threads?)");
    }
    return Status::ok();
  }

  Status write(const void* data, size_t size) override {
    ZSTD_inBuffer in{data, size, 0};
    while (in.pos < in.size) {
      LF_RETURN_IF_ERROR(step(in, ZSTD_e_continue).status());
    }
    return Status::ok();
  }

  Status finish() override {
    ZSTD_inBuffer in{nullptr, 0, 0};
    while (true) {
      LF_ASSIGN_OR_RETURN(size_t remaining, step(in, ZSTD_e_end));
      if (remaining == 0) {
        return Status::ok();
      }
    }
  }

 private:
  Result<size_t> step(ZSTD_inBuffer& in, ZSTD_EndDirective mode) {
    ZSTD_outBuffer out{out_.data(), out_.size(), 0};
    size_t rc = ZSTD_compressStream2(cctx_, &out, &in, mode);
    if (ZSTD_isError(rc)) {
      return internalError(std::string("zstd: ") + ZSTD_getErrorName(rc));
    }
    if (out.pos > 0) {
      LF_RETURN_IF_ERROR(sink_(out_.data(), out.pos));
    }
    return rc;
  }

  Sink sink_;
  ZSTD_CCtx* cctx_ = nullptr;
  std::string out_;
};

class PassThroughCompressor final : public Compressor {
 public:
  explicit PassThroughCompressor(Sink sink) : sink_(std::move(sink)) {}
  Status write(const void* data, size_t size) override { return sink_(data, size); }
  Status finish() override { return Status::ok(); }

 private:
  Sink sink_;
};

}  // namespace

std::string_view compressionName(Compression compression) {
  switch (compression) {
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
    case Compression::kNone:
      return "none";
  }
  return "none";
}

std::string_view layerMediaType(Compression compression) {
  switch (compression) {
    case Compression::kGzip:
      return "application/vnd.oci.image.layer.v1.tar+gzip";
    case Compression::kZstd:
      return "application/vnd.oci.image.layer.v1.tar+zstd";
    case Compression::kNone:
      return "application/vnd.oci.image.layer.v1.tar";
  }
  return "application/vnd.oci.image.layer.v1.tar";
}

std::optional<Compression> compressionFromMediaType(std::string_view media_type) {
  if (media_type == "application/vnd.oci.image.layer.v1.tar+gzip" ||
      media_type == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" ||
      media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip" ||
      media_type == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip") {
    return Compression::kGzip;
  }
  if (media_type == "application/vnd.oci.image.layer.v1.tar+zstd" ||
      media_type == "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd") {
    return Compression::kZstd;
  }
  if (media_type == "application/vnd.oci.image.layer.v1.tar" ||
      media_type == "application/vnd.oci.image.layer.nondistributable.v1.tar" ||
      media_type == "application/vnd.docker.image.rootfs.diff.tar") {
    return Compression::kNone;
  }
  return std::nullopt;
}

Compression detectCompression(const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  if (size >= sizeof(kGzipMagic) && std::memcmp(p, kGzipMagic, sizeof(kGzipMagic)) == 0) {
    return Compression::kGzip;
  }
  if (size >= sizeof(kZstdMagic) && std::memcmp(p, kZstdMagic, sizeof(kZstdMagic)) == 0) {
    return Compression::kZstd;
  }
  return Compression::kNone;
}

Result<std::unique_ptr<Compressor>> makeCompressor(Compression compression,
                                                   const CompressorOptions& options, Sink sink) {
  switch (compression) {
    case Compression::kGzip:
      return std::unique_ptr<Compressor>(
          std::make_unique<ParallelGzipCompressor>(options, std::move(sink)));
    case Compression::kZstd: {
      auto z = std::make_unique<ZstdCompressor>(std::move(sink));
      LF_RETURN_IF_ERROR(z->init(options));
      return std::unique_ptr<Compressor>(std::move(z));
    }
    case Compression::kNone:
      return std::unique_ptr<Compressor>(std::make_unique<PassThroughCompressor>(std::move(sink)));
  }
  return invalidArgument("unknown compression");
}

}  // namespace lf::layer
