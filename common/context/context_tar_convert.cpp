#include "common/context/context_tar_convert.h"

#include <archive.h>
#include <archive_entry.h>
#include <locale.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/context/archive_read.h"
#include "common/context/context_tar.h"

namespace lf::context {
namespace {

constexpr size_t kBufferBytes = 1 << 20;

// libarchive's read callback over a BlobReader, keeping the reader's first error.
struct BlobSource {
  blob::BlobReader* reader = nullptr;
  std::vector<char> buf = std::vector<char>(kBufferBytes);
  Status error;

  static la_ssize_t onRead(archive*, void* self, const void** out) {
    auto* me = static_cast<BlobSource*>(self);
    auto n = me->reader->read(me->buf.data(), me->buf.size());
    if (!n.isOk()) {
      me->error = n.status();
      return -1;
    }
    *out = me->buf.data();
    return static_cast<la_ssize_t>(*n);
  }
};

// The second pass: the tar's entries in order, each regular file streamed into its own blob.
class TarSplitter {
 public:
  TarSplitter(blob::BlobStore& store, const Digest& tar,
              const std::unordered_map<std::string, Digest>& contents)
      : store_(store), where_("context " + tar.toString()), contents_(contents) {}

  // Fills *mtimes (path -> seconds) for every entry.
  Status run(blob::BlobReader& reader, std::unordered_map<std::string, int64_t>* mtimes) {
    std::unique_ptr<archive, ArchiveReadFree> ar(archive_read_new());
    if (!ar) return resourceExhausted(where_ + ": out of memory");
    src_.reader = &reader;
    if (archive_read_support_format_tar(ar.get()) != ARCHIVE_OK ||
        archive_read_support_format_empty(ar.get()) != ARCHIVE_OK ||
        archive_read_open(ar.get(), &src_, nullptr, &BlobSource::onRead, nullptr) != ARCHIVE_OK) {
      return libarchiveError(ar.get(), "open");
    }
    while (true) {
      archive_entry* a = nullptr;
      int rc = archive_read_next_header(ar.get(), &a);
      if (rc == ARCHIVE_EOF) break;
      if (rc != ARCHIVE_OK) return libarchiveError(ar.get(), "header");
      const char* raw = archive_entry_pathname(a);
      std::string path = raw != nullptr ? raw : "";
      if (archive_entry_filetype(a) == AE_IFDIR && !path.empty() && path.back() == '/') {
        path.pop_back();
      }
      (*mtimes)[path] = static_cast<int64_t>(archive_entry_mtime(a));
      if (archive_entry_filetype(a) == AE_IFREG && archive_entry_hardlink(a) == nullptr) {
        LF_RETURN_IF_ERROR(storeFile(ar.get(), path));
      }
    }
    // A store's reader checks the digest only at the end: read what follows the tar's end.
    while (true) {
      LF_ASSIGN_OR_RETURN(size_t n, reader.read(src_.buf.data(), src_.buf.size()));
      if (n == 0) return Status::ok();
    }
  }

 private:
  Status storeFile(archive* ar, const std::string& path) {
    auto it = contents_.find(path);
    if (it == contents_.end()) {
      // readContextTar read the same blob a moment ago: the blob changed, or this is a bug.
      return dataLoss(where_ + ": entry \"" + path + "\" was not there when the tar was checked");
    }
    LF_ASSIGN_OR_RETURN(auto present, store_.stat(it->second));
    if (present) {
      if (archive_read_data_skip(ar) != ARCHIVE_OK) return libarchiveError(ar, "\"" + path + "\"");
      return Status::ok();
    }
    LF_ASSIGN_OR_RETURN(auto writer, store_.openWriter());
    const void* block = nullptr;
    size_t len = 0;
    la_int64_t offset = 0;
    while (true) {
      int rc = archive_read_data_block(ar, &block, &len, &offset);
      if (rc == ARCHIVE_EOF) break;
      if (rc != ARCHIVE_OK) return libarchiveError(ar, "\"" + path + "\"");
      LF_RETURN_IF_ERROR(writer->write(block, len));
    }
    auto committed = writer->commit(it->second);
    if (!committed.isOk()) return committed.status().withContext(where_ + ": \"" + path + "\"");
    return Status::ok();
  }

  Status libarchiveError(archive* ar, const std::string& what) {
    if (!src_.error.isOk()) return src_.error.withContext(where_);
    const char* msg = archive_error_string(ar);
    return dataLoss(where_ + ": " + what + ": " + (msg != nullptr ? msg : "unreadable tar") +
                    " (the tar read fine a moment ago)");
  }

  blob::BlobStore& store_;
  const std::string where_;
  const std::unordered_map<std::string, Digest>& contents_;
  BlobSource src_;
};

}  // namespace

Result<ContextManifest> convertContextTar(blob::BlobStore& store, const Digest& tar) {
  // First every check readContextTar makes, before anything is stored. The Dockerfile path only
  // decides how entries are split between entries() and builderOnly(); the manifest merges both.
  LF_ASSIGN_OR_RETURN(ContextSnapshot snapshot, readContextTar(store, tar, "Dockerfile"));
  std::unordered_map<std::string, Digest> contents;
  for (const auto* list : {&snapshot.entries(), &snapshot.builderOnly()}) {
    for (const ContextEntry& e : *list) {
      if (e.type == EntryType::kRegular) contents.emplace(e.path, e.content);
    }
  }
  std::unordered_map<std::string, int64_t> mtimes;
  {
    ScopedUtf8Locale utf8;
    LF_ASSIGN_OR_RETURN(auto reader, store.openReader(tar));
    TarSplitter splitter(store, tar, contents);
    LF_RETURN_IF_ERROR(splitter.run(*reader, &mtimes));
  }
  auto manifest = manifestOf(snapshot, [&](const ContextEntry& e) -> int64_t {
    auto it = mtimes.find(e.path);
    return it == mtimes.end() ? 0 : it->second;
  });
  if (!manifest.isOk()) return manifest.status().withContext("context " + tar.toString());
  return manifest;
}

}  // namespace lf::context
