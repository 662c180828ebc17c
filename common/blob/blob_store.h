#pragma once

// BlobStore: content-addressed storage shared by the whole farm (layers, contexts, configs).
//
// Every blob is named by the SHA-256 of its bytes. Writes are streamed through a BlobWriter that
// hashes as it goes and makes the blob visible atomically on commit(), only if the digest matches
// what the caller expected; readers verify the digest while reading and report kDataLoss at the
// end of a blob whose bytes do not match, so damaged data is never served silently.
// Implementations: DirectoryBlobStore (common/blob/directory_blob_store.h, the embedded default)
// and a registry-backed store (with the registry client). All methods are thread-safe; writers
// and readers are used by one thread at a time.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/status.h"
#include "common/digest/digest.h"

namespace lf::blob {

struct BlobInfo {
  Digest digest;
  uint64_t size = 0;
};

class BlobWriter {
 public:
  virtual ~BlobWriter() = default;  // an uncommitted writer discards what it wrote
  virtual Status write(const void* data, size_t size) = 0;
  Status write(std::string_view data) { return write(data.data(), data.size()); }
  // Bytes written so far.
  virtual uint64_t written() const = 0;
  // Finishes the blob. With `expected`, fails with kDataLoss (and stores nothing) when the bytes
  // written do not hash to it. Committing a blob that already exists succeeds and keeps one copy.
  virtual Result<BlobInfo> commit(std::optional<Digest> expected = std::nullopt) = 0;
};

class BlobReader {
 public:
  virtual ~BlobReader() = default;
  // Reads up to `size` bytes; returns 0 at the end. The last read fails with kDataLoss instead
  // of returning 0 if the blob's bytes did not match its digest.
  virtual Result<size_t> read(void* data, size_t size) = 0;
  virtual uint64_t size() const = 0;
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;

  virtual Result<std::unique_ptr<BlobWriter>> openWriter() = 0;
  // kNotFound when the blob is absent.
  virtual Result<std::unique_ptr<BlobReader>> openReader(const Digest& digest) = 0;
  // nullopt when absent.
  virtual Result<std::optional<BlobInfo>> stat(const Digest& digest) = 0;
  // Removing an absent blob is not an error.
  virtual Status remove(const Digest& digest) = 0;
  // Calls `fn` once per stored blob, in no particular order.
  virtual Status list(const std::function<void(const BlobInfo&)>& fn) = 0;

  // Conveniences over the streaming calls.
  Result<BlobInfo> putBytes(std::string_view data, std::optional<Digest> expected = std::nullopt);
  Result<std::string> getBytes(const Digest& digest, uint64_t max_size = 64ull << 20);
  Result<bool> has(const Digest& digest);
};

}  // namespace lf::blob
