#pragma once

// RegistryClient: the OCI distribution API (https://github.com/opencontainers/distribution-spec)
// for manifests and blobs, with authentication, redirects and retries.
//
// Every call names a Repository (registry host + repository path). Behind each call:
// - Auth: the first 401 teaches the client the host's WWW-Authenticate challenge. Basic sends
//   the configured credentials; Bearer fetches a token from the realm with service and scope
//   (with Basic credentials when configured), caches it per scope until expiry and renews it on
//   a 401. A request still refused after a fresh token fails with kPermissionDenied.
// - Transport: HTTPS unless the host is configured insecure (then plain HTTP). Redirects are
//   followed (Authorization is dropped when the origin changes). 5xx, 429 (honouring
//   Retry-After) and connection resets are retried with exponential backoff and jitter; other
//   4xx are not.
// - Every byte received is verified: manifests against their digest, blobs while streaming.
// Thread-safe: uploads and downloads may run on many threads at once.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/digest/digest.h"
#include "common/registry/auth.h"
#include "common/registry/http_client.h"
#include "common/registry/reference.h"

namespace lf::registry {

inline constexpr std::string_view kOciManifestType = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndexType = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kDockerManifestType =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerManifestListType =
    "application/vnd.docker.distribution.manifest.list.v2+json";

struct RegistryConfig {
  HttpClientOptions http;
  // Hosts ("host" or "host:port") spoken to over plain HTTP. Everything else is HTTPS.
  std::vector<std::string> insecure_registries;
  CredentialStore credentials;
  int max_attempts = 5;          // per request, for retryable failures
  int initial_backoff_ms = 200;  // doubled per attempt, with jitter
  int max_backoff_ms = 10'000;
  int max_retry_after_ms = 60'000;  // longest Retry-After honoured
  int max_redirects = 5;
  uint64_t max_manifest_bytes = 4ull << 20;
  uint64_t monolithic_upload_max_bytes = 32ull << 20;  // larger blobs go up in PATCH chunks
  uint64_t upload_chunk_bytes = 16ull << 20;
  size_t max_parallel_uploads = 4;
  size_t max_parallel_downloads = 4;
};

// A repository on a registry: {"127.0.0.1:5000", "library/app"}.
struct Repository {
  std::string host;  // what to connect to: Reference::registryHost()
  std::string name;  // "library/app"
  static Repository of(const Reference& ref) { return {ref.registryHost(), ref.repository}; }
  std::string toString() const { return host + "/" + name; }
};

struct ManifestHead {
  Digest digest;
  std::string media_type;
  uint64_t size = 0;
};

struct FetchedManifest {
  Digest digest;
  std::string media_type;
  std::string bytes;
};

class RegistryClient {
 public:
  static Result<std::unique_ptr<RegistryClient>> create(RegistryConfig config);
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  const RegistryConfig& config() const { return config_; }

  // GET /v2/: checks the registry answers and that we can authenticate to it.
  Status ping(const std::string& host);

  // HEAD a manifest by tag or digest: its digest, media type and size, without the body.
  Result<ManifestHead> headManifest(const Repository& repo, std::string_view reference);
  // GET a manifest (any of the OCI/Docker manifest and index types), verified: against the
  // digest when `reference` is one, else against the Docker-Content-Digest the registry sent.
  Result<FetchedManifest> getManifest(const Repository& repo, std::string_view reference);
  // PUT a manifest under a tag or its digest; returns its digest.
  Result<Digest> putManifest(const Repository& repo, std::string_view reference,
                             std::string_view media_type, std::string_view bytes);

