#include "cli/context_upload.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "common/context/context_manifest.h"
#include "common/context/context_scanner.h"
#include "common/context/hash_cache.h"
#include "common/context/safe_open.h"

namespace lf::cli {

namespace fs = std::filesystem;

namespace {

constexpr size_t kBlock = 512;
constexpr uint64_t kMaxUstarSize = 077777777777ull;  // 11 octal digits

uint64_t padded(uint64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

std::string quotePath(std::string_view path) { return "\"" + std::string(path) + "\""; }

// The pax record "<len> size=<n>\n", whose length counts its own digits.
std::string paxSizeRecord(uint64_t size) {
  std::string rest = " size=" + std::to_string(size) + "\n";
  size_t len = rest.size() + 1;
  while (std::to_string(len).size() + rest.size() != len) {
    len = std::to_string(len).size() + rest.size();
  }
  return std::to_string(len) + rest;
}

void putOctal(char* field, size_t width, uint64_t value) {
  // width - 1 digits and a NUL, as ustar writers do.
  std::snprintf(field, width, "%0*llo", static_cast<int>(width - 1),
                static_cast<unsigned long long>(value));
}

std::string ustarHeader(std::string_view name, char type, uint64_t size) {
  std::string h(kBlock, '\0');
  std::memcpy(h.data(), name.data(), std::min(name.size(), size_t{100}));
  putOctal(&h[100], 8, 0644);
  putOctal(&h[108], 8, 0);
  putOctal(&h[116], 8, 0);
  putOctal(&h[124], 12, size <= kMaxUstarSize ? size : 0);  // larger: the pax header says
  putOctal(&h[136], 12, 0);
  h[156] = type;
  std::memcpy(&h[257], "ustar", 6);  // with its NUL
  std::memcpy(&h[263], "00", 2);
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (char c : h) {
    sum += static_cast<unsigned char>(c);
  }
  std::snprintf(&h[148], 8, "%06o", sum);  // six digits, NUL, and the space left from above
  return h;
}

// Everything before a file's bytes: a pax header for sizes ustar cannot hold, then the header.
std::string headersOf(const TarFile& f) {
  std::string name = f.digest.toString();
  std::string out;
  if (f.size > kMaxUstarSize) {
    std::string record = paxSizeRecord(f.size);
    out += ustarHeader("PaxHeaders/" + name, 'x', record.size());
    out += record;
    out.resize(padded(out.size()), '\0');
  }
  out += ustarHeader(name, '0', f.size);
  return out;
}

uint64_t headerBytesOf(uint64_t size) {
  return size > kMaxUstarSize ? kBlock + padded(paxSizeRecord(size).size()) + kBlock : kBlock;
}

Status changedWhileSent(const std::string& path) {
  return failedPrecondition("context file " + quotePath(path) +
                            " changed while the context was being sent; run the build again");
}

}  // namespace

struct FilesTar::State {
  context::UniqueFd root;
  std::vector<TarFile> files;
  size_t next = 0;   // index of the next file to open
  std::string meta;  // header or padding bytes still to emit
  size_t meta_pos = 0;
  context::UniqueFd fd;  // the file being sent
  uint64_t remaining = 0;
  Sha256 hash;
  bool trailer = false;

  Status openNext() {
    const TarFile& f = files[next];
    int err = 0;
    auto opened = context::openBeneath(root.get(), f.path,
                                       O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, &err);
    if (!opened.isOk()) {
      if (err == ENOENT || err == ELOOP || err == ENOTDIR) {
        return changedWhileSent(f.path);
      }
      return opened.status().withContext("sending the context");
    }
    struct stat st {};
    if (fstat(opened->get(), &st) != 0) {
      return errnoStatus(errno, "context file " + quotePath(f.path) + ": fstat");
    }
    if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != f.size) {
      return changedWhileSent(f.path);
    }
    fd = std::move(opened).value();
    remaining = f.size;
    hash = Sha256();
    meta = headersOf(f);
    meta_pos = 0;
    return Status::ok();
  }

