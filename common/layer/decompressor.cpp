// Streaming decompression of layer blobs: gzip (one or more members), zstd (one or more frames)
// or pass-through, chosen by the blob's magic bytes.

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "common/layer/compression.h"

namespace lf::layer {
namespace {

constexpr size_t kInBytes = 256 * 1024;

// Owns the compressed input buffer and the pull from the source.
class InputBuffer {
 public:
  explicit InputBuffer(Source source) : source_(std::move(source)), buf_(kInBytes, '\0') {}

  // Refills when empty; returns false at the end of the source.
  Result<bool> fill() {
    if (pos_ < len_) {
      return true;
    }
    if (eof_) {
      return false;
    }
    LF_ASSIGN_OR_RETURN(size_t n, source_(buf_.data(), buf_.size()));
    pos_ = 0;
    len_ = n;
    if (n == 0) {
      eof_ = true;
      return false;
    }
    return true;
  }
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(buf_.data()) + pos_; }
  size_t available() const { return len_ - pos_; }
  void consume(size_t n) { pos_ += n; }

  // Reads ahead until at least `want` bytes are buffered or the source ends (for magic sniffing).
  Status peek(size_t want) {
    while (len_ - pos_ < want && !eof_) {
      if (pos_ > 0) {
        std::memmove(buf_.data(), buf_.data() + pos_, len_ - pos_);
        len_ -= pos_;
        pos_ = 0;
      }
      LF_ASSIGN_OR_RETURN(size_t n, source_(buf_.data() + len_, buf_.size() - len_));
      if (n == 0) {
        eof_ = true;
      }
      len_ += n;
    }
    return Status::ok();
  }

 private:
  Source source_;
  std::string buf_;
  size_t pos_ = 0;
  size_t len_ = 0;
  bool eof_ = false;
};

class GzipDecompressor final : public Decompressor {
 public:
  explicit GzipDecompressor(InputBuffer in) : in_(std::move(in)) {}
  ~GzipDecompressor() override {
    if (init_) {
      inflateEnd(&zs_);
    }
  }
  Compression detected() const override { return Compression::kGzip; }

  Result<size_t> read(void* data, size_t size) override {
    if (size == 0) {
      return size_t{0};
    }
    while (true) {
      if (!in_stream_) {
        LF_ASSIGN_OR_RETURN(bool more, nextMember());
        if (!more) {
          return size_t{0};
        }
      }
      // At the end of the input inflate may still hold output (a match or stored block cut by
      // a full output buffer), so it runs once more with no input before we call it truncated.
      LF_ASSIGN_OR_RETURN(bool have, in_.fill());
      zs_.next_in = have ? const_cast<Bytef*>(in_.data()) : nullptr;
      zs_.avail_in = have ? static_cast<uInt>(std::min<size_t>(in_.available(), UINT32_MAX)) : 0;
      zs_.next_out = static_cast<Bytef*>(data);
      zs_.avail_out = static_cast<uInt>(std::min<size_t>(size, UINT32_MAX));
      const uInt before_in = zs_.avail_in;
      int rc = inflate(&zs_, Z_NO_FLUSH);
      in_.consume(before_in - zs_.avail_in);
      size_t produced = std::min<size_t>(size, UINT32_MAX) - zs_.avail_out;
      if (rc == Z_STREAM_END) {
        in_stream_ = false;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        return dataLoss(std::string("gzip stream is corrupt: ") + (zs_.msg ? zs_.msg : "inflate"));
      } else if (!have && produced == 0) {
        return dataLoss("gzip stream is truncated (ends inside a member)");
      }
      if (produced > 0) {
        return produced;
      }
    }
  }

 private:
  // Starts the next gzip member; false at a clean end of input. Zero padding after the last
  // member is tolerated (some tools pad); anything else is an error.
  Result<bool> nextMember() {
    LF_ASSIGN_OR_RETURN(bool have, in_.fill());
    if (!have) {
      if (members_ == 0) {
        return dataLoss("gzip stream is empty");
      }
      return false;
    }
    if (in_.data()[0] != 0x1f) {
      while (true) {
        for (size_t i = 0; i < in_.available(); ++i) {
          if (in_.data()[i] != 0) {
            return invalidArgument("trailing garbage after the gzip stream");
          }
        }
        in_.consume(in_.available());
        LF_ASSIGN_OR_RETURN(bool again, in_.fill());
        if (!again) {
          return false;
        }
      }
    }
    if (!init_) {
      std::memset(&zs_, 0, sizeof(zs_));
      if (inflateInit2(&zs_, 16 + 15) != Z_OK) {
        return internalError("gzip: inflateInit2 failed");
      }
      init_ = true;
    } else if (inflateReset(&zs_) != Z_OK) {
      return internalError("gzip: inflateReset failed");
    }
    in_stream_ = true;
    ++members_;
    return true;
  }

