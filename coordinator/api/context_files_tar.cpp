#include "coordinator/api/context_files_tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <fmt/format.h>

#include <memory>
#include <string>
#include <vector>

#include "common/context/archive_read.h"

namespace lf::coordinator::api {
namespace {

constexpr size_t kBufferBytes = 256 * 1024;

Status entryError(std::string_view name, std::string_view problem) {
  return invalidArgument(fmt::format("context files tar: entry \"{}\": {}", name, problem));
}

class FilesTarReader {
 public:
  FilesTarReader(archive* ar, context::ArchiveSource& src, const std::map<Digest, uint64_t>& files,
                 blob::BlobStore& store)
      : ar_(ar), src_(src), files_(files), store_(store) {}

  Result<ContextFilesTarStats> run() {
    while (true) {
      archive_entry* a = nullptr;
      int rc = archive_read_next_header(ar_, &a);
      if (rc == ARCHIVE_EOF) break;
      if (rc != ARCHIVE_OK) {
        if (!src_.status().isOk()) return src_.status();
        const char* msg = archive_error_string(ar_);
        return invalidArgument(fmt::format("context files tar: after {} entries: {}",
                                           stats_.entries, msg ? msg : "unreadable header"));
      }
      LF_RETURN_IF_ERROR(entry(a));
      ++stats_.entries;
    }
    LF_RETURN_IF_ERROR(src_.drain());
    return stats_;
  }

 private:
  Status entry(archive_entry* a) {
    const char* raw = archive_entry_pathname(a);
    const std::string name = raw != nullptr ? raw : "";
    if (archive_entry_filetype(a) != AE_IFREG || archive_entry_hardlink(a) != nullptr) {
      return entryError(name, "not a regular file (the tar must hold only files named by digest)");
    }
    auto digest = Digest::parse(name);
    if (!digest.isOk()) return entryError(name, "the name must be \"sha256:<64 lowercase hex>\"");
    auto listed = files_.find(*digest);
    if (listed == files_.end())
      return entryError(name, "the context's manifest lists no such file");
    const la_int64_t size = archive_entry_size(a);
    if (size < 0 || static_cast<uint64_t>(size) != listed->second) {
      return entryError(name,
                        fmt::format("{} bytes, but the manifest says {}", size, listed->second));
    }
    if (archive_entry_sparse_count(a) > 0)
      return entryError(name, "sparse entries are not allowed");
    LF_ASSIGN_OR_RETURN(auto present, store_.stat(*digest));
    if (present) return skip(name);
    return store(name, *digest);
  }

  Status skip(const std::string& name) {
    if (archive_read_data_skip(ar_) != ARCHIVE_OK) return dataError(name);
    return Status::ok();
  }

  Status store(const std::string& name, const Digest& digest) {
    auto writer = store_.openWriter();
    if (!writer.isOk()) return writer.status().withContext("storing " + name);
    Sha256 sha;
    uint64_t total = 0;
    const void* block = nullptr;
    size_t len = 0;
    la_int64_t offset = 0;
    while (true) {
      int rc = archive_read_data_block(ar_, &block, &len, &offset);
      if (rc == ARCHIVE_EOF) break;
      if (rc != ARCHIVE_OK) return dataError(name);
      if (static_cast<uint64_t>(offset) != total) return entryError(name, "sparse data");
      sha.update(block, len);
      LF_RETURN_IF_ERROR((*writer)->write(block, len).withContext("storing " + name));
      total += len;
    }
    // The uncommitted writer discards the bytes of an entry that fails here.
    const Digest actual = sha.finish();
    if (actual != digest) {
      return invalidArgument(
          fmt::format("context files tar: file {} hashes to {}; nothing of it "
                      "was stored (the file changed while it was sent?)",
                      name, actual.toString()));
    }
    auto committed = (*writer)->commit(digest);
    if (!committed.isOk()) return committed.status().withContext("storing " + name);
    ++stats_.stored;
    stats_.stored_bytes += total;
    return Status::ok();
  }

  Status dataError(const std::string& name) {
    if (!src_.status().isOk()) return src_.status();
    const char* msg = archive_error_string(ar_);
    return entryError(name, std::string("reading data: ") + (msg ? msg : "truncated tar"));
  }

  archive* ar_;
  context::ArchiveSource& src_;
  const std::map<Digest, uint64_t>& files_;
  blob::BlobStore& store_;
  ContextFilesTarStats stats_;
};

}  // namespace

Result<ContextFilesTarStats> readContextFilesTar(
    const std::function<Result<size_t>(void* buf, size_t size)>& read,
    const std::map<Digest, uint64_t>& files, blob::BlobStore& store) {
  std::unique_ptr<archive, context::ArchiveReadFree> ar(archive_read_new());
  if (!ar) return resourceExhausted("context files tar: out of memory");
  context::ArchiveSource src(read, kBufferBytes);
  // Only tar, no decompression filter: the contract says uncompressed. An empty body is an
  // empty tar (nothing sent).
  if (archive_read_support_format_tar(ar.get()) != ARCHIVE_OK ||
      archive_read_support_format_empty(ar.get()) != ARCHIVE_OK ||
      archive_read_open(ar.get(), &src, nullptr, &context::ArchiveSource::onRead, nullptr) !=
          ARCHIVE_OK) {
    if (!src.status().isOk()) return src.status();
    const char* msg = archive_error_string(ar.get());
    return invalidArgument(std::string("context files tar: ") + (msg ? msg : "not a tar"));
  }
  FilesTarReader reader(ar.get(), src, files, store);
  return reader.run();
}

}  // namespace lf::coordinator::api
