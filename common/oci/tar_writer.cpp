#include "common/oci/tar_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <vector>

namespace lf::oci {

namespace fs = std::filesystem;

Result<std::unique_ptr<TarWriter>> TarWriter::create(const fs::path& dest) {
  fs::path dir = dest.has_parent_path() ? dest.parent_path() : fs::path(".");
  std::string tmpl = (dir / ("." + dest.filename().string() + ".tmp-XXXXXX")).string();
  int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) {
    return errnoStatus(errno, "create temporary file for " + dest.string());
  }
  ::fchmod(fd, 0644);  // mkstemp makes 0600; an exported archive is meant to be shared
  struct archive* a = archive_write_new();
  if (a == nullptr || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
      archive_write_open_fd(a, fd) != ARCHIVE_OK) {
    std::string err = a != nullptr ? archive_error_string(a) : "out of memory";
    if (a != nullptr) {
      archive_write_free(a);
    }
    ::close(fd);
    ::unlink(tmpl.c_str());
    return internalError("open tar writer for " + dest.string() + ": " + err);
  }
  return std::unique_ptr<TarWriter>(new TarWriter(a, fd, fs::path(tmpl), dest));
}

TarWriter::~TarWriter() {
  if (archive_ != nullptr) {
    archive_write_free(archive_);
  }
  if (fd_ >= 0) {
    ::close(fd_);
  }
  if (!committed_) {
    ::unlink(tmp_.c_str());  // best effort: the temporary file is ours alone
  }
}

Status TarWriter::archiveError(std::string_view what) {
  const char* msg = archive_error_string(archive_);
  return internalError("write " + dest_.string() + ": " + std::string(what) + ": " +
                       (msg != nullptr ? msg : "unknown libarchive error"));
}

Status TarWriter::header(std::string_view name, unsigned int type, unsigned int perm,
                         int64_t size) {
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, std::string(name).c_str());
  archive_entry_set_filetype(e, type);
  archive_entry_set_perm(e, perm);
  archive_entry_set_size(e, size);
  archive_entry_set_uid(e, 0);
  archive_entry_set_gid(e, 0);
  archive_entry_set_mtime(e, 0, 0);
  int rc = archive_write_header(archive_, e);
  archive_entry_free(e);
  if (rc != ARCHIVE_OK) {
    return archiveError(name);
  }
  return Status::ok();
}

Status TarWriter::addDirectory(std::string_view name) { return header(name, AE_IFDIR, 0755, 0); }

Status TarWriter::addFile(std::string_view name, std::string_view content) {
  LF_RETURN_IF_ERROR(header(name, AE_IFREG, 0644, static_cast<int64_t>(content.size())));
  if (!content.empty() && archive_write_data(archive_, content.data(), content.size()) !=
                              static_cast<la_ssize_t>(content.size())) {
    return archiveError(name);
  }
  return Status::ok();
}

Status TarWriter::addBlob(std::string_view name, blob::BlobStore& store, const Descriptor& desc) {
  LF_ASSIGN_OR_RETURN(auto reader, store.openReader(desc.digest));
  if (reader->size() != desc.size) {
    return dataLoss("blob " + desc.digest.toString() + " is " + std::to_string(reader->size()) +
                    " bytes, but its descriptor says " + std::to_string(desc.size));
  }
  LF_RETURN_IF_ERROR(header(name, AE_IFREG, 0644, static_cast<int64_t>(desc.size)));
  std::vector<char> buf(256 * 1024);
  uint64_t total = 0;
  while (true) {
    LF_ASSIGN_OR_RETURN(size_t n, reader->read(buf.data(), buf.size()));
    if (n == 0) {
      break;
    }
    total += n;
    if (total > desc.size) {
      return dataLoss("blob " + desc.digest.toString() + " grew while being read");
    }
    if (archive_write_data(archive_, buf.data(), n) != static_cast<la_ssize_t>(n)) {
      return archiveError(name);
    }
  }
  if (total != desc.size) {
    return dataLoss("blob " + desc.digest.toString() + " shrank while being read");
  }
  return Status::ok();
}

Status TarWriter::commit() {
  if (archive_write_close(archive_) != ARCHIVE_OK) {
    return archiveError("close");
  }
  archive_write_free(archive_);
  archive_ = nullptr;
  if (::fsync(fd_) != 0) {
    return errnoStatus(errno, "fsync " + tmp_.string());
  }
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_.c_str(), dest_.c_str()) != 0) {
    return errnoStatus(errno, "rename " + tmp_.string() + " to " + dest_.string());
  }
  committed_ = true;
  return Status::ok();
}

}  // namespace lf::oci
