#pragma once

// The CLI side of the incremental context upload (docs/http-api.md "Contexts";
// common/context/context_manifest.h):
//
//   scan (stat cache: unchanged files are not read) -> manifest -> id = its SHA-256 ->
//   HEAD /v1/contexts/<id>: 200, done. 404: POST /v1/contexts (the manifest); the answer lists
//   the file digests the farm lacks; PUT /v1/contexts/<id>/files with a tar of exactly those
//   files, each read from the context directory (below the root, never through a symlink) and
//   checked while it is sent to still hash to what the scan found.
//
// A fully cached rebuild thus costs a stat walk and one HEAD; a one-file edit sends that file.
//
// FilesTar streams the tar (never built in memory) with its exact length known up front, since
// the request carries a Content-Length. Entries are ustar regular files named "sha256:<hex>",
// mode 0644, uid/gid 0, mtime 0 (the blob is the bytes; the manifest carries the metadata); a file
// of 8 GiB or more gets a pax extended header with its size. Not thread-safe; one per request.
//
// Errors name the file or the request: "context file \"data/x\" changed while the context was
// being sent; run the build again", server answers via statusFromResponse().

#include <cstdint>
#include <filesystem>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "cli/api_client.h"
#include "common/base/status.h"
#include "common/digest/digest.h"

namespace lf::cli {

// One file to send: read from `path` (relative to the context root), named `digest` in the tar.
struct TarFile {
  std::string path;
  uint64_t size = 0;
  Digest digest;
};

class FilesTar {
 public:
  // Opens the context root (the files are opened one at a time while streaming).
  static Result<std::unique_ptr<FilesTar>> create(const std::filesystem::path& root,
                                                  std::vector<TarFile> files);
  ~FilesTar();
  FilesTar(const FilesTar&) = delete;
  FilesTar& operator=(const FilesTar&) = delete;

  // The exact number of bytes read() produces in all.
  uint64_t size() const { return size_; }

  // The next bytes of the tar, at most `max` (0 at the end): a BodyReader. A file that cannot
  // be opened, is no longer a regular file of the scanned size, or does not hash to its digest
  // is an error naming it.
  Result<size_t> read(void* buf, size_t max);

  // The tar's length for `files` without opening anything.
  static uint64_t sizeOf(const std::vector<TarFile>& files);

 private:
  struct State;
  explicit FilesTar(std::unique_ptr<State> state, uint64_t size);
  std::unique_ptr<State> state_;
  uint64_t size_;
};

struct ContextUploadOptions {
  std::string dockerfile = "Dockerfile";  // relative to the context root; must be in it
  bool hash_cache = true;  // use HashCache::defaultFileFor(root) (silently skipped if unusable)
  bool quiet = false;      // no progress line
};

struct ContextUploadResult {
  Digest id;                   // the manifest digest builds name
  uint64_t files = 0;          // regular files in the context
  uint64_t bytes = 0;          // their total size
  uint64_t sent_files = 0;     // distinct files sent
  uint64_t sent_bytes = 0;     // their total size
  bool already_ready = false;  // HEAD answered 200
};

// Scans `root`, makes the context exist on the coordinator (sending what it lacks) and returns
// its id. Writes "layerfarm: not sending X: reason" for skipped sockets and, unless quiet, the
// progress line (progressLine) to `err`.
Result<ContextUploadResult> uploadContext(const ApiClient& client,
                                          const std::filesystem::path& root,
                                          const ContextUploadOptions& options, std::ostream& err);

// "context: 21MB in 3 files, 1 file (13B) sent (b1122e91c80a)" or
// "context: 21MB in 3 files, nothing to send (b1122e91c80a)".
std::string progressLine(const ContextUploadResult& result);

}  // namespace lf::cli