  // Reads the current file into `buf`; at its end checks the digest and queues the padding.
  Result<size_t> readFile(char* buf, size_t max) {
    const TarFile& f = files[next];
    size_t want = static_cast<size_t>(std::min<uint64_t>(remaining, max));
    ssize_t n = 0;
    if (want > 0) {
      do {
        n = ::read(fd.get(), buf, want);
      } while (n < 0 && errno == EINTR);
      if (n < 0) {
        return errnoStatus(errno, "context file " + quotePath(f.path) + ": read");
      }
      if (n == 0) {
        return changedWhileSent(f.path);  // shrank
      }
      hash.update(buf, static_cast<size_t>(n));
      remaining -= static_cast<uint64_t>(n);
    }
    if (remaining == 0) {
      if (hash.finish() != f.digest) {
        return changedWhileSent(f.path);
      }
      fd.reset();
      meta.assign(padded(f.size) - f.size, '\0');
      meta_pos = 0;
      next += 1;
    }
    return static_cast<size_t>(n);
  }
};

FilesTar::FilesTar(std::unique_ptr<State> state, uint64_t size)
    : state_(std::move(state)), size_(size) {}
FilesTar::~FilesTar() = default;

Result<std::unique_ptr<FilesTar>> FilesTar::create(const fs::path& root,
                                                   std::vector<TarFile> files) {
  auto state = std::make_unique<State>();
  state->root = context::UniqueFd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!state->root.valid()) {
    return errnoStatus(errno, "build context " + quotePath(root.string()));
  }
  uint64_t size = sizeOf(files);
  state->files = std::move(files);
  return std::unique_ptr<FilesTar>(new FilesTar(std::move(state), size));
}

uint64_t FilesTar::sizeOf(const std::vector<TarFile>& files) {
  uint64_t total = 2 * kBlock;  // the end-of-archive marker
  for (const TarFile& f : files) {
    total += headerBytesOf(f.size) + padded(f.size);
  }
  return total;
}

Result<size_t> FilesTar::read(void* buf, size_t max) {
  State& s = *state_;
  char* out = static_cast<char*>(buf);
  size_t done = 0;
  while (done < max) {
    if (s.meta_pos < s.meta.size()) {
      size_t n = std::min(max - done, s.meta.size() - s.meta_pos);
      std::memcpy(out + done, s.meta.data() + s.meta_pos, n);
      s.meta_pos += n;
      done += n;
    } else if (s.fd.valid()) {
      LF_ASSIGN_OR_RETURN(size_t n, s.readFile(out + done, max - done));
      done += n;
    } else if (s.next < s.files.size()) {
      LF_RETURN_IF_ERROR(s.openNext());
    } else if (!s.trailer) {
      s.trailer = true;
      s.meta.assign(2 * kBlock, '\0');
      s.meta_pos = 0;
    } else {
      break;
    }
  }
  return done;
}

namespace {

Result<nlohmann::json> jsonAnswer(const ApiResponse& res, std::string_view what) {
  if (res.status != 200 && res.status != 201) {
    return statusFromResponse(res).withContext(std::string(what));
  }
  auto parsed = nlohmann::json::parse(res.body, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object() || !parsed.contains("missing") || !parsed["missing"].is_array()) {
    return dataLoss(std::string(what) + ": the coordinator's answer has no \"missing\" list");
  }
  return parsed;
}

// The files to send for the digests the coordinator lacks: the first path of each in the manifest.
Result<std::vector<TarFile>> filesFor(const nlohmann::json& missing,
                                      const context::ContextManifest& manifest) {
  std::map<std::string, const context::ContextEntry*> by_digest;
  for (const auto& m : manifest.entries) {
    if (m.entry.type == context::EntryType::kRegular) {
      by_digest.try_emplace(m.entry.content.toString(), &m.entry);
    }
  }
  std::vector<TarFile> files;
  for (const auto& d : missing) {
    auto it = d.is_string() ? by_digest.find(d.get<std::string>()) : by_digest.end();
    if (it == by_digest.end()) {
      return dataLoss("the coordinator asked for " + d.dump() + ", which is not in the context");
    }
    files.push_back(TarFile{it->second->path, it->second->size, it->second->content});
    by_digest.erase(it);  // a digest listed twice is sent once
  }
  return files;
}

Status checkDockerfile(const context::ContextSnapshot& snap, const std::string& dockerfile,
                       const fs::path& root) {
  bool has = snap.find(dockerfile) != nullptr;
  for (const auto& e : snap.builderOnly()) {
    has = has || e.path == dockerfile;
  }
  if (!has) {
    return notFound("Dockerfile \"" + dockerfile + "\" is not in the context " + root.string());
  }
  return Status::ok();
}

// Scans with the hash cache; the cache is saved best effort.
Result<context::ContextManifest> scanToManifest(const fs::path& root,
                                                const ContextUploadOptions& options,
                                                std::ostream& err) {
  std::unique_ptr<context::HashCache> cache;
  if (options.hash_cache) {
    auto file = context::HashCache::defaultFileFor(root);
    if (file.isOk()) {
      cache = context::HashCache::open(*file);
    }
  }
  context::ScanOptions scan;
  scan.dockerfile = options.dockerfile;
  scan.hash_cache = cache.get();
  context::ScanDetails details;
  LF_ASSIGN_OR_RETURN(context::ContextSnapshot snap, context::scanContext(root, scan, &details));
  if (cache) {
    // Ignored on purpose: a cache that cannot be written (read-only home) costs the next build a
    // full hash, not its success.
    (void)cache->save();
  }
  LF_RETURN_IF_ERROR(checkDockerfile(snap, options.dockerfile, root));
  for (const auto& skipped : snap.skipped()) {
    err << "layerfarm: not sending " << skipped.path << ": " << skipped.reason << "\n";
  }
  return context::manifestOf(snap, [&details](const context::ContextEntry& e) -> int64_t {
    auto it = details.mtimes.find(e.path);
    return it == details.mtimes.end() ? 0 : it->second;
  });
}

}  // namespace

