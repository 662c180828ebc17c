#include "common/blob/blob_store.h"

namespace lf::blob {

Result<BlobInfo> BlobStore::putBytes(std::string_view data, std::optional<Digest> expected) {
  LF_ASSIGN_OR_RETURN(auto writer, openWriter());
  LF_RETURN_IF_ERROR(writer->write(data));
  return writer->commit(std::move(expected));
}

Result<std::string> BlobStore::getBytes(const Digest& digest, uint64_t max_size) {
  LF_ASSIGN_OR_RETURN(auto reader, openReader(digest));
  if (reader->size() > max_size) {
    return resourceExhausted("blob " + digest.toString() + " is " + std::to_string(reader->size()) +
                             " bytes, more than the limit of " + std::to_string(max_size));
  }
  std::string out;
  out.reserve(reader->size());
  char buf[64 * 1024];
  while (true) {
    LF_ASSIGN_OR_RETURN(size_t n, reader->read(buf, sizeof(buf)));
    if (n == 0) {
      break;
    }
    if (out.size() + n > max_size) {
      return resourceExhausted("blob " + digest.toString() + " grew past the limit of " +
                               std::to_string(max_size) + " bytes while reading");
    }
    out.append(buf, n);
  }
  return out;
}

Result<bool> BlobStore::has(const Digest& digest) {
  LF_ASSIGN_OR_RETURN(auto info, stat(digest));
  return info.has_value();
}

}  // namespace lf::blob
