// Fuzzes readContextFilesTar, the coordinator's reader of PUT /v1/contexts/<id>/files bodies:
// arbitrary bytes (fed in small uneven chunks, as a network upload arrives) must give either an
// error with a message or success, and a blob may only ever be stored under the digest of its
// bytes. The "manifest" allows the digests of a few short strings, so the corpus can reach the
// store path (tests/fuzz/corpus/context_files_tar_fuzz: tars with entries named by those).

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "common/blob/directory_blob_store.h"
#include "coordinator/api/context_files_tar.h"

namespace {

lf::blob::DirectoryBlobStore& store() {
  static std::unique_ptr<lf::blob::DirectoryBlobStore> s = [] {
    char tmpl[] = "/tmp/lf-files-tar-fuzz-XXXXXX";
    const char* dir = ::mkdtemp(tmpl);
    if (dir == nullptr) std::abort();
    auto opened = lf::blob::DirectoryBlobStore::open(std::filesystem::path(dir));
    if (!opened.isOk()) std::abort();
    return std::move(opened).value();
  }();
  return *s;
}

const std::map<lf::Digest, uint64_t>& allowed() {
  static const std::map<lf::Digest, uint64_t> files = [] {
    std::map<lf::Digest, uint64_t> m;
    for (std::string_view s : {"", "a", "hello\n", "0123456789"}) {
      m[lf::Digest::sha256Of(s)] = s.size();
    }
    return m;
  }();
  return files;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t pos = 0;
  size_t chunk = 1 + (size % 997);
  auto stats = lf::coordinator::api::readContextFilesTar(
      [&](void* buf, size_t want) -> lf::Result<size_t> {
        size_t n = std::min({want, chunk, input.size() - pos});
        std::memcpy(buf, input.data() + pos, n);
        pos += n;
        return n;
      },
      allowed(), store());
  if (!stats.isOk() && stats.status().message().empty()) std::abort();
  // Whatever was stored is one of the allowed files, under its own digest.
  auto listed = store().list([](const lf::blob::BlobInfo& info) {
    auto it = allowed().find(info.digest);
    if (it == allowed().end() || it->second != info.size) std::abort();
  });
  if (!listed.isOk()) std::abort();
  return 0;
}
