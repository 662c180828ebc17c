#include "common/blob/blob_util.h"

#include <vector>

namespace lf::blob {

namespace {
constexpr size_t kChunkBytes = 256 * 1024;
}  // namespace

Status streamBlob(BlobStore& store, const Digest& digest,
                  const std::function<Status(const void* data, size_t size)>& sink) {
  LF_ASSIGN_OR_RETURN(auto reader, store.openReader(digest));
  std::vector<char> buf(kChunkBytes);
  while (true) {
    LF_ASSIGN_OR_RETURN(size_t n, reader->read(buf.data(), buf.size()));
    if (n == 0) {
      return Status::ok();
    }
    LF_RETURN_IF_ERROR(sink(buf.data(), n));
  }
}

Result<BlobInfo> copyBlob(BlobStore& from, BlobStore& to, const Digest& digest) {
  LF_ASSIGN_OR_RETURN(auto existing, to.stat(digest));
  if (existing.has_value()) {
    return *existing;
  }
  LF_ASSIGN_OR_RETURN(auto writer, to.openWriter());
  LF_RETURN_IF_ERROR(streamBlob(from, digest, [&](const void* data, size_t size) {
                       return writer->write(data, size);
                     }).withContext("copy " + digest.toString()));
  // commit() re-checks the digest, so a source that changed under us stores nothing.
  return writer->commit(digest);
}

}  // namespace lf::blob
