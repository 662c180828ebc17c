#pragma once

// What the readers of uploaded tars share (context_tar.cpp's readContextTar,
// context_tar_convert.cpp's convertContextTar, the coordinator's files-tar reader): a libarchive
// read callback over a caller's read function, the thread locale switch libarchive needs for
// non-ASCII pax names, and the UTF-8 check JSON and pax headers both require.
//
// Header-only and small; every type is used from one thread at a time.

#include <archive.h>
#include <locale.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace lf::context {

// libarchive converts names between the locale's charset and the UTF-8 of pax headers. In the
// C locale (a daemon's, or a CLI run with LANG unset) that fails for every non-ASCII name, so
// both directions run with the calling thread switched to C.UTF-8: names go into the tar as
// their UTF-8 bytes and come back unchanged. Archives must be created inside the scope
// (libarchive reads the charset once per archive).
class ScopedUtf8Locale {
 public:
  ScopedUtf8Locale() : utf8_(newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0))) {
    if (utf8_ != static_cast<locale_t>(0)) previous_ = uselocale(utf8_);
  }
  ~ScopedUtf8Locale() {
    if (utf8_ != static_cast<locale_t>(0)) {
      uselocale(previous_);
      freelocale(utf8_);
    }
  }
  ScopedUtf8Locale(const ScopedUtf8Locale&) = delete;
  ScopedUtf8Locale& operator=(const ScopedUtf8Locale&) = delete;

 private:
  locale_t utf8_;
  locale_t previous_ = static_cast<locale_t>(0);
};

// For std::unique_ptr<archive, ArchiveReadFree>.
struct ArchiveReadFree {
  void operator()(archive* a) const { archive_read_free(a); }
};

// Feeds libarchive (archive_read_open(ar, &source, nullptr, &ArchiveSource::onRead, nullptr))
// from `read`, which fills a buffer and returns the bytes read (0 at the end). The first error
// of `read` is kept in status(): libarchive only sees -1. `read` must outlive the source.
class ArchiveSource {
 public:
  using ReadFn = std::function<Result<size_t>(void* buf, size_t size)>;

  ArchiveSource(const ReadFn& read, size_t buffer_bytes) : read_(read), buf_(buffer_bytes) {}

  static la_ssize_t onRead(archive*, void* self, const void** out) {
    auto* me = static_cast<ArchiveSource*>(self);
    auto n = me->read_(me->buf_.data(), me->buf_.size());
    if (!n.isOk()) {
      me->status_ = n.status();
      return -1;
    }
    *out = me->buf_.data();
    return static_cast<la_ssize_t>(*n);
  }

  // Reads whatever follows the end-of-archive blocks (padding): a network body is then consumed
  // whole, and a blob reader reaches its end, where it checks the digest.
  Status drain() {
    while (true) {
      LF_ASSIGN_OR_RETURN(size_t n, read_(buf_.data(), buf_.size()));
      if (n == 0) return Status::ok();
    }
  }

  const Status& status() const { return status_; }

 private:
  const ReadFn& read_;
  std::vector<char> buf_;
  Status status_;
};

// Whether `s` is well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
inline bool isUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80           ? 1
                     : (c >> 5) == 0x6  ? 2
                     : (c >> 4) == 0xE  ? 3
                     : (c >> 3) == 0x1E ? 4
                                        : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

}  // namespace lf::context
