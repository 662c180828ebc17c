// RegistryClient blob transfers: HEAD, streaming verified download with Range resume,
// cross-repository mount, monolithic and chunked upload.

#include <fmt/format.h>

#include <cstring>

#include "common/registry/registry_client.h"
#include "common/registry/registry_client_state.h"

namespace lf::registry {
namespace {

std::string withQuery(const Url& url, std::string_view param) {
  return url.target + (url.target.find('?') == std::string::npos ? "?" : "&") + std::string(param);
}

// Parses "bytes START-END/TOTAL" and returns START.
std::optional<uint64_t> contentRangeStart(std::string_view value) {
  if (value.substr(0, 6) != "bytes ") return std::nullopt;
  uint64_t start = 0;
  size_t i = 6;
  if (i >= value.size() || value[i] < '0' || value[i] > '9') return std::nullopt;
  for (; i < value.size() && value[i] >= '0' && value[i] <= '9'; ++i) {
    if (start > (UINT64_MAX - 9) / 10) return std::nullopt;
    start = start * 10 + static_cast<uint64_t>(value[i] - '0');
  }
  return start;
}

}  // namespace

Result<std::optional<uint64_t>> RegistryClient::statBlob(const Repository& repo,
                                                         const Digest& digest) {
  Call call;
  call.method = "HEAD";
  call.host = repo.host;
  call.target = fmt::format("/v2/{}/blobs/{}", repo.name, digest.toString());
  call.scopes = {pullScope(repo.name)};
  call.what = fmt::format("HEAD blob {}@{}", repo.toString(), digest.toString());
  std::string what = call.what;
  LF_ASSIGN_OR_RETURN(HttpResponse res, execute(std::move(call)));
  if (res.status == 404) return std::optional<uint64_t>();
  if (res.status != 200) return httpError(res, what);
  uint64_t size = 0;
  if (auto len = res.headers.get("Content-Length")) size = std::strtoull(len->c_str(), nullptr, 10);
  return std::optional<uint64_t>(size);
}

Status RegistryClient::fetchBlob(const Repository& repo, const Digest& digest,
                                 std::optional<uint64_t> size, blob::BlobStore& store) {
  LF_ASSIGN_OR_RETURN(auto existing, store.stat(digest));
  if (existing) return Status::ok();
  LF_ASSIGN_OR_RETURN(std::unique_ptr<blob::BlobWriter> writer, store.openWriter());
  std::string what = fmt::format("GET blob {}@{}", repo.toString(), digest.toString());
  StreamHandler stream;
  stream.on_headers = [&](const HttpResponse& head) -> Status {
    uint64_t have = writer->written();
    if (head.status == 206) {
      auto start = contentRangeStart(head.headers.get("Content-Range").value_or(""));
      if (!start || *start != have) {
        return dataLoss(
            fmt::format("{}: resumed at the wrong offset (wanted {}, Content-Range "
                        "\"{}\")",
                        what, have, head.headers.get("Content-Range").value_or("")));
      }
      ++state_->resumed_downloads;
    } else if (have > 0) {
      // The server ignored our Range: start the blob over.
      LF_ASSIGN_OR_RETURN(writer, store.openWriter());
    }
    return Status::ok();
  };
  stream.on_data = [&](std::string_view chunk) -> Status {
    if (size && writer->written() + chunk.size() > *size) {
      return dataLoss(
          fmt::format("{}: registry sent more than the {} bytes the descriptor says", what, *size));
    }
    return writer->write(chunk);
  };
  Call call;
  call.host = repo.host;
  call.target = fmt::format("/v2/{}/blobs/{}", repo.name, digest.toString());
  call.scopes = {pullScope(repo.name)};
  call.stream = &stream;
  call.what = what;
  call.before_attempt = [&](HttpRequest& req) {
    if (writer->written() > 0) {
      req.headers.set("Range", fmt::format("bytes={}-", writer->written()));
    } else {
      req.headers.remove("Range");
    }
  };
  LF_ASSIGN_OR_RETURN(HttpResponse res, execute(std::move(call)));
  if (res.status != 200 && res.status != 206) return httpError(res, what);
  if (size && writer->written() != *size) {
    return dataLoss(
        fmt::format("{}: got {} bytes, the descriptor says {}", what, writer->written(), *size));
  }
  auto info = writer->commit(digest);
  if (!info.isOk()) return info.status().withContext(what);
  return Status::ok();
}

Status RegistryClient::readBlob(const Repository& repo, const Digest& digest,
                                const std::function<Status(std::string_view)>& sink) {
  std::string what = fmt::format("GET blob {}@{}", repo.toString(), digest.toString());
  Sha256 hasher;
  StreamHandler stream;
  stream.on_data = [&](std::string_view chunk) -> Status {
    hasher.update(chunk);
    return sink(chunk);
  };
  Call call;
  call.host = repo.host;
  call.target = fmt::format("/v2/{}/blobs/{}", repo.name, digest.toString());
  call.scopes = {pullScope(repo.name)};
  call.stream = &stream;
  call.retry = false;  // bytes already handed to the sink cannot be taken back
  call.what = what;
  LF_ASSIGN_OR_RETURN(HttpResponse res, execute(std::move(call)));
  if (res.status != 200) return httpError(res, what);
  Digest got = hasher.finish();
  if (got != digest) {
    return dataLoss(fmt::format("{}: content has digest {}", what, got.toString()));
  }
  return Status::ok();
}

Status RegistryClient::deleteBlob(const Repository& repo, const Digest& digest) {
  Call call;
  call.method = "DELETE";
  call.host = repo.host;
  call.target = fmt::format("/v2/{}/blobs/{}", repo.name, digest.toString());
  call.scopes = {fmt::format("repository:{}:delete", repo.name)};
  call.what = fmt::format("DELETE blob {}@{}", repo.toString(), digest.toString());
  std::string what = call.what;
  LF_ASSIGN_OR_RETURN(HttpResponse res, execute(std::move(call)));
  if (res.status == 202 || res.status == 200 || res.status == 404) return Status::ok();
  return httpError(res, what);
}

Result<bool> RegistryClient::mountBlob(const Repository& repo, const Digest& digest,
                                       std::string_view from_repo) {
  Call call;
  call.method = "POST";
  call.host = repo.host;
  call.target = fmt::format("/v2/{}/blobs/uploads/?mount={}&from={}", repo.name,
                            urlEncode(digest.toString()), urlEncode(from_repo));
  call.scopes = {pushScope(repo.name), pullScope(from_repo)};
  call.what =
      fmt::format("mount {} from {} into {}", digest.toString(), from_repo, repo.toString());
  std::string what = call.what;
  LF_ASSIGN_OR_RETURN(HttpResponse res, execute(std::move(call)));
  if (res.status == 201) {
    ++state_->blob_mounts;
    return true;
  }
  if (res.status != 202) return httpError(res, what);
  // The registry opened an ordinary upload instead; cancel it (best effort: an abandoned
  // upload session expires on its own).
  if (auto location = res.headers.get("Location")) {
    Url base;
    if (auto parsed = Url::parse(schemeFor(repo.host) + "://" + repo.host + "/"); parsed.isOk()) {
      base = *parsed;
      if (auto url = base.resolve(*location); url.isOk()) {
        Call cancel;
        cancel.method = "DELETE";
        cancel.host = repo.host;
        cancel.url = *url;
        cancel.scopes = {pushScope(repo.name)};
        cancel.retry = false;
        cancel.what = "cancel upload";
        execute(std::move(cancel)).status().ignore();  // see above: best effort
      }
    }
  }
  return false;
}

Result<Url> RegistryClient::startUpload(const Repository& repo, std::string_view what) {
  Call call;
  call.method = "POST";
  call.host = repo.host;
  call.target = fmt::format("/v2/{}/blobs/uploads/", repo.name);
  call.scopes = {pushScope(repo.name)};
  call.what = std::string(what);
  LF_ASSIGN_OR_RETURN(HttpResponse res, execute(std::move(call)));
  if (res.status != 202) return httpError(res, what);
  auto location = res.headers.get("Location");
  if (!location) return unavailable(fmt::format("{}: upload started without Location", what));
  LF_ASSIGN_OR_RETURN(Url base, Url::parse(schemeFor(repo.host) + "://" + repo.host + "/"));
  return base.resolve(*location);
}

Status RegistryClient::uploadOnce(const Repository& repo, const blob::BlobInfo& blob,
                                  const ReaderFactory& open) {
  std::string what = fmt::format("upload {} to {}", blob.digest.toString(), repo.toString());
  LF_ASSIGN_OR_RETURN(Url location, startUpload(repo, what));
  LF_ASSIGN_OR_RETURN(std::unique_ptr<blob::BlobReader> reader, open());
  auto readChunk = [&](uint64_t max, std::string& out) -> Status {
    out.clear();
    out.resize(max);
    size_t filled = 0;
    while (filled < max) {
      LF_ASSIGN_OR_RETURN(size_t n, reader->read(out.data() + filled, max - filled));
      if (n == 0) break;
      filled += n;
    }
    out.resize(filled);
    return Status::ok();
  };
  uint64_t offset = 0;
  std::string chunk;
  bool monolithic = blob.size <= config_.monolithic_upload_max_bytes;
  while (!monolithic && offset < blob.size) {
    LF_RETURN_IF_ERROR(readChunk(std::min(config_.upload_chunk_bytes, blob.size - offset), chunk));
    if (chunk.empty()) return dataLoss(fmt::format("{}: blob ended at {} bytes", what, offset));
    Call call;
    call.method = "PATCH";
    call.host = repo.host;
    call.url = location;
    call.headers.set("Content-Type", "application/octet-stream");
    call.headers.set("Content-Range", fmt::format("{}-{}", offset, offset + chunk.size() - 1));
    call.body = std::move(chunk);
    call.scopes = {pushScope(repo.name)};
    call.retry = false;  // a repeated chunk would be appended twice; the whole upload retries
    call.what = what;
    LF_ASSIGN_OR_RETURN(HttpResponse res, execute(std::move(call)));
    if (res.status != 202) return httpError(res, what);
    ++state_->upload_chunks;
    offset += std::min(config_.upload_chunk_bytes, blob.size - offset);
    auto next = res.headers.get("Location");
    if (!next) return unavailable(fmt::format("{}: PATCH answered without Location", what));
    LF_ASSIGN_OR_RETURN(location, location.resolve(*next));
  }
  Call put;
  put.method = "PUT";
  put.host = repo.host;
  put.url = location;
  put.url->target = withQuery(location, "digest=" + urlEncode(blob.digest.toString()));
  if (monolithic) {
    LF_RETURN_IF_ERROR(readChunk(blob.size, put.body));
    if (put.body.size() != blob.size) {
      return dataLoss(
          fmt::format("{}: blob has {} bytes, expected {}", what, put.body.size(), blob.size));
    }
    put.headers.set("Content-Type", "application/octet-stream");
  }
  put.scopes = {pushScope(repo.name)};
  put.retry = false;
  put.what = what;
  LF_ASSIGN_OR_RETURN(HttpResponse res, execute(std::move(put)));
  if (res.status != 201) return httpError(res, what);
  if (auto header = res.headers.get("Docker-Content-Digest");
      header && *header != blob.digest.toString()) {
    return dataLoss(fmt::format("{}: registry stored digest {}", what, *header));
  }
  ++state_->blob_uploads;
  return Status::ok();
}

Status RegistryClient::uploadFrom(const Repository& repo, const blob::BlobInfo& blob,
                                  const ReaderFactory& open) {
  for (int attempt = 0;; ++attempt) {
    Status s = uploadOnce(repo, blob, open);
    if (s.isOk() || s.code() != StatusCode::kUnavailable || attempt + 1 >= config_.max_attempts) {
      return s;
    }
    ++state_->retries;
    sleepBackoff(attempt, std::nullopt);
  }
}

Status RegistryClient::uploadBlob(const Repository& repo, const blob::BlobInfo& blob,
                                  blob::BlobStore& store) {
  return uploadFrom(repo, blob, [&] { return store.openReader(blob.digest); });
}

namespace {

class StringReader : public blob::BlobReader {
 public:
  explicit StringReader(std::string_view data) : data_(data), size_(data.size()) {}
  Result<size_t> read(void* out, size_t size) override {
    size_t n = std::min(size, data_.size());
    std::memcpy(out, data_.data(), n);
    data_.remove_prefix(n);
    return n;
  }
  uint64_t size() const override { return size_; }

 private:
  std::string_view data_;
  uint64_t size_;
};

}  // namespace

Status RegistryClient::uploadBytes(const Repository& repo, std::string_view bytes,
                                   const Digest& digest) {
  return uploadFrom(repo, blob::BlobInfo{digest, bytes.size()},
                    [&]() -> Result<std::unique_ptr<blob::BlobReader>> {
                      return std::unique_ptr<blob::BlobReader>(new StringReader(bytes));
                    });
}

}  // namespace lf::registry
