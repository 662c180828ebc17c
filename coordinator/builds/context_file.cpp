#include "coordinator/builds/context_file.h"

#include <archive.h>
#include <archive_entry.h>

#include <memory>
#include <vector>

namespace lf::coordinator {
namespace {

// libarchive's read callback over a BlobReader; keeps the reader's error for the message.
struct BlobSource {
  blob::BlobReader* reader = nullptr;
  std::vector<char> buf = std::vector<char>(64 * 1024);
  Status error;
};

la_ssize_t blobRead(struct archive*, void* data, const void** out) {
  auto* src = static_cast<BlobSource*>(data);
  auto n = src->reader->read(src->buf.data(), src->buf.size());
  if (!n.isOk()) {
    src->error = n.status();
    return -1;
  }
  *out = src->buf.data();
  return static_cast<la_ssize_t>(*n);
}

std::string entryPath(archive_entry* entry) {
  const char* name = archive_entry_pathname(entry);
  std::string path = name ? name : "";
  while (path.starts_with("./")) path.erase(0, 2);
  while (!path.empty() && path.back() == '/') path.pop_back();
  return path;
}

}  // namespace

Result<std::string> normalizeContextPath(std::string_view path) {
  if (path.empty()) return invalidArgument("dockerfile: empty path");
  if (path.front() == '/') {
    return invalidArgument("dockerfile \"" + std::string(path) +
                           "\": must be relative to the context");
  }
  std::string out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view part = path.substr(i, j - i);
    if (part == "..") {
      return invalidArgument("dockerfile \"" + std::string(path) + "\": leaves the context");
    }
    if (!part.empty() && part != ".") {
      if (!out.empty()) out += '/';
      out += part;
    }
    i = j + 1;
  }
  if (out.empty()) return invalidArgument("dockerfile \"" + std::string(path) + "\": not a file");
  return out;
}

Result<std::string> readContextFile(blob::BlobStore& store, const Digest& context,
                                    std::string_view path, uint64_t max_bytes) {
  LF_ASSIGN_OR_RETURN(std::string want, normalizeContextPath(path));
  const std::string where = "context " + context.toString();
  LF_ASSIGN_OR_RETURN(auto reader, store.openReader(context));
  BlobSource src;
  src.reader = reader.get();
  std::unique_ptr<archive, decltype(&archive_read_free)> ar(archive_read_new(), &archive_read_free);
  if (archive_read_support_format_tar(ar.get()) != ARCHIVE_OK ||
      archive_read_open(ar.get(), &src, nullptr, blobRead, nullptr) != ARCHIVE_OK) {
    if (!src.error.isOk()) return src.error.withContext(where);
    return dataLoss(where + ": not a tar archive: " + archive_error_string(ar.get()));
  }
  while (true) {
    archive_entry* entry = nullptr;
    int r = archive_read_next_header(ar.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      if (!src.error.isOk()) return src.error.withContext(where);
      const char* err = archive_error_string(ar.get());
      return dataLoss(where + ": damaged tar: " + (err ? err : "unknown error"));
    }
    if (entryPath(entry) != want) continue;
    if (archive_entry_filetype(entry) != AE_IFREG) {
      return invalidArgument(where + ": \"" + want + "\" is not a regular file");
    }
    const int64_t size = archive_entry_size(entry);
    if (size < 0 || static_cast<uint64_t>(size) > max_bytes) {
      return resourceExhausted(where + ": \"" + want + "\" is larger than " +
                               std::to_string(max_bytes) + " bytes");
    }
    std::string content(static_cast<size_t>(size), '\0');
    size_t got = 0;
    while (got < content.size()) {
      la_ssize_t n = archive_read_data(ar.get(), content.data() + got, content.size() - got);
      if (n < 0) {
        if (!src.error.isOk()) return src.error.withContext(where);
        return dataLoss(where + ": reading \"" + want + "\": " + archive_error_string(ar.get()));
      }
      if (n == 0) return dataLoss(where + ": \"" + want + "\" is truncated");
      got += static_cast<size_t>(n);
    }
    return content;
  }
  return notFound(where + ": \"" + want + "\" not found in the context");
}

}  // namespace lf::coordinator