  // HEAD a blob: its size, or nullopt when the repository does not have it.
  Result<std::optional<uint64_t>> statBlob(const Repository& repo, const Digest& digest);
  // Downloads a blob into `store`, verified against `digest` (and `size` when known), resuming
  // with a Range request when the connection breaks. Does nothing if the store has it already.
  Status fetchBlob(const Repository& repo, const Digest& digest, std::optional<uint64_t> size,
                   blob::BlobStore& store);
  // Streams a blob's bytes to `sink` (no resume: the caller keeps no state). Verified at the
  // end: kDataLoss when the bytes do not match `digest`.
  Status readBlob(const Repository& repo, const Digest& digest,
                  const std::function<Status(std::string_view)>& sink);
  // Asks the registry to mount a blob from another repository of the same registry. True when
  // mounted; false when the registry would not (the blob is not there, or mounting is off).
  Result<bool> mountBlob(const Repository& repo, const Digest& digest, std::string_view from_repo);
  // Uploads a blob from `store`: monolithic up to monolithic_upload_max_bytes, else chunked.
  Status uploadBlob(const Repository& repo, const blob::BlobInfo& blob, blob::BlobStore& store);
  // Uploads a blob read from readers `open` makes (one per attempt; retried from the start).
  using ReaderFactory = std::function<Result<std::unique_ptr<blob::BlobReader>>()>;
  Status uploadFrom(const Repository& repo, const blob::BlobInfo& blob, const ReaderFactory& open);
  // Uploads bytes held in memory (configs, small blobs).
  Status uploadBytes(const Repository& repo, std::string_view bytes, const Digest& digest);

  // Deletes a blob from the repository (the registry must allow deletes). Absent is not an error.
  Status deleteBlob(const Repository& repo, const Digest& digest);

  // Lists the repository's tags (follows Link pagination).
  Result<std::vector<std::string>> listTags(const Repository& repo);

  // How many requests went out and what they were, for tests and metrics.
  struct Counters {
    uint64_t requests = 0;
    uint64_t retries = 0;
    uint64_t token_fetches = 0;
    uint64_t blob_uploads = 0;
    uint64_t blob_mounts = 0;
    uint64_t upload_chunks = 0;
    uint64_t resumed_downloads = 0;
  };
  Counters counters() const;

  // One API call, as the internals describe it. Public for the pull/push helpers in this folder.
  struct Call {
    std::string method = "GET";
    std::string host;        // registry host
    std::string target;      // "/v2/..." (ignored when url is set)
    std::optional<Url> url;  // an absolute URL (an upload Location)
    Headers headers;
    std::string body;
    std::vector<std::string> scopes;  // "repository:library/app:pull,push"
    const StreamHandler* stream = nullptr;
    std::function<void(HttpRequest&)> before_attempt;  // e.g. set Range when resuming
    bool retry = true;  // retry 5xx/429/resets (only for requests safe to repeat)
    uint64_t max_response_bytes = 0;
    std::string what;  // for errors: "GET manifest library/app:latest"
  };
  Result<HttpResponse> execute(Call call);
  // The error for a response that is not what the caller wanted, with the registry's message.
  static Status httpError(const HttpResponse& res, std::string_view what);

 private:
  struct State;
  RegistryClient(RegistryConfig config, std::unique_ptr<HttpClient> http);
  Result<HttpResponse> sendWithRetry(HttpRequest& req, const Call& call);
  Result<std::optional<std::string>> authorization(const std::string& host,
                                                   const std::vector<std::string>& scopes,
                                                   const std::string& rejected);
  Result<BearerToken> fetchToken(const std::string& host, const Challenge& challenge,
                                 const std::vector<std::string>& scopes);
  Status learnChallenge(const std::string& host, const HttpResponse& res, std::string_view what);
  Status uploadOnce(const Repository& repo, const blob::BlobInfo& blob, const ReaderFactory& open);
  Result<Url> startUpload(const Repository& repo, std::string_view what);
  std::string schemeFor(const std::string& host) const;
  void sleepBackoff(int attempt, std::optional<int> retry_after_ms);

  RegistryConfig config_;
  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<State> state_;
};

// "repository:NAME:pull" / "repository:NAME:pull,push".
std::string pullScope(std::string_view repository);
std::string pushScope(std::string_view repository);

}  // namespace lf::registry