Result<ContextUploadResult> uploadContext(const ApiClient& client, const fs::path& root,
                                          const ContextUploadOptions& options, std::ostream& err) {
  LF_ASSIGN_OR_RETURN(context::ContextManifest manifest, scanToManifest(root, options, err));
  std::string encoded = context::encodeContextManifest(manifest);
  ContextUploadResult result;
  result.id = Digest::sha256Of(encoded);
  for (const auto& m : manifest.entries) {
    if (m.entry.type == context::EntryType::kRegular) {
      result.files += 1;
      result.bytes += m.entry.size;
    }
  }
  std::string target = "/v1/contexts/" + result.id.toString();
  LF_ASSIGN_OR_RETURN(ApiResponse head, client.send("HEAD", target));
  if (head.status == 200) {
    result.already_ready = true;
  } else if (head.status != 404) {
    return statusFromResponse(head).withContext("checking the context");
  } else {
    LF_ASSIGN_OR_RETURN(ApiResponse posted, client.send("POST", "/v1/contexts", encoded,
                                                        context::kContextManifestMediaType));
    if (posted.status == 404 || posted.status == 405) {
      return failedPrecondition("the coordinator at " + client.server() +
                                " predates the incremental context upload (POST /v1/contexts "
                                "answered " +
                                std::to_string(posted.status) + "); upgrade it");
    }
    LF_ASSIGN_OR_RETURN(nlohmann::json answer, jsonAnswer(posted, "sending the context manifest"));
    LF_ASSIGN_OR_RETURN(std::vector<TarFile> files, filesFor(answer["missing"], manifest));
    if (!files.empty()) {
      for (const TarFile& f : files) {
        result.sent_files += 1;
        result.sent_bytes += f.size;
      }
      LF_ASSIGN_OR_RETURN(auto tar, FilesTar::create(root, std::move(files)));
      LF_ASSIGN_OR_RETURN(ApiResponse put,
                          client.sendStream(
                              "PUT", target + "/files", tar->size(),
                              [&tar](void* buf, size_t size) { return tar->read(buf, size); },
                              "application/x-tar"));
      LF_ASSIGN_OR_RETURN(nlohmann::json after, jsonAnswer(put, "sending the context's files"));
      if (!after["missing"].empty()) {
        return dataLoss("sending the context's files: the coordinator still lacks " +
                        after["missing"].dump());
      }
    }
  }
  if (!options.quiet) {
    err << progressLine(result) << std::endl;  // before the build starts: a slow upload shows why
  }
  return result;
}

std::string progressLine(const ContextUploadResult& r) {
  std::string line = "context: " + humanSize(r.bytes) + " in " + std::to_string(r.files) +
                     (r.files == 1 ? " file, " : " files, ");
  if (r.sent_files == 0) {
    line += "nothing to send";
  } else {
    line += std::to_string(r.sent_files) + (r.sent_files == 1 ? " file (" : " files (") +
            humanSize(r.sent_bytes) + ") sent";
  }
  return line + " (" + r.id.shortHex() + ")";
}

}  // namespace lf::cli