  InputBuffer in_;
  z_stream zs_{};
  bool init_ = false;
  bool in_stream_ = false;
  int members_ = 0;
};

class ZstdDecompressor final : public Decompressor {
 public:
  explicit ZstdDecompressor(InputBuffer in) : in_(std::move(in)) {}
  ~ZstdDecompressor() override { ZSTD_freeDCtx(dctx_); }
  Compression detected() const override { return Compression::kZstd; }

  Result<size_t> read(void* data, size_t size) override {
    if (dctx_ == nullptr) {
      dctx_ = ZSTD_createDCtx();
      if (dctx_ == nullptr) {
        return resourceExhausted("zstd: cannot allocate a decompression context");
      }
      // Refuse frames that need a window above 128 MiB (memory bound on untrusted input).
      ZSTD_DCtx_setParameter(dctx_, ZSTD_d_windowLogMax, 27);
    }
    while (true) {
      LF_ASSIGN_OR_RETURN(bool have, in_.fill());
      if (!have && !frame_open_) {
        if (!any_) {
          return dataLoss("zstd stream is empty");
        }
        return size_t{0};
      }
      // With no input left, one more call drains what the decoder still holds.
      ZSTD_inBuffer in{have ? in_.data() : nullptr, have ? in_.available() : 0, 0};
      ZSTD_outBuffer out{data, size, 0};
      size_t rc = ZSTD_decompressStream(dctx_, &out, &in);
      in_.consume(in.pos);
      if (ZSTD_isError(rc)) {
        return dataLoss(std::string("zstd stream is corrupt: ") + ZSTD_getErrorName(rc));
      }
      if (!have && out.pos == 0) {
        return dataLoss("zstd stream is truncated (ends inside a frame)");
      }
      any_ = true;
      frame_open_ = rc != 0;
      if (out.pos > 0) {
        return out.pos;
      }
    }
  }

 private:
  InputBuffer in_;
  ZSTD_DCtx* dctx_ = nullptr;
  bool frame_open_ = false;
  bool any_ = false;
};

class PassThroughDecompressor final : public Decompressor {
 public:
  explicit PassThroughDecompressor(InputBuffer in) : in_(std::move(in)) {}
  Compression detected() const override { return Compression::kNone; }
  Result<size_t> read(void* data, size_t size) override {
    LF_ASSIGN_OR_RETURN(bool have, in_.fill());
    if (!have) {
      return size_t{0};
    }
    size_t n = std::min(size, in_.available());
    std::memcpy(data, in_.data(), n);
    in_.consume(n);
    return n;
  }

 private:
  InputBuffer in_;
};

// Sniffs the magic on the first read, then delegates.
class DetectingDecompressor final : public Decompressor {
 public:
  explicit DetectingDecompressor(Source source) : source_(std::move(source)) {}
  Compression detected() const override { return inner_ ? inner_->detected() : Compression::kNone; }
  Result<size_t> read(void* data, size_t size) override {
    if (!inner_) {
      InputBuffer in(std::move(source_));
      LF_RETURN_IF_ERROR(in.peek(4));
      switch (detectCompression(in.data(), in.available())) {
        case Compression::kGzip:
          inner_ = std::make_unique<GzipDecompressor>(std::move(in));
          break;
        case Compression::kZstd:
          inner_ = std::make_unique<ZstdDecompressor>(std::move(in));
          break;
        case Compression::kNone:
          inner_ = std::make_unique<PassThroughDecompressor>(std::move(in));
          break;
      }
    }
    return inner_->read(data, size);
  }

 private:
  Source source_;
  std::unique_ptr<Decompressor> inner_;
};

}  // namespace

std::unique_ptr<Decompressor> makeDecompressor(Source source) {
  return std::make_unique<DetectingDecompressor>(std::move(source));
}

}  // namespace lf::layer
